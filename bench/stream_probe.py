"""Streaming probe: time-to-first-byte and per-chunk delay, timestamped by a small asyncio client.

Sequential streaming requests (one at a time, keep-alive) through each system to the delayed upstream
(tollway's mock streaming ``chunks`` events ``delay_ms`` apart). Per request it records the time to the
first byte and the arrival time of every complete SSE event (``\\n\\n``-terminated); the mean gap between
events is the per-chunk delay. Added values are against ``direct`` (client → upstream).
"""

from __future__ import annotations

import statistics
import time
from dataclasses import asdict, dataclass
from typing import Any

import aiohttp


@dataclass(slots=True)
class StreamSample:
    status: int
    ttfb_s: float
    event_times_s: list[float]

    @property
    def mean_gap_s(self) -> float | None:
        times = self.event_times_s
        if len(times) < 2:
            return None
        return (times[-1] - times[0]) / (len(times) - 1)


@dataclass(slots=True)
class ProbeStats:
    requests: int
    errors: int
    ttfb_p50_ms: float | None
    ttfb_p90_ms: float | None
    gap_mean_ms: float | None
    events: float | None
    total_p50_ms: float | None

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


def count_events(buffer: bytes) -> tuple[int, bytes]:
    """Complete SSE events in ``buffer`` (``\\n\\n`` or ``\\r\\n\\r\\n`` terminated) and the unfinished rest."""
    normalized = buffer.replace(b"\r\n", b"\n")
    parts = normalized.split(b"\n\n")
    complete = [part for part in parts[:-1] if part.strip()]
    return len(complete), parts[-1]


async def sample(session: aiohttp.ClientSession, url: str, body: bytes, headers: dict[str, str]) -> StreamSample:
    """One streaming request: status, time to first byte, arrival time of each SSE event."""
    start = time.perf_counter()
    ttfb = -1.0
    event_times: list[float] = []
    pending = b""
    async with session.post(url, data=body, headers=headers) as resp:
        async for chunk in resp.content.iter_any():
            now = time.perf_counter() - start
            if ttfb < 0:
                ttfb = now
            complete, pending = count_events(pending + chunk)
            event_times.extend([now] * complete)
        return StreamSample(status=resp.status, ttfb_s=ttfb, event_times_s=event_times)


def _percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    index = min(len(ordered) - 1, max(0, round(q / 100 * (len(ordered) - 1))))
    return ordered[index]


def summarize(samples: list[StreamSample]) -> ProbeStats:
    """Medians over the successful samples (status 200 with at least one event)."""
    good = [s for s in samples if s.status == 200 and s.event_times_s]
    errors = len(samples) - len(good)
    if not good:
        return ProbeStats(len(samples), errors, None, None, None, None, None)
    ttfbs = [s.ttfb_s * 1000 for s in good]
    gaps = [gap * 1000 for s in good if (gap := s.mean_gap_s) is not None]
    return ProbeStats(
        requests=len(samples),
        errors=errors,
        ttfb_p50_ms=statistics.median(ttfbs),
        ttfb_p90_ms=_percentile(ttfbs, 90),
        gap_mean_ms=statistics.median(gaps) if gaps else None,
        events=statistics.median(len(s.event_times_s) for s in good),
        total_p50_ms=statistics.median(s.event_times_s[-1] * 1000 for s in good),
    )


def added(system: ProbeStats, direct: ProbeStats) -> dict[str, float | None]:
    """What the system adds over direct: TTFB (p50) and per-chunk delay (mean gap), in ms."""
    return {
        "added_ttfb_ms": _diff(system.ttfb_p50_ms, direct.ttfb_p50_ms),
        "added_gap_ms": _diff(system.gap_mean_ms, direct.gap_mean_ms),
    }


def _diff(a: float | None, b: float | None) -> float | None:
    return None if a is None or b is None else a - b


def new_session() -> aiohttp.ClientSession:
    return aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=120))

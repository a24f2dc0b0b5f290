"""From per-round wrk results to the reported figures: medians, added latency, ratios between systems.

Each scenario runs the systems round-robin several times; a system's figure for a scenario is the median
over its rounds (single short runs vary by ±25%). Added latency is p50(system) - p50(direct) of the same
scenario in the same run. Ratios compare two systems scenario by scenario, with a geometric mean over all.
"""

from __future__ import annotations

import math
import statistics
from typing import Any

from bench.load import WrkResult

MEDIAN_METRICS = ("rps", "mean_ms", "p50_ms", "p90_ms", "p99_ms", "p999_ms")
RATIO_PAIRS = (("tollway", "bare"), ("tollway", "litellm"), ("litellm", "bare"))


def median_of_rounds(rounds: list[WrkResult]) -> dict[str, float] | None:
    """Per-metric medians over the rounds, plus summed requests and errors. None without rounds."""
    if not rounds:
        return None
    summary = {metric: statistics.median(getattr(r, metric) for r in rounds) for metric in MEDIAN_METRICS}
    summary["requests"] = float(sum(r.requests for r in rounds))
    summary["errors"] = float(sum(r.errors for r in rounds))
    summary["rounds"] = float(len(rounds))
    return summary


def median_cpu(usages: list[dict[str, float]]) -> dict[str, float]:
    """Medians of the server-core accounting of the rounds (see :mod:`bench.cpu`)."""
    if not usages:
        return {"server_cpu_pct": 0.0, "other_cpu_pct": 0.0}
    return {
        "server_cpu_pct": statistics.median(u["server_pct"] for u in usages),
        "other_cpu_pct": statistics.median(u["other_pct"] for u in usages),
    }


def added_p50_ms(system: dict[str, float] | None, direct: dict[str, float] | None) -> float | None:
    """p50(system) - p50(direct) in ms, None when either is missing."""
    if system is None or direct is None:
        return None
    return system["p50_ms"] - direct["p50_ms"]


def _ratio(a: float | None, b: float | None) -> float | None:
    if a is None or b is None or b == 0:
        return None
    return a / b


def _geomean(values: list[float]) -> float | None:
    positive = [v for v in values if v > 0]
    if not positive:
        return None
    return math.exp(sum(math.log(v) for v in positive) / len(positive))


def ratios(medians: dict[str, dict[str, dict[str, Any]]]) -> dict[str, dict[str, Any]]:
    """For each pair (a, b) present: per scenario a/b of req/s, p50 and added p50; geometric means over scenarios.

    ``medians`` maps scenario id → system → ``{"median": {...} | None, "added_p50_ms": float | None}``.
    """
    out: dict[str, dict[str, Any]] = {}
    for a, b in RATIO_PAIRS:
        per_scenario: dict[str, dict[str, float | None]] = {}
        for scenario_id, systems in medians.items():
            ma, mb = systems.get(a, {}).get("median"), systems.get(b, {}).get("median")
            if ma is None or mb is None:
                continue
            per_scenario[scenario_id] = {
                "rps": _ratio(ma["rps"], mb["rps"]),
                "p50": _ratio(ma["p50_ms"], mb["p50_ms"]),
                "added_p50": _ratio(systems[a].get("added_p50_ms"), systems[b].get("added_p50_ms")),
            }
        if not per_scenario:
            continue
        out[f"{a}/{b}"] = {
            "scenarios": per_scenario,
            "geomean": {
                key: _geomean([v for r in per_scenario.values() if (v := r[key]) is not None])
                for key in ("rps", "p50", "added_p50")
            },
        }
    return out


def rss_growth(samples: list[tuple[int, int]]) -> dict[str, float] | None:
    """From (requests so far, RSS KiB) samples of a long run: start, end, growth and growth per 10k requests."""
    if len(samples) < 2:
        return None
    (first_requests, first_rss), (last_requests, last_rss) = samples[0], samples[-1]
    requests = last_requests - first_requests
    growth = last_rss - first_rss
    return {
        "requests": float(requests),
        "rss_start_kib": float(first_rss),
        "rss_end_kib": float(last_rss),
        "growth_kib": float(growth),
        "growth_kib_per_10k": growth / requests * 10_000 if requests > 0 else 0.0,
    }

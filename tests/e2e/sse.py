"""A strict SSE reader for tests: checks framing as a picky client would."""

from __future__ import annotations

from typing import Any

import aiohttp
import orjson


async def post_stream(url: str, body: dict[str, Any], headers: dict[str, str] | None = None) -> tuple[
        int, dict[str, str], bytes]:
    async with aiohttp.ClientSession() as s, s.post(url, json=body, headers=headers) as r:
        raw = await r.read()
        return r.status, {k.lower(): v for k, v in r.headers.items()}, raw


def parse_frames(raw: bytes) -> tuple[list[dict[str, Any]], bool]:
    """Return (events, saw_done). Asserts: frames end with a blank line, `event:` equals `type`,
    data is one line of JSON, `[DONE]` is last."""
    text = raw.decode()
    assert text.endswith("\n\n"), f"stream does not end with a blank line: {text[-80:]!r}"
    assert "\r" not in text
    events: list[dict[str, Any]] = []
    done = False
    for frame in text[:-2].split("\n\n"):
        assert not done, "data after [DONE]"
        lines = frame.split("\n")
        if lines == ["data: [DONE]"]:
            done = True
            continue
        event_name = None
        data_lines = []
        for line in lines:
            if line.startswith("event: "):
                event_name = line[7:]
            elif line.startswith("data: "):
                data_lines.append(line[6:])
            else:
                raise AssertionError(f"unexpected SSE line {line!r}")
        assert len(data_lines) == 1, f"frame has {len(data_lines)} data lines"
        payload = orjson.loads(data_lines[0])
        if event_name is not None:
            assert event_name == payload["type"], (event_name, payload.get("type"))
        events.append(payload)
    return events, done

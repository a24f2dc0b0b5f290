"""Parsing SSE bodies in the mock's tests."""

from __future__ import annotations

from typing import Any

import orjson


def frames(body: bytes) -> list[tuple[str | None, str]]:
    """``(event, data)`` per SSE frame; the body must end with a blank line."""
    out: list[tuple[str | None, str]] = []
    text = body.decode()
    assert text.endswith("\n\n"), text[-200:]
    for block in text.split("\n\n"):
        if not block:
            continue
        event: str | None = None
        data: list[str] = []
        for line in block.split("\n"):
            if line.startswith("event: "):
                event = line[len("event: ") :]
            elif line.startswith("data: "):
                data.append(line[len("data: ") :])
            else:
                raise AssertionError(f"unexpected SSE line {line!r}")
        out.append((event, "\n".join(data)))
    return out


def events(body: bytes) -> list[dict[str, Any]]:
    """The JSON payloads of a named-event stream; each frame's event name must equal its ``type``."""
    out: list[dict[str, Any]] = []
    for event, data in frames(body):
        payload = orjson.loads(data)
        assert isinstance(payload, dict)
        assert event == payload["type"], (event, payload)
        out.append(payload)
    return out

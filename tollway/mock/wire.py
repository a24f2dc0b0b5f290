"""The contract each wire-format module of the mock implements.

A wire module turns a request body into a format-neutral :class:`~tollway.mock.scenario.Ask`, and a
:class:`~tollway.mock.scenario.Script` back into that format's JSON body or SSE frames. The app
(:mod:`tollway.mock.app`) owns everything else: faults, delays, cutting a stream short.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Literal

from tollway.mock.scenario import Ask, Script

ErrorKind = Literal["invalid", "auth", "forbidden", "not_found", "rate_limit", "server", "overloaded"]


@dataclass(slots=True)
class StreamPlan:
    """Every SSE frame of a complete stream, each one ``await resp.write`` (one event per frame), and
    the indices of the frames that carry a content delta (text, reasoning or tool-argument pieces).
    The app sleeps ``delay_ms`` between delta frames and cuts faulty streams at a delta."""

    frames: list[bytes]
    deltas: list[int]


@dataclass(slots=True, frozen=True)
class Wire:
    name: str
    parse: Callable[[dict[str, Any]], Ask]
    render_json: Callable[[Script, dict[str, Any]], bytes]
    render_stream: Callable[[Script, dict[str, Any]], StreamPlan]
    # (kind, message or None for the canned one, param, code) -> (status, body)
    error: Callable[[ErrorKind, str | None, str | None, str | None], tuple[int, bytes]]
    # the in-stream error event; the argument is the number of events already sent
    stream_error: Callable[[int], bytes]
    malformed_json: bytes
    malformed_frame: bytes
    default_param: str
    # For APIs that put the model or the streaming switch in the URL (Gemini, Bedrock): fold the route's
    # path parameters into the body before ``parse`` sees it.
    from_path: Callable[[dict[str, str], dict[str, Any]], dict[str, Any]] | None = None
    content_type: bytes = b"text/event-stream"  # of a streamed answer
    # (kind, code) -> extra headers of an error response (Bedrock: the exception name in x-amzn-ErrorType).
    error_headers: Callable[[ErrorKind, str | None], dict[str, str]] | None = None
    # Refuse a request by its headers before its body is read (Bedrock: a missing or malformed SigV4
    # Authorization header): None to accept, else (kind, message, code) of the error to answer with.
    check_headers: Callable[[Mapping[str, str]], tuple[ErrorKind, str, str | None] | None] | None = None


def sse(event: str, payload: bytes) -> bytes:
    """One named SSE frame."""
    return b"event: " + event.encode() + b"\ndata: " + payload + b"\n\n"

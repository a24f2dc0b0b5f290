"""Incremental decoders for upstream stream bodies: SSE, NDJSON and AWS eventstream.

Each decoder takes network chunks as they arrive (``feed``) and returns the complete events found so far,
keeping partial data for the next chunk; ``end`` flushes what is left when the body ends. Working per
chunk (not per line) lets the relay handle every event of one network read in one pass and write the
client's frames in one send.
"""

from __future__ import annotations

from typing import Protocol

from tollway.core.errors import GatewayError

Event = tuple[str | None, bytes]


class Decoder(Protocol):
    def feed(self, chunk: bytes) -> list[Event]: ...

    def end(self) -> list[Event]: ...


class SSEDecoder:
    """``text/event-stream``: yields ``(event field or None, data lines joined by "\\n")``; comments and
    ``id:``/``retry:`` fields are ignored; CRLF and CR line ends are accepted."""

    def __init__(self) -> None:
        self._buf = b""

    def feed(self, chunk: bytes) -> list[Event]:
        buf = self._buf + chunk
        if b"\r" in buf:
            if buf.endswith(b"\r"):  # a CRLF may be split across chunks: keep the CR for the next one
                self._buf = buf
                return []
            buf = buf.replace(b"\r\n", b"\n").replace(b"\r", b"\n")
        blocks = buf.split(b"\n\n")
        self._buf = blocks.pop()
        return [e for e in map(_sse_block, blocks) if e is not None]

    def end(self) -> list[Event]:
        rest, self._buf = self._buf.replace(b"\r\n", b"\n").replace(b"\r", b"\n"), b""
        event = _sse_block(rest.strip(b"\n"))
        return [event] if event is not None else []


def _sse_block(block: bytes) -> Event | None:
    event: str | None = None
    data: list[bytes] = []
    for line in block.split(b"\n"):
        if line.startswith(b"data:"):
            data.append(line[6:] if line[5:6] == b" " else line[5:])
        elif line.startswith(b"event:"):
            event = line[6:].strip().decode("utf-8", "replace")
    if not data:
        return None
    return event, data[0] if len(data) == 1 else b"\n".join(data)


class NDJSONDecoder:
    """Newline-delimited JSON: yields ``(None, line)`` for every non-blank line."""

    def __init__(self) -> None:
        self._buf = b""

    def feed(self, chunk: bytes) -> list[Event]:
        lines = (self._buf + chunk).split(b"\n")
        self._buf = lines.pop()
        return [(None, s) for s in (line.strip() for line in lines) if s]

    def end(self) -> list[Event]:
        rest, self._buf = self._buf.strip(), b""
        return [(None, rest)] if rest else []


class EventStreamDecoder:
    """AWS ``application/vnd.amazon.eventstream`` binary framing, decoded by botocore's parser. Yields
    ``(":event-type", payload)``; an exception message yields ``("exception:<type>", payload)``."""

    def __init__(self, provider: str) -> None:
        from botocore.eventstream import EventStreamBuffer

        self._buffer = EventStreamBuffer()
        self._provider = provider

    def feed(self, chunk: bytes) -> list[Event]:
        from botocore.eventstream import ParserError

        self._buffer.add_data(chunk)
        out: list[Event] = []
        try:
            for message in self._buffer:
                headers = message.headers
                kind = headers.get(":message-type")
                if kind == "exception":
                    out.append((f"exception:{headers.get(':exception-type', 'unknown')}", message.payload))
                elif kind == "error":
                    out.append((f"exception:{headers.get(':error-code', 'unknown')}", message.payload))
                else:
                    out.append((headers.get(":event-type"), message.payload))
        except ParserError as exc:
            raise GatewayError(502, f"{self._provider}: malformed event stream ({exc})", type="server_error",
                               code="upstream_invalid_response") from exc
        return out

    def end(self) -> list[Event]:
        return []


def decoder_for(fmt: str, provider: str) -> Decoder:
    if fmt == "ndjson":
        return NDJSONDecoder()
    if fmt == "eventstream":
        return EventStreamDecoder(provider)
    return SSEDecoder()

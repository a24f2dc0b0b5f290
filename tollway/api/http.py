"""Minimal ASGI request/response plumbing for the endpoints (no framework on the hot path)."""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable, MutableMapping
from dataclasses import dataclass, field
from typing import Any

import orjson

from tollway.core.context import RequestContext
from tollway.core.errors import GatewayError

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]

JSON_HEADERS = [(b"content-type", b"application/json")]
SSE_HEADERS = [
    (b"content-type", b"text/event-stream; charset=utf-8"),
    (b"cache-control", b"no-cache"),
    (b"x-accel-buffering", b"no"),
]


@dataclass(slots=True)
class Request:
    scope: Scope
    receive: Receive
    send: Send
    request_id: str
    started: float = field(default_factory=time.perf_counter)
    params: dict[str, str] = field(default_factory=dict)
    ctx: RequestContext | None = None

    def header(self, name: bytes) -> bytes | None:
        for k, v in self.scope["headers"]:
            if k == name:
                return bytes(v)
        return None

    def query(self) -> dict[str, str]:
        from urllib.parse import parse_qsl

        return dict(parse_qsl(self.scope.get("query_string", b"").decode("latin-1")))


async def read_body(req: Request, limit: int) -> bytes:
    """Read the whole body; 413 past ``limit`` (checked on content-length and while reading)."""
    length = req.header(b"content-length")
    if length is not None and length.isdigit() and int(length) > limit:
        raise GatewayError(413, f"Request body of {int(length)} bytes exceeds the limit of {limit} bytes.",
                           code="request_too_large")
    chunks: list[bytes] = []
    size = 0
    while True:
        msg = await req.receive()
        if msg["type"] == "http.disconnect":
            raise GatewayError(499, "client disconnected", code="client_disconnected")
        chunk = msg.get("body", b"")
        if chunk:
            size += len(chunk)
            if size > limit:
                raise GatewayError(413, f"Request body exceeds the limit of {limit} bytes.",
                                   code="request_too_large")
            chunks.append(chunk)
        if not msg.get("more_body", False):
            break
    return chunks[0] if len(chunks) == 1 else b"".join(chunks)


async def read_json(req: Request, limit: int) -> Any:
    body = await read_body(req, limit)
    if not body:
        raise GatewayError(400, "Request body is empty; expected a JSON object.", code="invalid_json")
    try:
        return orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        raise GatewayError(400, f"Request body is not valid JSON: {exc}", code="invalid_json") from exc


async def send_json(
    send: Send, status: int, payload: Any, headers: list[tuple[bytes, bytes]] | None = None
) -> None:
    body = orjson.dumps(payload)
    await send({"type": "http.response.start", "status": status,
                "headers": [*JSON_HEADERS, *(headers or ())]})
    await send({"type": "http.response.body", "body": body})


async def send_error(send: Send, err: GatewayError) -> None:
    headers = [(k.encode(), v.encode()) for k, v in err.headers.items()]
    await send_json(send, err.status, err.to_json(), headers)


async def start_stream(send: Send, headers: list[tuple[bytes, bytes]] | None = None) -> None:
    await send({"type": "http.response.start", "status": 200, "headers": [*SSE_HEADERS, *(headers or ())]})


async def send_chunk(send: Send, data: bytes, more: bool = True) -> None:
    await send({"type": "http.response.body", "body": data, "more_body": more})

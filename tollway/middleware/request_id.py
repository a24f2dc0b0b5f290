"""Pure ASGI middleware: every HTTP response carries ``x-request-id`` (the client's value is honoured
when it is a sane token, else a new ``req_…`` id). The id is put in ``scope["tollway.request_id"]``."""

from __future__ import annotations

import re

from tollway.api.http import Message, Receive, Scope, Send
from tollway.core.ids import ordered_hex

_SAFE = re.compile(rb"^[A-Za-z0-9._:\-]{1,128}$")


def new_request_id() -> str:
    """Time-ordered: the usage ledger indexes request ids, and ordered keys keep that index cheap to grow."""
    return "req_" + ordered_hex(8)


class RequestIdMiddleware:
    def __init__(self, app: object) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)  # type: ignore[operator]
            return
        rid: bytes | None = None
        for k, v in scope["headers"]:
            if k == b"x-request-id":
                rid = bytes(v) if _SAFE.match(v) else None
                break
        if rid is None:
            rid = new_request_id().encode()
        scope["tollway.request_id"] = rid.decode()

        async def send_with_id(message: Message) -> None:
            if message["type"] == "http.response.start":
                message["headers"] = [*message.get("headers", ()), (b"x-request-id", rid)]
                scope["tollway.responded"] = True
            await send(message)

        await self.app(scope, receive, send_with_id)  # type: ignore[operator]

"""The Python ceiling: a pass-through proxy with no logic, on the stack tollway uses.

uvicorn (uvloop + httptools) serving a raw ASGI app, one aiohttp ClientSession to the upstream, orjson to
read ``stream`` from the request. It forwards the POST body to the same path upstream and returns the bytes,
streaming them as they arrive when the request asks for a stream.
Run: ``python -m bench.bare_proxy --upstream http://127.0.0.1:8081 --port 8090``.
"""

from __future__ import annotations

import argparse
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

import aiohttp
import orjson
import uvicorn

Scope = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[MutableMapping[str, Any]]]
Send = Callable[[MutableMapping[str, Any]], Awaitable[None]]


class BareProxy:
    def __init__(self, upstream: str) -> None:
        self.upstream = upstream.rstrip("/")
        self.session: aiohttp.ClientSession | None = None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            await receive()  # lifespan.startup
            self.session = aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0))
            await send({"type": "lifespan.startup.complete"})
            await receive()  # lifespan.shutdown
            await self.session.close()
            await send({"type": "lifespan.shutdown.complete"})
            return
        body, more = b"", True
        while more:
            message = await receive()
            body, more = body + message.get("body", b""), message.get("more_body", False)
        if scope["method"] != "POST" or self.session is None:
            await send({"type": "http.response.start", "status": 200, "headers": []})
            await send({"type": "http.response.body", "body": b"ok"})
            return
        stream = bool(orjson.loads(body).get("stream")) if body else False
        headers = {"content-type": "application/json", "authorization": "Bearer sk-bench"}
        async with self.session.post(self.upstream + scope["path"], data=body, headers=headers) as resp:
            content_type = resp.headers.get("content-type", "application/json").encode()
            start = {"type": "http.response.start", "status": resp.status}
            await send({**start, "headers": [(b"content-type", content_type)]})
            if stream:
                async for chunk in resp.content.iter_any():
                    await send({"type": "http.response.body", "body": chunk, "more_body": True})
                await send({"type": "http.response.body", "body": b""})
            else:
                await send({"type": "http.response.body", "body": await resp.read()})


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--upstream", required=True)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    args = parser.parse_args()
    app = BareProxy(args.upstream)
    uvicorn.run(
        app,
        host=args.host,
        port=args.port,
        loop="uvloop",
        http="httptools",
        log_level="warning",
        access_log=False,
        lifespan="on",
    )


if __name__ == "__main__":
    main()

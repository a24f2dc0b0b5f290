"""The ASGI application: lifespan (build the runtime once), routing, and the error boundary.

Routing is a dict lookup for fixed paths plus one pattern for ``/v1/responses/{id}[/input_items]``;
no framework sits on the hot path.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable

from tollway.api import chat, meta, responses
from tollway.api.context import authorization, request_context
from tollway.api.http import Receive, Request, Scope, Send, send_error
from tollway.core.errors import GatewayError
from tollway.middleware.request_id import RequestIdMiddleware
from tollway.runtime import Runtime
from tollway.settings import Settings

log = logging.getLogger("tollway")

Handler = Callable[[Runtime, Request], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

# (method, path) -> (handler, key scope required, door name for exchanges recorded in the ledger)
Route = tuple[Handler, str | None, str]
ROUTES: dict[tuple[str, str], Route] = {
    ("POST", "/v1/responses"): (responses.create_response, "responses", "responses"),
    ("POST", "/v1/chat/completions"): (chat.create_chat_completion, "chat", "chat"),
    ("GET", "/v1/models"): (meta.list_models, "models", ""),
    ("GET", "/health/live"): (meta.live, None, ""),
    ("GET", "/health/ready"): (meta.ready, None, ""),
}
RESPONSE_ROUTES: dict[tuple[str, bool], Route] = {
    ("GET", False): (responses.get_response, "responses", ""),
    ("DELETE", False): (responses.delete_response, "responses", ""),
    ("GET", True): (responses.list_input_items, "responses", ""),
}
_RESPONSES_PREFIX = "/v1/responses/"


def _match(method: str, path: str, params: dict[str, str]) -> Route | None:
    route = ROUTES.get((method, path))
    if route is not None:
        return route
    if path.startswith(_RESPONSES_PREFIX):
        rest = path[len(_RESPONSES_PREFIX):]
        rid, _, tail = rest.partition("/")
        if rid and tail in ("", "input_items"):
            params["id"] = rid
            return RESPONSE_ROUTES.get((method, tail == "input_items"))
    return None


class Gateway:
    """The bare ASGI app (wrapped by middleware in :func:`create_app`)."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.runtime: Runtime | None = None
        # The admin API (FastAPI) for /admin/, built on its first request: FastAPI and the admin models cost
        # ~10 MB of RSS that a gateway nobody administers through this process never needs.
        self.admin: ASGIApp | None = None

    async def _lifespan(self, receive: Receive, send: Send) -> None:
        while True:
            msg = await receive()
            if msg["type"] == "lifespan.startup":
                try:
                    self.runtime = await Runtime.start(self.settings)
                except (OSError, ValueError, RuntimeError) as exc:
                    log.error("start-up failed", extra={"error": str(exc)})
                    await send({"type": "lifespan.startup.failed", "message": str(exc)})
                    return
                await send({"type": "lifespan.startup.complete"})
            elif msg["type"] == "lifespan.shutdown":
                if self.runtime is not None:
                    await self.runtime.stop()
                await send({"type": "lifespan.shutdown.complete"})
                return

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            await self._lifespan(receive, send)
            return
        if scope["type"] != "http":
            return
        if scope["path"].startswith("/admin/"):
            await self._admin(scope, receive, send)
            return
        req = Request(scope, receive, send, scope.get("tollway.request_id", ""))
        route = _match(scope["method"], scope["path"], req.params)
        rt = self.runtime
        try:
            if route is None:
                allowed = any(p == scope["path"] for (_, p) in ROUTES)
                raise GatewayError(405 if allowed else 404,
                                   f"{scope['method']} {scope['path']} is not a route of this gateway",
                                   type="invalid_request_error",
                                   code="method_not_allowed" if allowed else "not_found")
            if rt is None:
                raise GatewayError(503, "gateway is starting", type="server_error", code="not_ready")
            handler, key_scope, door = route
            if key_scope is not None:
                ctx = request_context(req, door)
                if rt.auth is not None:
                    await rt.auth.authenticate(ctx, authorization(req), key_scope)
            await handler(rt, req)
        except GatewayError as err:
            if rt is not None and req.ctx is not None and req.ctx.door:
                rt.pipeline.fail(req.ctx, err)
            if err.status == 499 or scope.get("tollway.responded"):
                return
            await send_error(send, err)
        except asyncio.CancelledError:  # the server cancelled us (client gone): the exchange is still recorded
            if rt is not None and req.ctx is not None and req.ctx.door:
                rt.pipeline.fail(req.ctx, GatewayError(499, "client disconnected", code="client_disconnected"))
            raise
        except Exception:  # the error boundary: log with context, answer in the envelope, never crash
            log.exception("unhandled error", extra={"request_id": req.request_id, "path": scope["path"]})
            if not scope.get("tollway.responded"):
                await send_error(send, GatewayError(500, "internal gateway error; see logs for request id "
                                                    + req.request_id, type="server_error", code="internal_error"))

    async def _admin(self, scope: Scope, receive: Receive, send: Send) -> None:
        admin = self.admin
        if admin is None:
            if self.runtime is None:
                await send_error(send, GatewayError(503, "gateway is starting", type="server_error",
                                                    code="not_ready"))
                return
            from tollway.admin.app import create_admin_app

            admin = self.admin = create_admin_app(self.runtime)
        await admin(scope, receive, send)


def create_app(settings: Settings) -> RequestIdMiddleware:
    return RequestIdMiddleware(Gateway(settings))

"""The ASGI app's routing and error boundary, driven directly (no server)."""

from __future__ import annotations

from typing import Any

import orjson
import pytest

from tollway import app as app_module
from tollway.app import Gateway, _match
from tollway.middleware.request_id import RequestIdMiddleware
from tollway.settings import Settings


async def call(asgi: Any, method: str, path: str) -> tuple[int, dict[bytes, bytes], Any]:
    sent: list[dict[str, Any]] = []

    async def receive() -> dict[str, Any]:
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(msg: dict[str, Any]) -> None:
        sent.append(msg)

    scope = {"type": "http", "method": method, "path": path, "headers": [], "query_string": b""}
    await asgi(scope, receive, send)
    return sent[0]["status"], dict(sent[0]["headers"]), orjson.loads(sent[1]["body"])


def test_match_routes() -> None:
    params: dict[str, str] = {}
    assert _match("GET", "/v1/responses/resp_1/input_items", params) is not None and params == {"id": "resp_1"}
    assert _match("DELETE", "/v1/responses/resp_1", {}) is not None
    assert _match("POST", "/v1/responses/resp_1", {}) is None
    assert _match("GET", "/v1/responses/a/b", {}) is None


async def test_unexpected_error_becomes_500_envelope(monkeypatch: pytest.MonkeyPatch) -> None:
    async def boom(rt: Any, req: Any) -> None:
        raise RuntimeError("bug")

    monkeypatch.setitem(app_module.ROUTES, ("GET", "/boom"), boom)
    gw = Gateway(Settings())
    gw.runtime = object()  # type: ignore[assignment]
    status, headers, body = await call(RequestIdMiddleware(gw), "GET", "/boom")
    assert status == 500 and body["error"]["code"] == "internal_error"
    assert headers[b"x-request-id"].decode() in body["error"]["message"]


async def test_not_ready_and_method_not_allowed() -> None:
    gw = Gateway(Settings())
    status, _, body = await call(gw, "GET", "/health/live")
    assert status == 503 and body["error"]["code"] == "not_ready"
    status, _, body = await call(gw, "PUT", "/v1/responses")
    assert status == 405


async def test_bad_tags_header_is_refused_and_recorded() -> None:
    failures: list[Any] = []

    class FakePipeline:
        def fail(self, ctx: Any, err: Any) -> None:
            failures.append((ctx.door, err.param))

    class FakeRuntime:
        auth = None
        pipeline = FakePipeline()

    gw = Gateway(Settings())
    gw.runtime = FakeRuntime()  # type: ignore[assignment]
    sent: list[dict[str, Any]] = []

    async def receive() -> dict[str, Any]:
        return {"type": "http.request", "body": b"{}", "more_body": False}

    async def send(msg: dict[str, Any]) -> None:
        sent.append(msg)

    scope = {"type": "http", "method": "POST", "path": "/v1/responses", "query_string": b"",
             "headers": [(b"x-tollway-tags", b"=nokey")]}
    await gw(scope, receive, send)
    assert sent[0]["status"] == 400
    assert orjson.loads(sent[1]["body"])["error"]["param"] == "x-tollway-tags"
    assert failures == [("responses", "x-tollway-tags")]


async def test_cancelled_exchange_is_still_recorded(monkeypatch: pytest.MonkeyPatch) -> None:
    import asyncio

    failures: list[Any] = []

    class FakePipeline:
        def fail(self, ctx: Any, err: Any) -> None:
            failures.append((ctx.door, err.status, err.code))

    class FakeRuntime:
        auth = None
        pipeline = FakePipeline()

    async def cancelled(rt: Any, req: Any) -> None:
        raise asyncio.CancelledError

    monkeypatch.setitem(app_module.ROUTES, ("POST", "/v1/responses"), (cancelled, "responses", "responses"))
    gw = Gateway(Settings())
    gw.runtime = FakeRuntime()  # type: ignore[assignment]

    async def receive() -> dict[str, Any]:
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(msg: dict[str, Any]) -> None:
        raise AssertionError("nothing is sent to a client that is gone")

    scope = {"type": "http", "method": "POST", "path": "/v1/responses", "headers": [], "query_string": b""}
    with pytest.raises(asyncio.CancelledError):
        await gw(scope, receive, send)
    assert failures == [("responses", 499, "client_disconnected")]


def test_settle_heap_freezes_start_up_objects() -> None:
    import gc

    from tollway.runtime import GC_THRESHOLDS, settle_heap

    before = gc.get_threshold()
    try:
        settle_heap()
        assert gc.get_freeze_count() > 0 and gc.get_threshold() == GC_THRESHOLDS
    finally:
        gc.unfreeze()
        gc.set_threshold(*before)

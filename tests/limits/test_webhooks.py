"""Budget webhooks against a local aiohttp receiver: HMAC-signed, sent once per budget period for the
threshold and for exhaustion, retried on failure, never blocking the request."""

from __future__ import annotations

import asyncio
import secrets
import time
from collections.abc import AsyncIterator
from decimal import Decimal
from typing import Any, cast

import orjson
import pytest
from aiohttp import web

from tests.limits.test_guard import PRICES, ROUTE, TOKENS, context, principal, record, request, rid
from tollway.limits.backend import Backend
from tollway.limits.cache import RuleCache
from tollway.limits.guard import LimitsGuard
from tollway.limits.rules import BudgetRule, RuleBook
from tollway.limits.store import RuleStore
from tollway.limits.webhooks import SIGNATURE_HEADER, Webhooks, sign, verify
from tollway.settings import LimitsConfig

SECRET = b"whsec-test-" + secrets.token_hex(8).encode()


class Receiver:
    def __init__(self) -> None:
        self.received: list[tuple[dict[str, str], bytes]] = []
        self.fail_next = 0
        self.port = 0
        self.arrived = asyncio.Event()

    async def handle(self, request: web.Request) -> web.Response:
        body = await request.read()
        if self.fail_next > 0:
            self.fail_next -= 1
            return web.Response(status=503)
        self.received.append((dict(request.headers), body))
        self.arrived.set()
        return web.Response(status=204)

    def events(self) -> list[dict[str, Any]]:
        return [cast(dict[str, Any], orjson.loads(body)) for _, body in self.received]

    async def wait(self, n: int, timeout: float = 10.0) -> None:
        deadline = time.monotonic() + timeout
        while len(self.received) < n:
            assert time.monotonic() < deadline, f"{len(self.received)} webhooks, expected {n}"
            await asyncio.sleep(0.02)


@pytest.fixture
async def receiver() -> AsyncIterator[Receiver]:
    r = Receiver()
    app = web.Application()
    app.router.add_post("/hook", r.handle)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    r.port = runner.addresses[0][1]
    yield r
    await runner.cleanup()


def test_signatures() -> None:
    body = b'{"a":1}'
    now = int(time.time())
    header = sign(SECRET, now, body)
    assert verify(SECRET, header, body)
    assert not verify(SECRET, header, body + b" ")
    assert not verify(b"other", header, body)
    assert not verify(SECRET, sign(SECRET, now - 3600, body), body)  # too old: a replay
    assert not verify(SECRET, "garbage", body)


async def test_threshold_and_exhaustion_fire_once(backend: Backend, receiver: Receiver) -> None:
    hooks = Webhooks(f"http://127.0.0.1:{receiver.port}/hook", SECRET, base_delay_s=0.05)
    hooks.start()
    p = principal()
    rule = BudgetRule(rid("bud"), "key", p.key_id, Decimal("0.1"), "monthly", Decimal("0.5"))
    cache = RuleCache(cast(RuleStore, None))
    cache.book = RuleBook.build(1, [rule], [])
    guard = LimitsGuard(cache, backend, PRICES, LimitsConfig(), TOKENS, hooks)
    try:
        for output in (10, 15, 10):  # $0.002 an output token: spent 0.02, 0.05 (crosses 50%), 0.07
            ctx = context(p)
            await guard.admit(ctx, request(max_output=5), ROUTE)
            await guard.settle(ctx, record(ctx, 0, output))
        await receiver.wait(1)
        ctx = context(p)
        await guard.admit(ctx, request(max_output=2), ROUTE)
        await guard.settle(ctx, record(ctx, 0, 15))  # 0.1 >= 0.1: exhausted
        await receiver.wait(2)
        with pytest.raises(Exception):  # noqa: B017  (a 402 GatewayError)
            await guard.admit(context(p), request(max_output=2), ROUTE)
        await asyncio.sleep(0.2)
    finally:
        await hooks.stop()
    events = receiver.events()
    assert [e["type"] for e in events] == ["budget.threshold_crossed", "budget.exhausted"]
    first = events[0]["data"]
    assert first["budget_id"] == rule.id and first["entity_id"] == p.key_id and first["limit_usd"] == "0.1"
    assert first["spent_usd"] == "0.05" and first["alert_threshold"] == "0.5" and first["resets_at"]
    for headers, body in receiver.received:
        assert verify(SECRET, headers[SIGNATURE_HEADER], body)
        assert headers["x-tollway-event"] in ("budget.threshold_crossed", "budget.exhausted")


async def test_delivery_is_retried(receiver: Receiver) -> None:
    receiver.fail_next = 2
    hooks = Webhooks(f"http://127.0.0.1:{receiver.port}/hook", SECRET, base_delay_s=0.05)
    hooks.start()
    try:
        hooks.emit("budget.exhausted", {"budget_id": "bud_x"})
        await receiver.wait(1)
    finally:
        await hooks.stop()
    assert hooks.delivered == 1 and hooks.failed == 0 and receiver.fail_next == 0
    headers, body = receiver.received[0]
    assert verify(SECRET, headers[SIGNATURE_HEADER], body)
    assert orjson.loads(body)["id"] == headers["x-tollway-event-id"]


async def test_undeliverable_webhooks_are_counted_not_raised() -> None:
    hooks = Webhooks("http://127.0.0.1:1/hook", SECRET, attempts=2, base_delay_s=0.01, timeout_s=1)
    hooks.start()
    hooks.emit("budget.exhausted", {"budget_id": "bud_x"})
    await hooks.stop(timeout=5)
    assert hooks.failed == 1 and hooks.delivered == 0

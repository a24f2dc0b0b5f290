"""The guard against both backends, with principals built directly: what is reserved, what a refusal
says, which rule wins, headers, settlement on every outcome, the unpriced and failure policies, clock skew,
hashed keys, and exactness of many concurrent admissions in one process."""

from __future__ import annotations

import asyncio
import math
import re
import secrets
import time
from decimal import Decimal
from typing import Any, cast

import pytest
from redis.asyncio import Redis

from tollway.core.context import ExchangeRecord, Principal, RequestContext
from tollway.core.errors import GatewayError
from tollway.core.routing import Route
from tollway.core.types import CanonicalRequest, Usage
from tollway.limits.backend import Backend
from tollway.limits.budgets import worst_case_cost
from tollway.limits.cache import RuleCache
from tollway.limits.guard import EXTRA_KEY, LimitsGuard
from tollway.limits.memory_backend import MemoryBackend
from tollway.limits.redis_backend import RedisBackend
from tollway.limits.rules import BudgetRule, RateRule, RuleBook
from tollway.limits.store import RuleStore
from tollway.limits.tokens import TokenCounter
from tollway.metering.cost import compute_cost
from tollway.metering.pricing import PriceTable
from tollway.providers.base import ProviderSettings
from tollway.providers.registry import adapter_for
from tollway.settings import LimitsConfig

D = Decimal
PRICES = PriceTable.load({"openai/gpt-4o-mini": {"input": "1000", "output": "2000"}})  # $0.001 / $0.002 a token
ROUTE = Route(ProviderSettings("openai", "openai_responses", "http://x/v1", "k"), adapter_for("openai_responses"),
              "gpt-4o-mini")
TOKENS = TokenCounter()


def principal(key_id: str | None = None, project: str = "proj_1") -> Principal:
    return Principal(key_id=key_id or "key_" + secrets.token_hex(4), key_name="ci", org_id="org_1",
                     org_name="Acme", team_id="team_1", team_name="Search", project_id=project,
                     project_name="Rerank")


def request(text: str = "hello there", max_output: int | None = 50, model: str = "gpt-4o-mini") -> CanonicalRequest:
    return CanonicalRequest(model=model, input=[{"type": "message", "role": "user", "content": text}],
                            max_output_tokens=max_output)


def context(p: Principal | None) -> RequestContext:
    return RequestContext(request_id="req_" + secrets.token_hex(4), started=time.perf_counter(), principal=p)


def record(ctx: RequestContext, input_tokens: int = 10, output_tokens: int = 20, status: str = "completed",
           priced: bool = True) -> ExchangeRecord:
    usage = Usage(input_tokens=input_tokens, output_tokens=output_tokens)
    cost = compute_cost(PRICES.lookup("openai", "gpt-4o-mini"), usage, PRICES.version) if priced else None
    return ExchangeRecord(request_id=ctx.request_id, created_at=time.time(), principal=ctx.principal,
                          end_user_id=None, end_user_external_id=None, door="responses", model="gpt-4o-mini",
                          provider="openai", upstream_model="gpt-4o-mini", streaming=False, status=status,
                          http_status=200, error_code=None, usage=usage, cost=cost, latency_ms=1.0, overhead_ms=0.1,
                          tags={})


def rid(prefix: str) -> str:
    return f"{prefix}_{secrets.token_hex(8)}"


def guard_for(backend: Backend, budgets: list[BudgetRule] = (), rates: list[RateRule] = (),  # type: ignore[assignment]
              **config: Any) -> LimitsGuard:
    cache = RuleCache(cast(RuleStore, None))
    cache.book = RuleBook.build(1, list(budgets), list(rates))
    return LimitsGuard(cache, backend, PRICES, LimitsConfig(**config), tokens=TOKENS)


async def worst(req: CanonicalRequest) -> Decimal:
    price = PRICES.lookup("openai", "gpt-4o-mini")
    assert price is not None
    return worst_case_cost(price, await TOKENS.input_tokens(req, "gpt-4o-mini"), req.max_output_tokens or 0)


async def test_every_budget_of_the_chain_is_reserved_then_settled(backend: Backend) -> None:
    p = principal()
    rules = [BudgetRule(rid("bud"), "org", "org_1", D(100), "monthly"),
             BudgetRule(rid("bud"), "project", "proj_1", D(50), "daily"),
             BudgetRule(rid("bud"), "key", p.key_id, D(10), "total")]
    guard = guard_for(backend, rules)
    req = request()
    ctx = context(p)
    await guard.admit(ctx, req, ROUTE)
    reservation = await worst(req)
    assert reservation > 0
    for rule in rules:
        status = await guard.budget_status(rule, rule.scope_id)
        assert (D(status["spent_usd"]), D(status["reserved_usd"])) == (D(0), reservation)
    rec = record(ctx)
    await guard.settle(ctx, rec)
    assert rec.cost is not None and rec.cost.total_usd == D("0.05")
    for rule in rules:
        status = await guard.budget_status(rule, rule.scope_id)
        assert (D(status["spent_usd"]), D(status["reserved_usd"])) == (D("0.05"), D(0))
        assert D(status["remaining_usd"]) == rule.limit_usd - D("0.05")
    assert guard.inflight == {} and EXTRA_KEY not in ctx.extra


async def test_exhausted_budget_is_402_naming_it(backend: Backend) -> None:
    p = principal()
    rule = BudgetRule(rid("bud"), "project", "proj_1", D("0.1"), "monthly")
    guard = guard_for(backend, [rule])
    ctx = context(p)
    await guard.admit(ctx, request(max_output=40), ROUTE)
    await guard.settle(ctx, record(ctx, 10, 45))  # $0.1 exactly
    with pytest.raises(GatewayError) as info:
        await guard.admit(context(p), request(), ROUTE)
    err = info.value
    assert (err.status, err.type, err.code) == (402, "insufficient_quota", "budget_exceeded")
    assert re.fullmatch(r"project Rerank has \$0\.00 of \$0\.10 left until \d{4}-\d\d-01T00:00:00\+00:00", err.message)
    assert err.to_json()["error"]["type"] == "insufficient_quota"


async def test_a_request_too_costly_for_what_is_left_says_so(backend: Backend) -> None:
    rule = BudgetRule(rid("bud"), "org", "org_1", D("0.5"), "total")
    guard = guard_for(backend, [rule])
    with pytest.raises(GatewayError) as info:
        await guard.admit(context(principal()), request(max_output=1000), ROUTE)  # up to ~$2
    assert info.value.status == 402
    assert info.value.message.startswith("org Acme has $0.50 of $0.50 left (a total budget: it does not reset); "
                                         "this request may cost up to $2.0")


async def test_reservations_in_flight_refuse_with_429(backend: Backend) -> None:
    rule = BudgetRule(rid("bud"), "org", "org_1", D("0.2"), "daily")
    guard = guard_for(backend, [rule])
    first = context(principal())
    await guard.admit(first, request(max_output=60), ROUTE)  # reserves ~$0.13
    with pytest.raises(GatewayError) as info:
        await guard.admit(context(principal()), request(max_output=60), ROUTE)
    err = info.value
    assert (err.status, err.code, err.headers["retry-after"]) == (429, "budget_reserved", "1")
    assert "reserved by requests in flight" in err.message
    await guard.settle(first, record(first, 5, 5))
    await guard.admit(context(principal()), request(max_output=60), ROUTE)


async def test_cross_mode_overspends_by_at_most_one_reservation(backend: Backend) -> None:
    rule = BudgetRule(rid("bud"), "org", "org_1", D("0.2"), "total")
    guard = guard_for(backend, [rule], budget_admission="cross")
    req = request(max_output=60)
    ctxs = []
    for _ in range(2):
        c = context(principal())
        await guard.admit(c, req, ROUTE)
        ctxs.append(c)
    with pytest.raises(GatewayError):
        await guard.admit(context(principal()), req, ROUTE)
    for c in ctxs:  # both use their whole reservation
        tokens = await TOKENS.input_tokens(req, "gpt-4o-mini")
        await guard.settle(c, record(c, tokens, 60))
    status = await guard.budget_status(rule, "org_1")
    assert D(status["spent_usd"]) == 2 * await worst(req) <= rule.limit_usd + await worst(req)


async def test_rate_headers_and_the_strictest_rule(backend: Backend) -> None:
    p = principal()
    key_rule = RateRule(rid("rl"), "key", p.key_id, rpm=5, tpm=100_000)
    project_rule = RateRule(rid("rl"), "project", "proj_1", rpm=3)
    guard = guard_for(backend, rates=[key_rule, project_rule])
    seen = []
    for _ in range(3):
        ctx = context(p)
        await guard.admit(ctx, request(), ROUTE)
        seen.append(dict(ctx.extra["response_headers"]))
    assert [h[b"x-ratelimit-remaining-requests"] for h in seen] == [b"2", b"1", b"0"]
    assert {h[b"x-ratelimit-limit-requests"] for h in seen} == {b"3"}
    assert seen[0][b"x-ratelimit-limit-tokens"] == b"100000" and seen[0][b"x-ratelimit-reset-requests"] == b"1m0s"
    with pytest.raises(GatewayError) as info:
        await guard.admit(context(p), request(), ROUTE)
    err = info.value
    assert (err.status, err.type, err.code) == (429, "rate_limit_error", "rate_limit_exceeded")
    assert err.message.startswith(f"Rate limit reached for project Rerank (rule {project_rule.id}) on requests per "
                                  "min (RPM): Limit 3, Used 3, Requested 1. Please try again in ")
    assert 59 <= int(err.headers["retry-after"]) <= 60 and int(err.headers["retry-after-ms"]) <= 60_000
    assert err.headers["x-ratelimit-limit-requests"] == "3" and err.headers["x-ratelimit-remaining-requests"] == "0"
    assert err.headers["x-tollway-rate-limit-rule"] == project_rule.id


async def test_wildcard_and_model_rules(backend: Backend) -> None:
    each_key = RateRule(rid("rl"), "key", "*", rpm=1)
    model = RateRule(rid("rl"), "model", "openai/gpt-4o-mini", rpm=3)
    guard = guard_for(backend, rates=[each_key, model])
    a, b, c, d = (principal() for _ in range(4))
    for p in (a, b, c):
        await guard.admit(context(p), request(), ROUTE)  # each key has its own window
    with pytest.raises(GatewayError) as info:
        await guard.admit(context(a), request(), ROUTE)
    assert f"rule {each_key.id}" in info.value.message
    with pytest.raises(GatewayError) as info:
        await guard.admit(context(d), request(), ROUTE)  # a fresh key, but the model saw 3 already
    assert info.value.message.startswith("Rate limit reached for model openai/gpt-4o-mini")


async def test_tokens_and_concurrency_are_settled(backend: Backend) -> None:
    p = principal()
    rule = RateRule(rid("rl"), "key", p.key_id, tpm=1000, max_concurrent=1)
    guard = guard_for(backend, rates=[rule])
    ctx = context(p)
    await guard.admit(ctx, request(max_output=500), ROUTE)
    with pytest.raises(GatewayError) as info:
        await guard.admit(context(p), request(max_output=10), ROUTE)
    assert info.value.message.startswith(f"Concurrency limit reached for key ci (rule {rule.id})")
    await guard.settle(ctx, record(ctx, 10, 20))
    status = await guard.rate_status(rule, p.key_id)
    assert status["tokens"]["used"] == 30 and status["concurrent"]["used"] == 0
    with pytest.raises(GatewayError) as info:
        await guard.admit(context(p), request(max_output=5000), ROUTE)
    assert info.value.message.startswith(f"Request too large for key ci (rule {rule.id}) on tokens per min (TPM)")


async def test_settlement_of_a_failed_exchange_releases_everything(backend: Backend) -> None:
    p = principal()
    budget = BudgetRule(rid("bud"), "key", p.key_id, D(1), "weekly")
    guard = guard_for(backend, [budget], [RateRule(rid("rl"), "key", p.key_id, max_concurrent=1)])
    ctx = context(p)
    await guard.admit(ctx, request(), ROUTE)
    await guard.settle(ctx, record(ctx, 0, 0, status="error", priced=False))
    status = await guard.budget_status(budget, p.key_id)
    assert (status["spent_usd"], status["reserved_usd"]) == ("0", "0")
    await guard.admit(context(p), request(), ROUTE)  # the concurrency slot is free again


async def test_unpriced_models(backend: Backend) -> None:
    budget = BudgetRule(rid("bud"), "org", "org_1", D(1), "monthly")
    route = Route(ProviderSettings("local", "openai_chat", "http://x/v1"), adapter_for("openai_chat"), "my-llm")
    refuse = guard_for(backend, [budget])
    with pytest.raises(GatewayError) as info:
        await refuse.admit(context(principal()), request(model="my-llm"), route)
    assert (info.value.status, info.value.code, info.value.param) == (402, "model_unpriced", "model")
    admit = guard_for(backend, [budget], unpriced_policy="admit")
    ctx = context(principal())
    await admit.admit(ctx, request(model="my-llm"), route)
    assert (b"x-tollway-budget", b"unpriced") in ctx.extra["response_headers"]
    assert admit.stats.admitted_unpriced == 1


@pytest.mark.parametrize("policy", ["open", "closed"])
async def test_redis_down_follows_the_failure_policy(policy: str) -> None:
    dead = RedisBackend("redis://127.0.0.1:1/0", timeout_s=0.2)
    p = principal()
    budget = BudgetRule(rid("bud"), "key", p.key_id, D(1), "monthly")
    guard = guard_for(dead, [budget], [RateRule(rid("rl"), "key", p.key_id, rpm=1)],
                      redis_failure_policy=policy)
    try:
        for _ in range(3):
            ctx = context(p)
            if policy == "closed":
                with pytest.raises(GatewayError) as info:
                    await guard.admit(ctx, request(), ROUTE)
                assert (info.value.status, info.value.code) == (503, "limits_unavailable")
            else:
                await guard.admit(ctx, request(), ROUTE)  # rpm=1 is not enforced: nothing to check it with
                assert ctx.extra[EXTRA_KEY].reserved is False
        stats = guard.stats
        assert (stats.refused_unavailable, stats.admitted_unchecked) == ((3, 0) if policy == "closed" else (0, 3))
        assert dead.down and dead.failures >= 1
    finally:
        await dead.close()


async def test_rules_not_loaded_follow_the_failure_policy() -> None:
    cache = RuleCache(cast(RuleStore, None))
    closed = LimitsGuard(cache, MemoryBackend(), PRICES, LimitsConfig(redis_failure_policy="closed"), TOKENS)
    with pytest.raises(GatewayError) as info:
        await closed.admit(context(principal()), request(), ROUTE)
    assert info.value.status == 503
    opened = LimitsGuard(cache, MemoryBackend(), PRICES, LimitsConfig(), TOKENS)
    await opened.admit(context(principal()), request(), ROUTE)
    assert opened.stats.admitted_unchecked == 1


async def test_budget_periods_follow_the_redis_clock(redis_url: str) -> None:
    """A process whose clock is two days off still charges the period Redis says it is."""
    backend = RedisBackend(redis_url)
    try:
        p = principal()
        rule = BudgetRule(rid("bud"), "key", p.key_id, D(1), "daily")
        skewed = guard_for(backend, [rule])
        skewed._offset_s = 2 * 86400.0  # as if its clock (or its estimate of Redis's) were wrong
        ctx = context(p)
        await skewed.admit(ctx, request(), ROUTE)
        assert abs(skewed._offset_s) < 5  # learned from Redis TIME while retrying
        honest = guard_for(backend, [rule])
        status = await honest.budget_status(rule, p.key_id)
        assert D(status["reserved_usd"]) == await worst(request())
    finally:
        await backend.close()


async def test_redis_keys_are_hashed(redis_url: str) -> None:
    backend = RedisBackend(redis_url)
    client = Redis.from_url(redis_url)
    try:
        marker = "key_visible_" + secrets.token_hex(4)
        p = principal(key_id=marker, project="proj_" + marker)
        guard = guard_for(backend, [BudgetRule(rid("bud"), "key", marker, D(1), "monthly")],
                          [RateRule(rid("rl"), "project", p.project_id or "", rpm=10, tpm=10_000, max_concurrent=2)])
        ctx = context(p)
        await guard.admit(ctx, request(), ROUTE)
        keys = [k.decode() async for k in client.scan_iter(match="tw:{tw}:*", count=1000)]
        assert keys and not any(marker in k for k in keys)
        shapes = r"tw:\{tw\}:[bqtc]:[0-9a-f]{32,40}(:[ln])?|tw:\{tw\}:s:[\w-]+|tw:\{tw\}:lock:[\w-]+"
        assert all(re.fullmatch(shapes, k) for k in keys), [k for k in keys if not re.fullmatch(shapes, k)]
        await guard.settle(ctx, record(ctx))
    finally:
        await client.aclose()
        await backend.close()


async def test_in_memory_mode_is_exact_under_concurrency() -> None:
    """500 requests race for a $1 budget and 300 RPM in one process: the admitted ones fit exactly."""
    p = principal()
    budget = BudgetRule(rid("bud"), "project", "proj_1", D(1), "monthly")
    rpm = RateRule(rid("rl"), "project", "proj_1", rpm=300)
    guard = guard_for(MemoryBackend(), [budget], [rpm], budget_admission="cross")
    req = request(max_output=5)
    reservation = await worst(req)

    async def one() -> tuple[RequestContext | None, int]:
        ctx = context(p)
        try:
            await guard.admit(ctx, req, ROUTE)
        except GatewayError as err:
            return None, err.status
        await asyncio.sleep(0.01)
        return ctx, 200

    results = await asyncio.gather(*(one() for _ in range(500)))
    admitted = [c for c, _ in results if c is not None]
    assert len(admitted) == min(300, math.ceil(budget.limit_usd / reservation))  # cross: while spent+reserved < $1
    await asyncio.gather(*(guard.settle(c, record(c, 5, 5)) for c in admitted))
    status = await guard.budget_status(budget, "proj_1")
    spent = D(status["spent_usd"])
    assert spent == len(admitted) * D("0.015") and D(status["reserved_usd"]) == 0
    assert spent <= budget.limit_usd + reservation


async def test_an_admission_never_settled_is_released() -> None:
    """A request lost by a bug elsewhere (never settled) is not renewed past the longest possible exchange."""
    p = principal()
    rule = BudgetRule(rid("bud"), "key", p.key_id, D(1), "monthly")
    guard = guard_for(MemoryBackend(), [rule], lease_s=1)
    guard._max_exchange_s = 0.2
    guard.start()
    try:
        await guard.admit(context(p), request(), ROUTE)
        assert D((await guard.budget_status(rule, p.key_id))["reserved_usd"]) > 0
        await asyncio.sleep(1.8)
        assert guard.inflight == {} and guard.stats.abandoned == 1
        assert D((await guard.budget_status(rule, p.key_id))["reserved_usd"]) == 0
    finally:
        await guard.stop()


class SlowSettle:
    """A backend whose settlements take 50 ms to arrive (a slow network)."""

    def __init__(self, backend: Backend) -> None:
        self.inner = backend
        self.name = backend.name

    async def settle(self, *args: Any) -> Any:
        await asyncio.sleep(0.05)
        return await self.inner.settle(*args)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)


async def test_the_next_request_waits_for_the_previous_settlement(backend: Backend) -> None:
    """The pipeline settles right after the response: a client's next request must not be refused because
    the previous one's slot and reservation are still being released."""
    p = principal()
    budget = BudgetRule(rid("bud"), "key", p.key_id, D("0.15"), "monthly")
    slots = RateRule(rid("rl"), "key", p.key_id, max_concurrent=1)
    guard = guard_for(cast(Backend, SlowSettle(backend)), [budget], [slots])
    for _ in range(3):
        ctx = context(p)
        await guard.admit(ctx, request(max_output=60), ROUTE)  # reserves ~$0.13 of $0.15
        settling = asyncio.ensure_future(guard.settle(ctx, record(ctx, 0, 0)))
        await asyncio.sleep(0)  # the settlement is under way, not finished
        nxt = context(p)
        await guard.admit(nxt, request(max_output=60), ROUTE)
        await settling
        await guard.settle(nxt, record(nxt, 0, 0))

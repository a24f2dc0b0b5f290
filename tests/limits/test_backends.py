"""Both backends (process memory and Redis) against the same contract: all-or-nothing admission, exact
money, fit/cross admission, idempotent settlement into the recorded period, once-only events, exact sliding
windows, concurrency slots, lease expiry and renewal, reconciliation raises, and exactness under
concurrent admissions."""

from __future__ import annotations

import asyncio
import secrets
from collections.abc import AsyncIterator, Callable
from decimal import Decimal

import pytest
from redis.asyncio import Redis

from tollway.limits.backend import (
    Backend,
    BudgetSettlement,
    BudgetSlot,
    Lease,
    RateSettlement,
    RateSlot,
)
from tollway.limits.periods import TOTAL, Window

D = Decimal
Name = Callable[[str], str]


@pytest.fixture
def lease() -> Name:
    """Unique lease ids per test (settled markers outlive a test in the shared Redis)."""
    prefix = secrets.token_hex(6)
    return lambda name: f"{prefix}-{name}"


CREATED: list[str] = []


def key() -> str:
    k = secrets.token_hex(16)
    CREATED.append(k)
    return k


@pytest.fixture(autouse=True)
async def _cleanup(request: pytest.FixtureRequest) -> AsyncIterator[None]:
    """Delete what a test wrote to the shared Redis (its counters have no expiry: total windows)."""
    yield
    if "redis" not in request.node.name:
        CREATED.clear()
        return
    client = Redis.from_url(request.getfixturevalue("redis_url"))
    try:
        for k in CREATED:
            names = [n async for n in client.scan_iter(match=f"tw:{{tw}}:*{k}*", count=1000)]
            if names:
                await client.delete(*names)
    finally:
        CREATED.clear()
        await client.aclose()


def budget(k: str, limit: str, amount: str, window: Window = TOTAL) -> BudgetSlot:
    return BudgetSlot(k, D(limit), D(amount), window)


def settlement(k: str, actual: str, limit: str = "1", alert: str | None = None, spend_key: str | None = None,
               window: Window = TOTAL) -> BudgetSettlement:
    return BudgetSettlement(k, spend_key or k, D(actual), window, None if alert is None else D(alert), D(limit))


async def test_admission_is_all_or_nothing(backend: Backend, lease: Name) -> None:
    wide, narrow = key(), key()
    slots = [budget(wide, "1", "0.3"), budget(narrow, "0.5", "0.3")]
    first = await backend.admit(lease("l1"), slots, [], 10_000, "fit")
    assert first.ok and first.budgets == [(D(0), D("0.3")), (D(0), D("0.3"))]
    second = await backend.admit(lease("l2"), slots, [], 10_000, "fit")
    assert not second.ok and [f.index for f in second.budget_failures] == [1]
    assert second.budget_failures[0].reserved == D("0.3") and not second.budget_failures[0].first_exhausted
    # the refusal wrote nothing: the wide budget still holds one reservation only
    assert await backend.budget_state(wide) == (D(0), D("0.3"))
    assert await backend.budget_state(narrow) == (D(0), D("0.3"))


async def test_fit_and_cross_admission(backend: Backend, lease: Name) -> None:
    fit, cross = key(), key()
    assert (await backend.admit(lease("a"), [budget(fit, "1", "0.6")], [], 10_000, "fit")).ok
    refused = await backend.admit(lease("b"), [budget(fit, "1", "0.6")], [], 10_000, "fit")
    assert not refused.ok
    assert (await backend.admit(lease("a"), [budget(cross, "1", "0.6")], [], 10_000, "cross")).ok
    assert (await backend.admit(lease("b"), [budget(cross, "1", "0.6")], [], 10_000, "cross")).ok  # 0.6 < 1: crosses
    third = await backend.admit(lease("c"), [budget(cross, "1", "0.6")], [], 10_000, "cross")
    assert not third.ok and third.budget_failures[0].reserved == D("1.2")


async def test_settlement_releases_adds_actual_and_counts_once(backend: Backend, lease: Name) -> None:
    k = key()
    assert (await backend.admit(lease("l1"), [budget(k, "1", "0.4")], [], 10_000, "fit")).ok
    events = await backend.settle(lease("l1"), [settlement(k, "0.123456789012345678", alert="0.1")], [])
    assert events is not None and [(e.kind, e.spent) for e in events] == [("threshold", D("0.123456789012345678"))]
    assert await backend.settle(lease("l1"), [settlement(k, "0.123456789012345678", alert="0.1")], []) is None
    assert await backend.budget_state(k) == (D("0.123456789012345678"), D(0))
    assert (await backend.admit(lease("l2"), [budget(k, "1", "0.4")], [], 10_000, "fit")).ok
    events = await backend.settle(lease("l2"), [settlement(k, "0.9", alert="0.1")], [])
    assert events is not None and [e.kind for e in events] == ["exhausted"]  # the threshold fired already
    spent, reserved = await backend.budget_state(k)
    assert spent == D("1.023456789012345678") and reserved == 0
    refused = await backend.admit(lease("l3"), [budget(k, "1", "0.01")], [], 10_000, "fit")
    assert not refused.ok and not refused.budget_failures[0].first_exhausted  # the settlement flagged it


async def test_money_stays_exact_over_many_settlements(backend: Backend, lease: Name) -> None:
    k = key()
    for i in range(300):
        assert (await backend.admit(lease(f"l{i}"), [budget(k, "1000", "0.000000123456789012")], [], 10_000, "fit")).ok
        await backend.settle(lease(f"l{i}"), [settlement(k, "0.000000123456789012", limit="1000")], [])
    assert await backend.budget_state(k) == (D("0.000000123456789012") * 300, D(0))


async def test_spend_goes_to_the_recorded_period(backend: Backend, lease: Name) -> None:
    admitted, recorded = key(), key()
    assert (await backend.admit(lease("l1"), [budget(admitted, "1", "0.5")], [], 10_000, "fit")).ok
    await backend.settle(lease("l1"), [settlement(admitted, "0.2", spend_key=recorded)], [])
    assert await backend.budget_state(admitted) == (D(0), D(0))
    assert await backend.budget_state(recorded) == (D("0.2"), D(0))


async def test_period_mismatch_is_reported(backend: Backend, lease: Name) -> None:
    past = Window(0.0, 1.0)
    result = await backend.admit(lease("l"), [budget(key(), "1", "0.1", past)], [], 10_000, "fit")
    assert not result.ok and result.period_mismatch


async def test_requests_window_is_exact_and_says_when_to_retry(backend: Backend, lease: Name) -> None:
    k = key()
    slot = RateSlot(k, "r", 5, 1)
    for i in range(5):
        result = await backend.admit(lease(f"l{i}"), [], [slot], 10_000, "fit")
        assert result.ok and result.rates == [i + 1]
    refused = await backend.admit(lease("l5"), [], [slot], 10_000, "fit")
    assert not refused.ok and refused.rates == [5]
    failure = refused.rate_failures[0]
    assert failure.used == 5 and 59_000 < failure.retry_ms <= 60_000
    assert await backend.rate_state(k, "r") == 5


async def test_short_window_slides(backend: Backend, lease: Name) -> None:
    k = key()
    slot = RateSlot(k, "r", 2, 1, window_ms=300)
    assert (await backend.admit(lease("a"), [], [slot], 10_000, "fit")).ok
    await asyncio.sleep(0.15)
    assert (await backend.admit(lease("b"), [], [slot], 10_000, "fit")).ok
    refused = await backend.admit(lease("c"), [], [slot], 10_000, "fit")
    assert not refused.ok and 0 < refused.rate_failures[0].retry_ms <= 160
    await asyncio.sleep(refused.rate_failures[0].retry_ms / 1000 + 0.03)
    assert (await backend.admit(lease("c"), [], [slot], 10_000, "fit")).ok  # "a" left the window, "b" is still in it
    assert not (await backend.admit(lease("d"), [], [slot], 10_000, "fit")).ok


async def test_tokens_window_is_corrected_at_settlement(backend: Backend, lease: Name) -> None:
    k = key()
    assert (await backend.admit(lease("a"), [], [RateSlot(k, "t", 1000, 700)], 10_000, "fit")).ok
    refused = await backend.admit(lease("b"), [], [RateSlot(k, "t", 1000, 400)], 10_000, "fit")
    assert not refused.ok and refused.rate_failures[0].used == 700
    await backend.settle(lease("a"), [], [RateSettlement(k, "t", 120)])
    assert await backend.rate_state(k, "t") == 120
    assert (await backend.admit(lease("b"), [], [RateSlot(k, "t", 1000, 400)], 10_000, "fit")).ok
    too_large = await backend.admit(lease("c"), [], [RateSlot(k, "t", 1000, 5000)], 10_000, "fit")
    assert not too_large.ok and too_large.rate_failures[0].retry_ms == -1


async def test_concurrency_slots(backend: Backend, lease: Name) -> None:
    k = key()
    slot = RateSlot(k, "c", 2, 1)
    assert (await backend.admit(lease("a"), [], [slot], 10_000, "fit")).ok
    assert (await backend.admit(lease("b"), [], [slot], 10_000, "fit")).ok
    assert not (await backend.admit(lease("c"), [], [slot], 10_000, "fit")).ok
    await backend.settle(lease("a"), [], [RateSettlement(k, "c", 0)])
    assert (await backend.admit(lease("c"), [], [slot], 10_000, "fit")).ok
    assert await backend.rate_state(k, "c") == 2


async def test_leases_expire_unless_renewed(backend: Backend, lease: Name) -> None:
    """A crashed process stops renewing: its reservations and slots are released after the lease."""
    kept, lost, slots = key(), key(), key()
    slot = [RateSlot(slots, "c", 5, 1)]
    assert (await backend.admit(lease("alive"), [budget(kept, "1", "0.4")], slot, 400, "fit")).ok
    assert (await backend.admit(lease("dead"), [budget(lost, "1", "0.4")], slot, 400, "fit")).ok
    for _ in range(4):
        await asyncio.sleep(0.15)
        await backend.renew([Lease("b", kept, lease("alive")), Lease("c", slots, lease("alive"))], 400)
    assert await backend.budget_state(kept) == (D(0), D("0.4"))
    assert await backend.budget_state(lost) == (D(0), D(0))
    assert await backend.rate_state(slots, "c") == 1
    # a late settlement of the expired lease still counts its spend (once)
    await backend.settle(lease("dead"), [settlement(lost, "0.25")], [RateSettlement(slots, "c", 0)])
    assert await backend.budget_state(lost) == (D("0.25"), D(0))


async def test_concurrent_admissions_are_exact(backend: Backend, lease: Name) -> None:
    money, requests = key(), key()

    async def one(i: int) -> bool:
        result = await backend.admit(lease(f"l{i}"), [budget(money, "1", "0.01")], [RateSlot(requests, "r", 1000, 1)],
                                     10_000, "fit")
        return result.ok

    results = await asyncio.gather(*(one(i) for i in range(250)))
    assert sum(results) == 100
    assert await backend.budget_state(money) == (D(0), D("1.00"))
    assert await backend.rate_state(requests, "r") == 100

    window = key()

    async def rpm(i: int) -> bool:
        return (await backend.admit(lease(f"r{i}"), [], [RateSlot(window, "r", 100, 1)], 10_000, "fit")).ok

    assert sum(await asyncio.gather(*(rpm(i) for i in range(150)))) == 100


async def test_raise_spent_only_raises(backend: Backend, lease: Name) -> None:
    k = key()
    assert await backend.raise_spent(k, D("0.5"), TOTAL) == D(0)
    assert await backend.raise_spent(k, D("0.4"), TOTAL) is None
    assert await backend.raise_spent(k, D("0.7"), TOTAL) == D("0.5")
    assert await backend.budget_state(k) == (D("0.7"), D(0))


async def test_lock_is_held_by_one(backend: Backend, lease: Name) -> None:
    name = key()
    assert await backend.try_lock(name, 0.3)
    assert not await backend.try_lock(name, 0.3)
    await asyncio.sleep(0.35)
    assert await backend.try_lock(name, 0.3)


async def test_a_long_request_keeps_its_slot(backend: Backend, lease: Name) -> None:
    """Renewal keeps a concurrency slot (and its set) alive however long the request runs."""
    k = key()
    assert (await backend.admit(lease("long"), [], [RateSlot(k, "c", 1, 1)], 200, "fit")).ok
    for _ in range(20):  # 2 s: longer than the set's own expiry (2 x lease + 1 s)
        await asyncio.sleep(0.1)
        await backend.renew([Lease("c", k, lease("long"))], 200)
    assert await backend.rate_state(k, "c") == 1
    assert not (await backend.admit(lease("other"), [], [RateSlot(k, "c", 1, 1)], 200, "fit")).ok

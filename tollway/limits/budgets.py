"""Budgets: what a request reserves, the counters it touches, and how a refusal reads. Pure logic; the
backends do the atomic accounting.

**Reserve, then settle.** Admission reserves the request's worst-case cost (:func:`worst_case_cost`: the
worst-case tokens of :mod:`tollway.limits.tokens` at the model's price, at the dearest applicable rates) on
every budget of its chain at once. When the exchange ends — completed, failed upstream, cut by the client —
the reservation is released and the exchange's actual cost (the ledger's ``total_usd`` for it, exactly) is
added to ``spent`` of the period it was recorded in.

**Admission** (``limits.budget_admission``), with ``used = spent + reserved``:

* ``fit`` (default): admitted iff ``used + reservation <= limit``. Spend never exceeds the limit unless a
  request costs more than its reservation (an estimate that was too low).
* ``cross``: admitted iff ``used < limit``: the budget is used to the last cent, and the request that
  crosses the limit can overspend it by at most its own reservation.

A refusal is **402** ``insufficient_quota`` / ``budget_exceeded`` when the budget cannot take the request
even with nothing in flight, and **429** ``budget_reserved`` (retry shortly) when only the reservations of
requests in flight stand in the way.
"""

from __future__ import annotations

import hashlib
from decimal import Decimal
from zoneinfo import ZoneInfo

from tollway.core.errors import GatewayError
from tollway.core.types import Usage
from tollway.limits.backend import BudgetFailure, Mode
from tollway.limits.money import ZERO, usd
from tollway.limits.periods import Window, resets_at
from tollway.limits.rules import SCOPE_WORDS, BudgetRule, Target
from tollway.metering.cost import compute_cost
from tollway.metering.pricing import ModelPrice


def worst_case_cost(price: ModelPrice, input_tokens: int, output_tokens: int) -> Decimal:
    """The most ``input_tokens`` in and ``output_tokens`` out can cost: every input token written to the
    cache when cache writes cost more than input, every output token a reasoning token when reasoning costs
    more than output."""
    input_rate, _, write_rate, output_rate = price.base_rates
    writes = input_tokens if write_rate > input_rate else 0
    if price.long_rates is not None and input_tokens > 200_000:
        writes = input_tokens if price.long_rates[2] > price.long_rates[0] else 0
    reasoning = output_tokens if price.reasoning is not None and price.reasoning > output_rate else 0
    usage = Usage(input_tokens=input_tokens, output_tokens=output_tokens, cache_write_tokens=writes,
                  reasoning_tokens=reasoning)
    total = compute_cost(price, usage, "").total_usd
    return ZERO if total is None else total


def counter_key(rule: BudgetRule, entity_id: str, window: Window) -> str:
    """The opaque id of one budget counter: rule, entity and period start, hashed."""
    material = f"b\x00{rule.id}\x00{entity_id}\x00{window.start_ms}".encode()
    return hashlib.sha256(material).hexdigest()[:40]


def alert_amount(rule: BudgetRule) -> Decimal | None:
    if rule.alert_threshold is None:
        return None
    return rule.limit_usd * rule.alert_threshold


def exhausted(mode: Mode, limit: Decimal, spent: Decimal, amount: Decimal) -> bool:
    """True when the budget refuses the request even with nothing in flight."""
    return spent >= limit if mode == "cross" else spent + amount > limit


def describe(target: Target) -> str:
    return f"{SCOPE_WORDS[target.scope]} {target.name}"


def _until(window: Window, tz: ZoneInfo) -> str:
    when = resets_at(window, tz)
    return "(a total budget: it does not reset)" if when is None else f"until {when}"


def refusal(rule: BudgetRule, target: Target, window: Window, failure: BudgetFailure, amount: Decimal,
            mode: Mode, tz: ZoneInfo) -> GatewayError:
    """402 for an exhausted budget, 429 when only reservations in flight stand in the way."""
    limit = rule.limit_usd
    left = max(limit - failure.spent, ZERO)
    head = f"{describe(target)} has {usd(left)} of {usd(limit)} left {_until(window, tz)}"
    if exhausted(mode, limit, failure.spent, amount):
        message = head
        if left > 0:
            message += (f"; this request may cost up to {usd(amount)} (set a lower max_output_tokens to "
                        "reserve less)")
        return GatewayError(402, message, type="insufficient_quota", code="budget_exceeded",
                            headers={"x-tollway-budget-rule": rule.id})
    message = (f"{head}, but {usd(failure.reserved)} of it is reserved by requests in flight; retry when they "
               "finish")
    return GatewayError(429, message, type="rate_limit_error", code="budget_reserved",
                        headers={"retry-after": "1", "retry-after-ms": "1000", "x-tollway-budget-rule": rule.id})


def unpriced(model: str, target: Target) -> GatewayError:
    return GatewayError(402, f"model {model!r} has no price, and {describe(target)} has a budget: the request "
                        "is refused (limits.unpriced_policy: refuse); add a price for the model",
                        type="insufficient_quota", code="model_unpriced", param="model")

"""The budgets-and-rate-limits :class:`~tollway.core.steps.Guard`.

``admit`` (after model resolution, before the upstream call): find every budget and rate-limit rule that
applies (org, team, project, key, end user; key, end user, project, model), size the request (worst-case
tokens and cost), and make ONE atomic backend call that checks all of them and, only if all pass,
reserves the cost on every budget, enters the request in every window and takes every concurrency slot.
A refusal raises 402/429 naming the rule; admitted requests get ``x-ratelimit-*`` headers.

``settle`` (exactly once per admitted request, on every outcome): release the reservation, add the
actual cost of the exchange (``record.cost.total_usd`` — what the ledger records) to the budgets, correct
the TPM entries to the tokens used, free the concurrency slots. A settlement the backend cannot take is
retried for a few seconds; if it is lost its reservation still expires with its lease, and reconciliation
against the ledger restores the spend.

The pipeline settles just after the response is sent, so a client's next request can arrive while its
previous one is still being settled; a refusal caused only by reservations or concurrency slots whose
settlement this process has under way waits for those (at most :data:`SETTLE_WAIT_S`) and is retried once.

No rule applies → no backend call at all. A request admitted while the backend is down
(``redis_failure_policy: open``) is still settled, so its spend is counted if the backend is back by then.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import secrets
import time
from dataclasses import asdict, dataclass
from decimal import Decimal
from typing import Any
from zoneinfo import ZoneInfo

from tollway.core.context import ExchangeRecord, RequestContext
from tollway.core.errors import GatewayError
from tollway.core.routing import Route
from tollway.core.types import CanonicalRequest
from tollway.limits import budgets, ratelimit
from tollway.limits.backend import (
    AdmitResult,
    Backend,
    BackendUnavailable,
    BudgetEvent,
    BudgetSettlement,
    BudgetSlot,
    Lease,
    RateSettlement,
    RateSlot,
)
from tollway.limits.cache import RuleCache
from tollway.limits.money import ZERO, plain
from tollway.limits.periods import PeriodClock, Window, iso, resets_at
from tollway.limits.rules import BudgetRule, RateRule, Target, budget_targets
from tollway.limits.tokens import TokenCounter, output_tokens
from tollway.limits.webhooks import Webhooks
from tollway.metering.pricing import PriceTable
from tollway.settings import LimitsConfig

log = logging.getLogger("tollway.limits")

EXTRA_KEY = "limits"
SETTLE_RETRY_DELAYS_S = (0.1, 0.25, 0.5, 1.0, 2.0, 4.0)
SETTLE_WAIT_S = 0.25  # the most an admission waits for this process's settlements on its counters


@dataclass(slots=True)
class Admission:
    lease_id: str
    budgets: list[tuple[BudgetRule, Target, BudgetSlot]]
    rates: list[RateSlot]  # the token windows and concurrency slots to settle
    leases: list[Lease]
    reserved: bool  # False: admitted without the backend (failure policy open)
    admitted_at: float = 0.0  # monotonic


@dataclass(slots=True)
class LimitStats:
    admitted: int = 0
    refused_budget: int = 0
    refused_rate: int = 0
    admitted_unchecked: int = 0  # backend or rules unavailable, policy open
    refused_unavailable: int = 0  # backend or rules unavailable, policy closed
    admitted_unpriced: int = 0
    settled: int = 0
    settle_retries: int = 0
    settle_lost: int = 0
    renew_failures: int = 0
    abandoned: int = 0  # admissions never settled (a bug elsewhere): no longer renewed, so they expire

    def to_json(self) -> dict[str, int]:
        return asdict(self)


def _unavailable(reason: str) -> GatewayError:
    return GatewayError(503, f"budgets and rate limits cannot be checked ({reason}); retry shortly",
                        type="server_error", code="limits_unavailable", headers={"retry-after": "1"})


class LimitsGuard:
    def __init__(self, rules: RuleCache, backend: Backend, prices: PriceTable, config: LimitsConfig,
                 tokens: TokenCounter | None = None, webhooks: Webhooks | None = None,
                 max_exchange_s: float = 960.0) -> None:
        self.rules = rules
        self.backend = backend
        self.prices = prices
        self.config = config
        self.tokens = tokens or TokenCounter()
        self.webhooks = webhooks
        self.tz = ZoneInfo(config.timezone)
        self.clock = PeriodClock(self.tz)
        self.stats = LimitStats()
        self.inflight: dict[str, Admission] = {}
        self._lease_ms = int(config.lease_s * 1000)
        self._max_exchange_s = max_exchange_s  # no exchange outlives this (upstream total timeout + margin)
        self._offset_s = 0.0  # backend clock minus local clock (budget periods follow the backend's clock)
        self._renewer: asyncio.Task[None] | None = None
        self._warm: asyncio.Task[object] | None = None  # loads the tokenizer at start when rules need it
        self._pending: dict[str, tuple[frozenset[str], asyncio.Future[None]]] = {}  # settlements under way
        self._rules_warned = False

    # ---- lifecycle -------------------------------------------------------------------------------

    def start(self) -> None:
        loop = asyncio.get_running_loop()
        self._renewer = loop.create_task(self._renew_loop(), name="limits-renew")
        book = self.rules.book
        if book.budgets or any(r.tpm for rules in book.rates.values() for r in rules):
            self._warm = loop.create_task(self.tokens.encoding("o200k_base"), name="limits-tokenizer")

    async def stop(self) -> None:
        if self._warm is not None:
            with contextlib.suppress(asyncio.CancelledError):
                await self._warm
        if self._renewer is not None:
            self._renewer.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._renewer
            self._renewer = None

    # ---- admission -------------------------------------------------------------------------------

    def now(self) -> float:
        """Wall time on the backend's clock."""
        return time.time() + self._offset_s

    async def admit(self, ctx: RequestContext, req: CanonicalRequest, route: Route) -> bool:
        """Check and reserve; True when the request holds something :meth:`settle` must release."""
        book = self.rules.book
        if book.empty and book.loaded:  # no rule at all: nothing to check, nothing to settle
            return False
        await self._check(ctx, req, route)
        return EXTRA_KEY in ctx.extra

    async def _check(self, ctx: RequestContext, req: CanonicalRequest, route: Route) -> None:
        book = self.rules.book
        if not book.loaded:
            self._no_check(ctx, "the rules are not loaded yet (database unreachable)")
            return
        if book.empty:
            return
        targets = list(budget_targets(ctx.principal, ctx.end_user_id, ctx.end_user_external_id))
        budget_rules = book.budgets_for(iter(targets)) if book.budgets else []
        rate_rules: list[tuple[RateRule, Target]] = []
        if book.rates:
            rate_rules = book.rates_for(targets, (req.model, f"{route.provider.name}/{route.model}", route.model))
        if not budget_rules and not rate_rules:
            return
        price = self.prices.lookup(route.provider.name, route.model)
        if budget_rules and price is None:
            if self.config.unpriced_policy == "refuse":
                self.stats.refused_budget += 1
                raise budgets.unpriced(req.model, budget_rules[0][1])
            self.stats.admitted_unpriced += 1
            log.warning("limits: unpriced model admitted without a budget reservation",
                        extra={"event": "limits.unpriced_admitted", "model": req.model,
                               "request_id": ctx.request_id})
            ctx.extra.setdefault("response_headers", []).append((b"x-tollway-budget", b"unpriced"))
            budget_rules = []
            if not rate_rules:
                return
        tokens = 0
        amount = ZERO
        if budget_rules or any(rule.tpm is not None for rule, _ in rate_rules):
            tokens_in = await self.tokens.input_tokens(req, route.model)
            tokens_out = output_tokens(req, route.provider.kind, price)
            tokens = tokens_in + tokens_out
            if budget_rules and price is not None:
                amount = budgets.worst_case_cost(price, tokens_in, tokens_out)
        rate_slots: list[RateSlot] = []
        rate_owners: list[tuple[RateRule, Target]] = []
        for rule, target in rate_rules:
            for slot in ratelimit.slots(rule, target.entity_id, tokens):
                rate_slots.append(slot)
                rate_owners.append((rule, target))
        lease_id = secrets.token_hex(12)
        budget_slots = self._budget_slots(budget_rules, amount, self.now())
        try:
            result = await self._admit(lease_id, budget_rules, budget_slots, amount, rate_slots)
        except BackendUnavailable as exc:
            self._no_check(ctx, f"{self.backend.name} unreachable: {exc}")
            ctx.extra[EXTRA_KEY] = Admission(lease_id, budget_slots, self._to_settle(rate_slots), [], False)
            return
        if not result.ok and await self._settlements_pending(result, budget_slots, amount, rate_slots):
            try:  # this process's own settlements on these counters were in flight: count them, then retry
                result = await self._admit(lease_id, budget_rules, budget_slots, amount, rate_slots)
            except BackendUnavailable as exc:
                self._no_check(ctx, f"{self.backend.name} unreachable: {exc}")
                ctx.extra[EXTRA_KEY] = Admission(lease_id, budget_slots, self._to_settle(rate_slots), [], False)
                return
        if not result.ok:
            raise self._refusal(result, budget_slots, amount, rate_slots, rate_owners)
        admission = Admission(lease_id, budget_slots, self._to_settle(rate_slots), [
            *(Lease("b", slot.key, lease_id) for _, _, slot in budget_slots),
            *(Lease("c", slot.key, lease_id) for slot in rate_slots if slot.kind == "c")], True, time.monotonic())
        ctx.extra[EXTRA_KEY] = admission
        self.inflight[lease_id] = admission
        self.stats.admitted += 1
        if rate_slots:
            headers = ratelimit.headers(rate_slots, result.rates, True)
            if headers:
                ctx.extra.setdefault("response_headers", []).extend(headers)

    async def _admit(self, lease_id: str, rules: list[tuple[BudgetRule, Target]],
                     slots: list[tuple[BudgetRule, Target, BudgetSlot]], amount: Decimal,
                     rates: list[RateSlot]) -> AdmitResult:
        for _ in range(3):
            sent = time.time()
            result = await self.backend.admit(lease_id, [s for _, _, s in slots], rates, self._lease_ms,
                                              self.config.budget_admission)
            self._offset_s = result.now_ms / 1000 - (sent + time.time()) / 2
            if not result.period_mismatch:
                return result
            slots[:] = self._budget_slots(rules, amount, result.now_ms / 1000)
        raise BackendUnavailable("budget periods did not settle on the backend's clock")

    def _budget_slots(self, rules: list[tuple[BudgetRule, Target]], amount: Decimal,
                      at: float) -> list[tuple[BudgetRule, Target, BudgetSlot]]:
        out: list[tuple[BudgetRule, Target, BudgetSlot]] = []
        for rule, target in rules:
            window = self.clock.window(rule.period, at)
            out.append((rule, target, BudgetSlot(budgets.counter_key(rule, target.entity_id, window),
                                                 rule.limit_usd, amount, window)))
        return out

    async def _settlements_pending(self, result: AdmitResult, slots: list[tuple[BudgetRule, Target, BudgetSlot]],
                                   amount: Decimal, rates: list[RateSlot]) -> bool:
        """For a refusal that only reservations or concurrency slots in flight caused: wait (briefly) for
        this process's settlements on those counters that are already under way. A client's next request
        then never trips over its previous request's reservation, released a moment after the response."""
        if not self._pending or any(rates[f.index].kind != "c" for f in result.rate_failures):
            return False
        mode = self.config.budget_admission
        if any(budgets.exhausted(mode, slots[f.index][0].limit_usd, f.spent, amount) for f in result.budget_failures):
            return False
        keys = {slots[f.index][2].key for f in result.budget_failures} | {rates[f.index].key
                                                                          for f in result.rate_failures}
        waiting = [future for touched, future in self._pending.values() if touched & keys]
        if not waiting:
            return False
        await asyncio.wait(waiting, timeout=SETTLE_WAIT_S)
        return True

    @staticmethod
    def _to_settle(rates: list[RateSlot]) -> list[RateSlot]:
        return [slot for slot in rates if slot.kind != "r"]

    def _no_check(self, ctx: RequestContext, reason: str) -> None:
        if self.config.redis_failure_policy == "closed":
            self.stats.refused_unavailable += 1
            raise _unavailable(reason)
        self.stats.admitted_unchecked += 1
        if not self.rules.book.loaded and not self._rules_warned:
            self._rules_warned = True
            log.error("limits: admitting requests unchecked (redis_failure_policy: open): " + reason,
                      extra={"event": "limits.unchecked"})

    def _refusal(self, result: AdmitResult, slots: list[tuple[BudgetRule, Target, BudgetSlot]], amount: Decimal,
                 rates: list[RateSlot], owners: list[tuple[RateRule, Target]]) -> GatewayError:
        mode = self.config.budget_admission
        for failure in result.budget_failures:
            if failure.first_exhausted:
                rule, target, slot = slots[failure.index]
                self._budget_event("budget.exhausted", rule, target, slot.window, failure.spent)
        hard = [f for f in result.budget_failures
                if budgets.exhausted(mode, slots[f.index][0].limit_usd, f.spent, amount)]
        if hard:
            self.stats.refused_budget += 1
            worst = min(hard, key=lambda f: slots[f.index][0].limit_usd - f.spent)
            rule, target, slot = slots[worst.index]
            return budgets.refusal(rule, target, slot.window, worst, amount, mode, self.tz)
        if result.rate_failures:
            self.stats.refused_rate += 1
            worst_rate = max(result.rate_failures, key=lambda f: (f.retry_ms < 0, f.retry_ms))
            rule_r, target_r = owners[worst_rate.index]
            headers = ratelimit.headers(rates, result.rates, False) if len(result.rates) == len(rates) else []
            return ratelimit.refusal(rule_r, target_r, rates[worst_rate.index], worst_rate, headers)
        self.stats.refused_budget += 1
        reserved = max(result.budget_failures, key=lambda f: f.reserved)
        rule, target, slot = slots[reserved.index]
        return budgets.refusal(rule, target, slot.window, reserved, amount, mode, self.tz)

    # ---- settlement ------------------------------------------------------------------------------

    async def settle(self, ctx: RequestContext, record: ExchangeRecord) -> None:
        admission: Admission | None = ctx.extra.pop(EXTRA_KEY, None)
        if admission is None:
            return
        self.inflight.pop(admission.lease_id, None)
        actual = ZERO
        if record.cost is not None and record.cost.total_usd is not None:
            actual = record.cost.total_usd
        used = max(record.usage.input_tokens, 0) + max(record.usage.output_tokens, 0)
        spend: list[BudgetSettlement] = []
        for rule, target, slot in admission.budgets:
            window = self.clock.window(rule.period, record.created_at)
            key = slot.key if window == slot.window else budgets.counter_key(rule, target.entity_id, window)
            spend.append(BudgetSettlement(slot.key, key, actual, window, budgets.alert_amount(rule), rule.limit_usd))
        rates = [RateSettlement(slot.key, slot.kind, used) for slot in admission.rates]
        if not spend and not rates:
            return
        done: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        touched = frozenset([*(s.reserve_key for s in spend), *(r.key for r in rates if r.kind == "c")])
        self._pending[admission.lease_id] = (touched, done)
        try:
            events = await self._settle(admission.lease_id, spend, rates, ctx.request_id)
        finally:
            del self._pending[admission.lease_id]
            done.set_result(None)
        self.stats.settled += 1
        for event in events:
            rule, target, _ = admission.budgets[event.index]
            kind = "budget.threshold_crossed" if event.kind == "threshold" else "budget.exhausted"
            self._budget_event(kind, rule, target, spend[event.index].spend_window, event.spent)

    async def _settle(self, lease_id: str, spend: list[BudgetSettlement], rates: list[RateSettlement],
                      request_id: str) -> list[BudgetEvent]:
        for delay in (*SETTLE_RETRY_DELAYS_S, None):
            try:
                events = await self.backend.settle(lease_id, spend, rates)
            except BackendUnavailable as exc:
                if delay is None:
                    self.stats.settle_lost += 1
                    log.error("limits: settlement lost; the reservation expires with its lease and "
                              "reconciliation restores the spend from the ledger",
                              extra={"event": "limits.settle_lost", "request_id": request_id, "error": str(exc)})
                    return []
                self.stats.settle_retries += 1
                await asyncio.sleep(delay)
                continue
            return events or []
        return []

    # ---- leases, events, status --------------------------------------------------------------------

    async def _renew_loop(self) -> None:
        while True:
            await asyncio.sleep(self.config.lease_s / 3)
            too_old = time.monotonic() - self._max_exchange_s
            for lease_id, admission in list(self.inflight.items()):
                if admission.admitted_at < too_old:  # never settled: stop renewing, let its leases expire
                    del self.inflight[lease_id]
                    self.stats.abandoned += 1
                    log.error("limits: an admission was never settled; its reservation expires with its lease",
                              extra={"event": "limits.abandoned", "lease_id": lease_id})
            leases = [lease for admission in list(self.inflight.values()) for lease in admission.leases]
            if not leases:
                continue
            try:
                await self.backend.renew(leases, self._lease_ms)
            except BackendUnavailable:
                self.stats.renew_failures += 1

    def _budget_event(self, kind: str, rule: BudgetRule, target: Target, window: Window, spent: Decimal) -> None:
        log.warning("limits: " + kind.replace("_", " "), extra={
            "event": "limits." + kind, "budget_id": rule.id, "scope": rule.scope, "entity_id": target.entity_id,
            "spent_usd": plain(spent), "limit_usd": plain(rule.limit_usd)})
        if self.webhooks is None:
            return
        self.webhooks.emit(kind, {
            "budget_id": rule.id, "scope": rule.scope, "scope_id": rule.scope_id, "entity_id": target.entity_id,
            "entity_name": target.name, "period": rule.period, "limit_usd": plain(rule.limit_usd),
            "alert_threshold": None if rule.alert_threshold is None else plain(rule.alert_threshold),
            "spent_usd": plain(spent), "remaining_usd": plain(max(rule.limit_usd - spent, ZERO)),
            "period_start": int(window.start), "resets_at": resets_at(window, self.tz)})

    async def budget_status(self, rule: BudgetRule, entity_id: str) -> dict[str, Any]:
        window = self.clock.window(rule.period, self.now())
        spent, reserved = await self.backend.budget_state(budgets.counter_key(rule, entity_id, window))
        return {"entity_id": entity_id, "spent_usd": plain(spent), "reserved_usd": plain(reserved),
                "remaining_usd": plain(max(rule.limit_usd - spent - reserved, ZERO)),
                "limit_usd": plain(rule.limit_usd), "period": rule.period,
                "period_start": None if window.end is None else iso(window.start, self.tz),
                "resets_at": resets_at(window, self.tz)}

    async def rate_status(self, rule: RateRule, entity_id: str) -> dict[str, Any]:
        out: dict[str, Any] = {"entity_id": entity_id}
        for slot in ratelimit.slots(rule, entity_id, 0):
            used = await self.backend.rate_state(slot.key, slot.kind, slot.window_ms)
            name = {"r": "requests", "t": "tokens", "c": "concurrent"}[slot.kind]
            out[name] = {"limit": slot.limit, "used": used, "remaining": max(slot.limit - used, 0)}
        return out

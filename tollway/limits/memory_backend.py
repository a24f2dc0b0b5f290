"""The in-process backend: exact for one process, because every operation runs to completion on the
event loop without an ``await`` between its check and its write. With several worker processes and no
Redis each worker has its own counters (see ``limits.per_worker_fallback``).

Rate windows and leases use the monotonic clock; budget periods are decided by the guard from wall time.
"""

from __future__ import annotations

import math
import time
from collections import OrderedDict, deque
from collections.abc import Callable
from dataclasses import dataclass, field
from decimal import Decimal

from tollway.limits.backend import (
    WINDOW_MS,
    AdmitResult,
    BudgetEvent,
    BudgetFailure,
    BudgetSettlement,
    BudgetSlot,
    Lease,
    Mode,
    RateFailure,
    RateKind,
    RateSettlement,
    RateSlot,
)
from tollway.limits.money import ZERO
from tollway.limits.periods import Window

SETTLED_MEMORY_S = 120.0
SWEEP_EVERY_S = 60.0


def _fits(mode: Mode, held: Decimal, amount: Decimal, limit: Decimal) -> bool:
    """``held`` = spent + reserved. See :mod:`tollway.limits.budgets` for the two admission modes."""
    if mode == "fit":
        return held + amount <= limit
    return held < limit or (amount == 0 and held <= limit)


@dataclass(slots=True)
class _Budget:
    spent: Decimal = ZERO
    reserved: Decimal = ZERO
    leases: dict[str, tuple[Decimal, float]] = field(default_factory=dict)  # lease -> (amount, expiry)
    earliest: float = math.inf
    alerted: bool = False
    exhausted: bool = False
    expire_at: float = math.inf  # wall clock; 0 never set

    def purge(self, now: float) -> None:
        if now < self.earliest:
            return
        earliest = math.inf
        for lease_id, (amount, expiry) in list(self.leases.items()):
            if expiry <= now:
                del self.leases[lease_id]
                self.reserved -= amount
            elif expiry < earliest:
                earliest = expiry
        self.earliest = earliest


@dataclass(slots=True)
class _Window:
    entries: deque[tuple[float, str]] = field(default_factory=deque)
    tokens: dict[str, int] = field(default_factory=dict)
    total: int = 0

    def purge(self, now: float, window_s: float) -> None:
        cutoff = now - window_s
        entries = self.entries
        while entries and entries[0][0] <= cutoff:
            _, lease_id = entries.popleft()
            self.total -= self.tokens.pop(lease_id, 0)

    def retry_s(self, now: float, window_s: float, need: int, limit: int, used: int) -> float:
        """Seconds until ``need`` more fits (entries leave oldest first)."""
        freed = 0
        for ts, lease_id in self.entries:
            freed += self.tokens.get(lease_id, 0)
            if used - freed + need <= limit:
                return ts + window_s - now
        return window_s


@dataclass(slots=True)
class _Slots:
    leases: dict[str, float] = field(default_factory=dict)

    def purge(self, now: float) -> None:
        for lease_id, expiry in list(self.leases.items()):
            if expiry <= now:
                del self.leases[lease_id]


class MemoryBackend:
    name = "memory"

    def __init__(self, monotonic: Callable[[], float] = time.monotonic, wall: Callable[[], float] = time.time) -> None:
        self._mono = monotonic
        self._wall = wall
        self._budgets: dict[str, _Budget] = {}
        self._windows: dict[str, _Window] = {}
        self._slots: dict[str, _Slots] = {}
        self._settled: OrderedDict[str, float] = OrderedDict()
        self._locks: dict[str, float] = {}
        self._next_sweep = 0.0

    # ---- admission -------------------------------------------------------------------------------

    async def admit(self, lease_id: str, budgets: list[BudgetSlot], rates: list[RateSlot], lease_ms: int,
                    mode: Mode) -> AdmitResult:
        now, wall = self._mono(), self._wall()
        now_ms = int(wall * 1000)
        self._sweep(now, wall)
        if any(not slot.window.contains(wall) for slot in budgets):
            return AdmitResult(False, now_ms, period_mismatch=True)
        result = AdmitResult(True, now_ms)
        states: list[_Budget] = []
        for i, b in enumerate(budgets):
            state = self._budgets.get(b.key)
            if state is None:
                state = self._budgets[b.key] = _Budget(expire_at=b.window.expire_at_ms / 1000 or math.inf)
            state.purge(now)
            states.append(state)
            held = state.spent + state.reserved
            if not _fits(mode, held, b.amount, b.limit):
                exhausted = (state.spent + b.amount > b.limit) if mode == "fit" else state.spent >= b.limit
                first = exhausted and not state.exhausted
                if first:
                    state.exhausted = True
                result.budget_failures.append(BudgetFailure(i, state.spent, state.reserved, first))
        windows: list[_Window | _Slots] = []
        used: list[int] = []
        for j, slot in enumerate(rates):
            window_s = slot.window_ms / 1000
            if slot.kind == "c":
                slots = self._slots.setdefault(slot.key, _Slots())
                slots.purge(now)
                windows.append(slots)
                used_n = len(slots.leases)
                used.append(used_n)
                if used_n + 1 > slot.limit:
                    result.rate_failures.append(RateFailure(j, used_n, 1000))
                continue
            window = self._windows.setdefault(slot.key, _Window())
            window.purge(now, window_s)
            windows.append(window)
            used_n = len(window.entries) if slot.kind == "r" else window.total
            used.append(used_n)
            if used_n + slot.cost > slot.limit:
                if slot.cost > slot.limit:
                    retry = -1
                elif slot.kind == "r":
                    retry = math.ceil((window.entries[used_n - slot.limit][0] + window_s - now) * 1000)
                else:
                    retry = math.ceil(window.retry_s(now, window_s, slot.cost, slot.limit, used_n) * 1000)
                result.rate_failures.append(RateFailure(j, used_n, max(retry, -1)))
        if result.budget_failures or result.rate_failures:
            result.ok = False
            result.rates = used
            return result
        expiry = now + lease_ms / 1000
        for b, state in zip(budgets, states, strict=True):
            state.reserved += b.amount
            state.leases[lease_id] = (b.amount, expiry)
            state.earliest = min(state.earliest, expiry)
            result.budgets.append((state.spent, state.reserved))
        for slot, holder in zip(rates, windows, strict=True):
            if isinstance(holder, _Slots):
                holder.leases[lease_id] = expiry
                result.rates.append(len(holder.leases))
            else:
                holder.entries.append((now, lease_id))
                holder.tokens[lease_id] = slot.cost if slot.kind == "t" else 1
                holder.total += holder.tokens[lease_id]
                result.rates.append(len(holder.entries) if slot.kind == "r" else holder.total)
        return result

    # ---- settlement ------------------------------------------------------------------------------

    async def settle(self, lease_id: str, budgets: list[BudgetSettlement],
                     rates: list[RateSettlement]) -> list[BudgetEvent] | None:
        now = self._mono()
        if lease_id in self._settled:
            return None
        self._settled[lease_id] = now + SETTLED_MEMORY_S
        events: list[BudgetEvent] = []
        for i, s in enumerate(budgets):
            held = self._budgets.get(s.reserve_key)
            if held is not None:
                lease = held.leases.pop(lease_id, None)
                if lease is not None:
                    held.reserved -= lease[0]
            state = self._budgets.get(s.spend_key)
            if state is None:
                state = self._budgets[s.spend_key] = _Budget(expire_at=s.spend_window.expire_at_ms / 1000 or math.inf)
            state.spent += s.actual
            if s.alert_at is not None and state.spent >= s.alert_at and not state.alerted:
                state.alerted = True
                events.append(BudgetEvent(i, "threshold", state.spent))
            if state.spent >= s.limit and not state.exhausted:
                state.exhausted = True
                events.append(BudgetEvent(i, "exhausted", state.spent))
        for r in rates:
            if r.kind == "c":
                slots = self._slots.get(r.key)
                if slots is not None:
                    slots.leases.pop(lease_id, None)
            elif r.kind == "t":
                window = self._windows.get(r.key)
                if window is not None and lease_id in window.tokens:
                    window.total += r.tokens - window.tokens[lease_id]
                    window.tokens[lease_id] = r.tokens
        return events

    async def renew(self, leases: list[Lease], lease_ms: int) -> None:
        expiry = self._mono() + lease_ms / 1000
        for lease in leases:
            if lease.kind == "b":
                state = self._budgets.get(lease.key)
                if state is not None and lease.lease_id in state.leases:
                    state.leases[lease.lease_id] = (state.leases[lease.lease_id][0], expiry)
            else:
                slots = self._slots.get(lease.key)
                if slots is not None and lease.lease_id in slots.leases:
                    slots.leases[lease.lease_id] = expiry

    # ---- status and reconciliation -----------------------------------------------------------------

    async def budget_state(self, key: str) -> tuple[Decimal, Decimal]:
        state = self._budgets.get(key)
        if state is None:
            return ZERO, ZERO
        state.purge(self._mono())
        return state.spent, state.reserved

    async def rate_state(self, key: str, kind: RateKind, window_ms: int = WINDOW_MS) -> int:
        now = self._mono()
        if kind == "c":
            slots = self._slots.get(key)
            if slots is None:
                return 0
            slots.purge(now)
            return len(slots.leases)
        window = self._windows.get(key)
        if window is None:
            return 0
        window.purge(now, window_ms / 1000)
        return len(window.entries) if kind == "r" else window.total

    async def raise_spent(self, key: str, amount: Decimal, window: Window) -> Decimal | None:
        state = self._budgets.get(key)
        if state is None:
            state = self._budgets[key] = _Budget(expire_at=window.expire_at_ms / 1000 or math.inf)
        if amount <= state.spent:
            return None
        old, state.spent = state.spent, amount
        return old

    async def try_lock(self, name: str, ttl_s: float) -> bool:
        now = self._mono()
        if self._locks.get(name, 0.0) > now:
            return False
        self._locks[name] = now + ttl_s
        return True

    async def close(self) -> None:
        return None

    def _sweep(self, now: float, wall: float) -> None:
        """Drop counters of ended periods, empty windows and old settlement markers (every minute)."""
        if now < self._next_sweep:
            return
        self._next_sweep = now + SWEEP_EVERY_S
        for key, state in list(self._budgets.items()):
            if state.expire_at <= wall and not state.leases:
                del self._budgets[key]
        for wkey, window in list(self._windows.items()):
            window.purge(now, WINDOW_MS / 1000)
            if not window.entries:
                del self._windows[wkey]
        for skey, slots in list(self._slots.items()):
            slots.purge(now)
            if not slots.leases:
                del self._slots[skey]
        while self._settled and next(iter(self._settled.values())) <= now:
            self._settled.popitem(last=False)

"""What the guard asks of a limits backend (Redis shared by every process, or this process's memory) and
what it gets back. Both backends implement :class:`Backend` with the same semantics:

* :meth:`Backend.admit` checks **every** budget and rate limit of a request and, only if all pass, writes
  every reservation, window entry and concurrency slot — atomically (one Lua call in Redis; no ``await``
  between check and write in memory). A refusal writes nothing (except the once-per-period "exhausted"
  flag that makes one process send the webhook).
* Reservations and concurrency slots are leases: they expire ``lease_ms`` after admission unless the
  owning process renews them (:meth:`Backend.renew`), so a crashed process's reservations are released.
* :meth:`Backend.settle` releases a reservation and adds the actual cost to the spend of the period the
  exchange was recorded in; it is idempotent per lease (a retried settlement counts once).

The clock is the backend's own (Redis ``TIME``): rate windows and lease expiry never depend on the
clocks of the gateway processes. Keys are opaque hex digests of rule, entity and period.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from decimal import Decimal
from typing import Literal, Protocol

from tollway.limits.periods import Window

RateKind = Literal["r", "t", "c"]  # requests in the window, tokens in the window, concurrent requests
Mode = Literal["fit", "cross"]
WINDOW_MS = 60_000


class BackendUnavailable(Exception):
    """The backend cannot be reached (or answered nonsense): the failure policy applies."""


@dataclass(slots=True)
class BudgetSlot:
    key: str
    limit: Decimal
    amount: Decimal  # the reservation (worst-case cost)
    window: Window


@dataclass(slots=True)
class RateSlot:
    key: str
    kind: RateKind
    limit: int
    cost: int  # 1 for requests and concurrency; the worst-case tokens for "t"
    window_ms: int = WINDOW_MS


@dataclass(slots=True, frozen=True)
class BudgetFailure:
    index: int
    spent: Decimal
    reserved: Decimal
    first_exhausted: bool  # this refusal is the first of the period that found the budget exhausted


@dataclass(slots=True, frozen=True)
class RateFailure:
    index: int
    used: int
    retry_ms: int  # -1: the request alone exceeds the limit (never admissible)


@dataclass(slots=True)
class AdmitResult:
    ok: bool
    now_ms: int
    budgets: list[tuple[Decimal, Decimal]] = field(default_factory=list)  # (spent, reserved) after admission
    rates: list[int] = field(default_factory=list)  # used after admission
    budget_failures: list[BudgetFailure] = field(default_factory=list)
    rate_failures: list[RateFailure] = field(default_factory=list)
    period_mismatch: bool = False  # a budget window does not contain the backend's now: recompute, retry


@dataclass(slots=True)
class BudgetSettlement:
    reserve_key: str  # the budget counter the reservation was made on (admission period)
    spend_key: str  # the counter of the period the exchange was recorded in
    actual: Decimal
    spend_window: Window
    alert_at: Decimal | None  # threshold amount (limit x alert_threshold)
    limit: Decimal


@dataclass(slots=True)
class RateSettlement:
    key: str
    kind: RateKind
    tokens: int  # actual tokens ("t"); ignored otherwise


@dataclass(slots=True, frozen=True)
class BudgetEvent:
    index: int
    kind: Literal["threshold", "exhausted"]
    spent: Decimal


@dataclass(slots=True, frozen=True)
class Lease:
    """A renewable lease: a reservation ("b", on the budget counter ``key``) or a concurrency slot ("c")."""

    kind: Literal["b", "c"]
    key: str
    lease_id: str


class Backend(Protocol):
    name: str

    async def admit(self, lease_id: str, budgets: list[BudgetSlot], rates: list[RateSlot], lease_ms: int,
                    mode: Mode) -> AdmitResult: ...

    async def settle(self, lease_id: str, budgets: list[BudgetSettlement],
                     rates: list[RateSettlement]) -> list[BudgetEvent] | None:
        """The budget events this settlement caused; None if the lease was already settled."""
        ...

    async def renew(self, leases: list[Lease], lease_ms: int) -> None: ...

    async def budget_state(self, key: str) -> tuple[Decimal, Decimal]:
        """(spent, reserved) of a budget counter, expired reservations released first."""
        ...

    async def rate_state(self, key: str, kind: RateKind, window_ms: int = WINDOW_MS) -> int:
        """Requests or tokens in the window now, or concurrent requests."""
        ...

    async def raise_spent(self, key: str, amount: Decimal, window: Window) -> Decimal | None:
        """Set spent to ``amount`` if it is higher (reconciliation); the previous spent if raised, else None."""
        ...

    async def try_lock(self, name: str, ttl_s: float) -> bool:
        """True for the one process that holds ``name`` for ``ttl_s`` (periodic jobs)."""
        ...

    async def close(self) -> None: ...

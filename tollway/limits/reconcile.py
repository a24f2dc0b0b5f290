"""Reconciliation of budget spend against the usage ledger.

Every ``limits.reconcile_s`` one process (a backend lock elects it) sums, for every budget rule and every
entity it covers, ``usage_ledger.total_usd`` of the current period and **raises** the budget's ``spent``
to that sum when it is lower. Spend can fall behind the ledger when a settlement was lost (Redis down for
longer than the settlement retries, a process killed between recording and settling) or when Redis lost
its data; it is then restored here, logged (``limits.reconciled``) and returned as a :class:`Drift`.

``spent`` is never lowered: rows still in a process's ledger spool legitimately lag the spend. Ledger rows
of the last :data:`SETTLE_HORIZON_S` seconds are left out, so a settlement still being retried is never
counted twice. Budget periods and ledger rows are matched on the same instant (the exchange's
``created_at``), so a reconciled budget equals the ledger exactly.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any, cast

from sqlalchemy import Table, func, select
from sqlalchemy.ext.asyncio import AsyncEngine

from tollway.limits import budgets
from tollway.limits.backend import Backend, BackendUnavailable
from tollway.limits.cache import RuleCache
from tollway.limits.money import ZERO, plain
from tollway.limits.periods import PeriodClock, Window
from tollway.limits.rules import WILDCARD, BudgetRule
from tollway.metering.ledger.tables import UsageLedgerRow
from tollway.storage.engine import DB_ERRORS
from tollway.storage.writer import describe

log = logging.getLogger("tollway.limits")

LEDGER = cast(Table, UsageLedgerRow.__table__)
COLUMNS = {"org": "org_id", "team": "team_id", "project": "project_id", "key": "key_id", "end_user": "end_user_id"}
SETTLE_HORIZON_S = 30.0


@dataclass(slots=True, frozen=True)
class Drift:
    budget_id: str
    entity_id: str
    spent_before: Decimal
    ledger: Decimal


def _naive_utc(at: float) -> datetime:
    return datetime.fromtimestamp(at, UTC).replace(tzinfo=None)


async def ledger_totals(engine: AsyncEngine, rule: BudgetRule, window: Window, until: float) -> dict[str, Decimal]:
    """Per entity of ``rule``: the ledger's total cost of ``[window.start, min(window.end, until))``."""
    column = LEDGER.c[COLUMNS[rule.scope]]
    end = until if window.end is None else min(window.end, until)
    where: list[Any] = [LEDGER.c.created_at >= _naive_utc(window.start), LEDGER.c.created_at < _naive_utc(end),
                        LEDGER.c.total_usd.is_not(None)]
    where.append(column.is_not(None) if rule.scope_id == WILDCARD else column == rule.scope_id)
    totals: dict[str, Decimal] = {}
    async with engine.connect() as conn:
        if engine.dialect.name == "sqlite":  # amounts are decimal text there: sum exactly in Python
            for entity, amount in await conn.execute(select(column, LEDGER.c.total_usd).where(*where)):
                totals[entity] = totals.get(entity, ZERO) + Decimal(amount)
        else:
            query = select(column, func.sum(LEDGER.c.total_usd)).where(*where).group_by(column)
            for entity, amount in await conn.execute(query):
                totals[entity] = Decimal(amount)
    return totals


class Reconciler:
    def __init__(self, rules: RuleCache, backend: Backend, clock: PeriodClock, engine: AsyncEngine,
                 interval_s: float = 60.0) -> None:
        self.rules = rules
        self.backend = backend
        self.clock = clock
        self.engine = engine
        self.interval_s = interval_s
        self.runs = 0
        self.raised = 0
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        self._task = asyncio.get_running_loop().create_task(self._loop(), name="limits-reconcile")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None

    async def _loop(self) -> None:
        while True:
            await asyncio.sleep(self.interval_s)
            if not await self.backend.try_lock("reconcile", self.interval_s * 0.9):
                continue
            try:
                await self.run()
            except DB_ERRORS as exc:
                log.warning("limits: reconciliation skipped (ledger unreadable)",
                            extra={"event": "limits.reconcile_failed", "error": describe(exc)})
            except BackendUnavailable as exc:
                log.warning("limits: reconciliation skipped (backend unavailable)",
                            extra={"event": "limits.reconcile_failed", "error": str(exc)})

    async def run(self, now: float | None = None, horizon_s: float = SETTLE_HORIZON_S) -> list[Drift]:
        """One pass over every budget rule; returns the budgets whose spend was raised."""
        at = time.time() if now is None else now
        drifts: list[Drift] = []
        for rule in list(self.rules.book.by_id.values()):
            if isinstance(rule, BudgetRule):
                drifts.extend(await self.run_rule(rule, at, horizon_s))
        self.runs += 1
        return drifts

    async def run_rule(self, rule: BudgetRule, at: float, horizon_s: float = SETTLE_HORIZON_S) -> list[Drift]:
        """Reconcile one budget (also right after it is created or changed: a budget created mid-period
        counts the period's earlier spend)."""
        window = self.clock.window(rule.period, at)
        drifts: list[Drift] = []
        for entity, total in (await ledger_totals(self.engine, rule, window, at - horizon_s)).items():
            before = await self.backend.raise_spent(budgets.counter_key(rule, entity, window), total, window)
            if before is None:
                continue
            drifts.append(Drift(rule.id, entity, before, total))
            log.warning("limits: budget spend raised to the ledger's", extra={
                "event": "limits.reconciled", "budget_id": rule.id, "entity_id": entity,
                "spent_before": plain(before), "ledger": plain(total)})
        self.raised += len(drifts)
        return drifts

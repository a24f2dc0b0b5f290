"""The rules in the database: load them all (for the :class:`~tollway.limits.rules.RuleBook`), and create,
read, update, delete them for the admin API. Every write bumps ``limits_revision`` in its transaction.

Database errors propagate (``tollway.storage.engine.DB_ERRORS``); callers decide (the admin API answers
503, the poller keeps the last rules).
"""

from __future__ import annotations

import asyncio
import secrets
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any, Generic, TypeVar, cast

from sqlalchemy import Table, delete, insert, select, update
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from tollway.limits.models import REVISION_ROW_ID, BudgetRuleRow, LimitsRevision, RateLimitRuleRow
from tollway.limits.money import plain
from tollway.limits.rules import BudgetRule, RateRule, RuleBook

BUDGETS = cast(Table, BudgetRuleRow.__table__)
RATES = cast(Table, RateLimitRuleRow.__table__)
REVISION = cast(Table, LimitsRevision.__table__)
_READ_REVISION = select(REVISION.c.revision).where(REVISION.c.id == REVISION_ROW_ID)
_BUMP = (update(REVISION).where(REVISION.c.id == REVISION_ROW_ID).values(revision=REVISION.c.revision + 1)
         .returning(REVISION.c.revision))

R = TypeVar("R", BudgetRule, RateRule)


@dataclass(slots=True, frozen=True)
class Stored(Generic[R]):
    rule: R
    created_at: datetime
    updated_at: datetime


def new_rule_id(prefix: str) -> str:
    return f"{prefix}_{secrets.token_hex(10)}"


def _aware(value: datetime) -> datetime:
    return value if value.tzinfo is not None else value.replace(tzinfo=UTC)


def _decimal(value: Any) -> Decimal | None:
    return None if value is None else Decimal(str(value))


def _budget(row: Any) -> Stored[BudgetRule]:
    limit = _decimal(row.limit_usd)
    assert limit is not None
    rule = BudgetRule(row.id, row.scope, row.scope_id, limit, row.period, _decimal(row.alert_threshold))
    return Stored(rule, _aware(row.created_at), _aware(row.updated_at))


def _rate(row: Any) -> Stored[RateRule]:
    rule = RateRule(row.id, row.scope, row.scope_id, row.rpm, row.tpm, row.max_concurrent)
    return Stored(rule, _aware(row.created_at), _aware(row.updated_at))


class RuleStore:
    def __init__(self, engine: AsyncEngine, timeout_s: float = 15.0) -> None:
        self.engine = engine
        self.timeout_s = timeout_s
        self._text_money = engine.dialect.name == "sqlite"

    def _money(self, value: Decimal | None) -> Decimal | str | None:
        if value is None or not self._text_money:
            return value
        return plain(value)

    # ---- reading ---------------------------------------------------------------------------------

    async def revision(self) -> int:
        async with asyncio.timeout(self.timeout_s), self.engine.connect() as conn:
            return int((await conn.execute(_READ_REVISION)).scalar_one())

    async def load(self) -> RuleBook:
        """Every rule, read after the revision (a change committed in between bumps it again)."""
        async with asyncio.timeout(self.timeout_s), self.engine.connect() as conn:
            revision = int((await conn.execute(_READ_REVISION)).scalar_one())
            budgets = [_budget(r).rule for r in await conn.execute(select(BUDGETS).order_by(BUDGETS.c.id))]
            rates = [_rate(r).rule for r in await conn.execute(select(RATES).order_by(RATES.c.id))]
        return RuleBook.build(revision, budgets, rates)

    async def budgets(self, scope: str | None = None, scope_id: str | None = None) -> list[Stored[BudgetRule]]:
        query = select(BUDGETS).order_by(BUDGETS.c.created_at, BUDGETS.c.id)
        if scope is not None:
            query = query.where(BUDGETS.c.scope == scope)
        if scope_id is not None:
            query = query.where(BUDGETS.c.scope_id == scope_id)
        async with asyncio.timeout(self.timeout_s), self.engine.connect() as conn:
            return [_budget(r) for r in await conn.execute(query)]

    async def rates(self, scope: str | None = None, scope_id: str | None = None) -> list[Stored[RateRule]]:
        query = select(RATES).order_by(RATES.c.created_at, RATES.c.id)
        if scope is not None:
            query = query.where(RATES.c.scope == scope)
        if scope_id is not None:
            query = query.where(RATES.c.scope_id == scope_id)
        async with asyncio.timeout(self.timeout_s), self.engine.connect() as conn:
            return [_rate(r) for r in await conn.execute(query)]

    async def budget(self, rule_id: str) -> Stored[BudgetRule] | None:
        async with asyncio.timeout(self.timeout_s), self.engine.connect() as conn:
            row = (await conn.execute(select(BUDGETS).where(BUDGETS.c.id == rule_id))).first()
        return None if row is None else _budget(row)

    async def rate(self, rule_id: str) -> Stored[RateRule] | None:
        async with asyncio.timeout(self.timeout_s), self.engine.connect() as conn:
            row = (await conn.execute(select(RATES).where(RATES.c.id == rule_id))).first()
        return None if row is None else _rate(row)

    # ---- writing ---------------------------------------------------------------------------------

    async def _write(self, statements: Sequence[Any]) -> int:
        """Run ``statements`` and bump the revision in one transaction; returns the rows the first changed."""
        async with asyncio.timeout(self.timeout_s), self.engine.begin() as conn:
            changed = await self._run(conn, statements)
            await conn.execute(_BUMP)
        return changed

    @staticmethod
    async def _run(conn: AsyncConnection, statements: Sequence[Any]) -> int:
        changed = -1
        for statement in statements:
            result = await conn.execute(statement)
            if changed < 0:
                changed = result.rowcount
        return changed

    def _budget_values(self, rule: BudgetRule) -> dict[str, Any]:
        return {"limit_usd": self._money(rule.limit_usd), "period": rule.period,
                "alert_threshold": self._money(rule.alert_threshold)}

    async def create_budget(self, rule: BudgetRule) -> Stored[BudgetRule]:
        now = datetime.now(UTC)
        rule = BudgetRule(new_rule_id("bud"), rule.scope, rule.scope_id, rule.limit_usd, rule.period,
                          rule.alert_threshold)
        await self._write([insert(BUDGETS).values(id=rule.id, scope=rule.scope, scope_id=rule.scope_id,
                                                  created_at=now, updated_at=now, **self._budget_values(rule))])
        return Stored(rule, now, now)

    async def update_budget(self, rule: BudgetRule) -> bool:
        values = {**self._budget_values(rule), "updated_at": datetime.now(UTC)}
        return await self._write([update(BUDGETS).where(BUDGETS.c.id == rule.id).values(**values)]) > 0

    async def delete_budget(self, rule_id: str) -> bool:
        return await self._write([delete(BUDGETS).where(BUDGETS.c.id == rule_id)]) > 0

    async def create_rate(self, rule: RateRule) -> Stored[RateRule]:
        now = datetime.now(UTC)
        rule = RateRule(new_rule_id("rl"), rule.scope, rule.scope_id, rule.rpm, rule.tpm, rule.max_concurrent)
        await self._write([insert(RATES).values(id=rule.id, scope=rule.scope, scope_id=rule.scope_id, rpm=rule.rpm,
                                                tpm=rule.tpm, max_concurrent=rule.max_concurrent, created_at=now,
                                                updated_at=now)])
        return Stored(rule, now, now)

    async def update_rate(self, rule: RateRule) -> bool:
        statement = update(RATES).where(RATES.c.id == rule.id).values(
            rpm=rule.rpm, tpm=rule.tpm, max_concurrent=rule.max_concurrent, updated_at=datetime.now(UTC))
        return await self._write([statement]) > 0

    async def delete_rate(self, rule_id: str) -> bool:
        return await self._write([delete(RATES).where(RATES.c.id == rule_id)]) > 0

"""Usage queries for the admin API: totals grouped by org/team/project/key/end user/model/provider/day,
filtered by those dimensions and a UTC date range; and the raw ledger rows behind them.

Aggregates come from the daily rollups (``usage_daily``), which always equal the sum of the ledger rows
(see :mod:`.rollups`), so a query costs one small index-driven ``GROUP BY`` however many requests it
covers. Cost is exact: PostgreSQL sums ``NUMERIC`` in SQL; on SQLite the amounts are decimal text, so
each group's amounts come back concatenated and are summed here in :class:`~decimal.Decimal`.

Pure query code: every function takes an :class:`~sqlalchemy.ext.asyncio.AsyncEngine` or an open
:class:`~sqlalchemy.ext.asyncio.AsyncConnection` on the tollway database; invalid arguments raise
``ValueError`` naming the argument (a 400 for the admin API).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from sqlalchemy import ColumnElement, Select, func, select
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from tollway.metering.ledger.entries import decimal_text
from tollway.metering.ledger.rollups import DAILY, LEDGER, Totals, to_decimal
from tollway.metering.ledger.tables import MONEY_COLUMNS, TOKEN_COLUMNS

# group/filter name -> column (same name in usage_daily and usage_ledger)
DIMENSIONS: dict[str, str] = {
    "org": "org_id",
    "team": "team_id",
    "project": "project_id",
    "key": "key_id",
    "end_user": "end_user_id",
    "provider": "provider",
    "model": "model",
    "day": "day",
}
_COUNTERS = ("requests", "error_requests", "unpriced_requests", *TOKEN_COLUMNS)
MAX_ENTRIES = 1_000


@dataclass(slots=True, frozen=True)
class UsageFilter:
    """Every field None: no restriction. ``start``/``end`` are inclusive UTC days."""

    start: dt.date | None = None
    end: dt.date | None = None
    org_id: str | None = None
    team_id: str | None = None
    project_id: str | None = None
    key_id: str | None = None
    end_user_id: str | None = None
    provider: str | None = None
    model: str | None = None

    def conditions(self, table: Any) -> list[ColumnElement[bool]]:
        if self.start is not None and self.end is not None and self.start > self.end:
            raise ValueError("start: must not be after end")
        out: list[ColumnElement[bool]] = []
        if self.start is not None:
            out.append(table.c.day >= self.start)
        if self.end is not None:
            out.append(table.c.day <= self.end)
        for name in ("org_id", "team_id", "project_id", "key_id", "end_user_id", "provider", "model"):
            value = getattr(self, name)
            if value is not None:
                out.append(table.c[name] == value)
        return out


def totals_json(totals: Totals) -> dict[str, Any]:
    """Counters as integers, cost as an exact decimal string (USD)."""
    out: dict[str, Any] = {name: getattr(totals, name) for name in _COUNTERS}
    out["total_tokens"] = totals.input_tokens + totals.output_tokens
    out["cost_usd"] = decimal_text(totals.cost_usd)
    return out


@dataclass(slots=True)
class UsageGroup:
    group: dict[str, str | None]  # dimension -> value (None: not attributed, e.g. open mode); day as ISO date
    totals: Totals

    def to_json(self) -> dict[str, Any]:
        return {**self.group, **totals_json(self.totals)}


@dataclass(slots=True)
class UsageReport:
    group_by: tuple[str, ...]
    groups: list[UsageGroup]
    totals: Totals

    def to_json(self) -> dict[str, Any]:
        return {
            "group_by": list(self.group_by),
            "groups": [g.to_json() for g in self.groups],
            "totals": totals_json(self.totals),
        }


def _group_by(names: Sequence[str]) -> tuple[str, ...]:
    out: list[str] = []
    for name in names:
        if name not in DIMENSIONS:
            raise ValueError(f"group_by: unknown dimension {name!r} (one of {', '.join(DIMENSIONS)})")
        if name not in out:
            out.append(name)
    return tuple(out)


async def usage(
    db: AsyncEngine | AsyncConnection,
    group_by: Sequence[str] = (),
    filters: UsageFilter | None = None,
) -> UsageReport:
    """Totals per group (ordered by the group values) and overall."""
    dims = _group_by(group_by)
    conditions = (filters or UsageFilter()).conditions(DAILY)
    if isinstance(db, AsyncEngine):
        async with db.connect() as conn:
            return await _usage(conn, dims, conditions)
    return await _usage(db, dims, conditions)


async def _usage(conn: AsyncConnection, dims: tuple[str, ...], conditions: list[ColumnElement[bool]]) -> UsageReport:
    exact_sql = conn.dialect.name == "postgresql"
    keys = [DAILY.c[DIMENSIONS[d]] for d in dims]
    sums: list[Any] = [func.sum(DAILY.c[name]).label(name) for name in _COUNTERS]
    if exact_sql:
        sums.append(func.sum(DAILY.c.cost_usd).label("cost_usd"))
    else:
        sums.append(func.group_concat(DAILY.c.cost_usd, ",").label("cost_usd"))
    stmt: Select[Any] = select(*keys, *sums).where(*conditions)
    if keys:
        stmt = stmt.group_by(*keys).order_by(*keys)
    result = await conn.execute(stmt)
    groups: list[UsageGroup] = []
    overall = Totals()
    for row in result.mappings():
        if row["requests"] is None:  # no rollup matched (aggregate over nothing)
            continue
        totals = Totals()
        for name in _COUNTERS:
            setattr(totals, name, int(row[name]))
        raw = row["cost_usd"]
        if exact_sql:
            totals.cost_usd = to_decimal(raw)
        elif raw:
            totals.cost_usd = sum((Decimal(part) for part in str(raw).split(",")), Decimal(0))
        overall.add(totals)
        groups.append(UsageGroup({d: _label(row[DIMENSIONS[d]]) for d in dims}, totals))
    return UsageReport(dims, groups, overall)


def _label(value: object) -> str | None:
    if isinstance(value, dt.date):
        return value.isoformat()
    if value is None or value == "":
        return None
    return str(value)


async def entries(
    db: AsyncEngine | AsyncConnection,
    filters: UsageFilter | None = None,
    *,
    request_id: str | None = None,
    limit: int = 100,
    before: str | None = None,
) -> list[dict[str, Any]]:
    """Ledger rows, newest first (``limit`` at most :data:`MAX_ENTRIES`). Page with ``before`` = the last
    ``id`` seen. Amounts are :class:`~decimal.Decimal` (None when unknown), ``created_at`` is naive UTC."""
    if not 1 <= limit <= MAX_ENTRIES:
        raise ValueError(f"limit: must be between 1 and {MAX_ENTRIES}")
    conditions = (filters or UsageFilter()).conditions(LEDGER)
    if request_id is not None:
        conditions.append(LEDGER.c.request_id == request_id)
    if before is not None:
        conditions.append(LEDGER.c.id < before)
    stmt = select(LEDGER).where(*conditions).order_by(LEDGER.c.id.desc()).limit(limit)
    if isinstance(db, AsyncEngine):
        async with db.connect() as conn:
            rows = (await conn.execute(stmt)).mappings().all()
    else:
        rows = (await db.execute(stmt)).mappings().all()
    out: list[dict[str, Any]] = []
    for row in rows:
        item = dict(row)
        for name in MONEY_COLUMNS:
            if item[name] is not None:
                item[name] = to_decimal(item[name])
        out.append(item)
    return out

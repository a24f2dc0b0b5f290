"""Daily rollups (``usage_daily``): one row per UTC day and (org, team, project, key, end user, provider,
model), summing requests, errors, unpriced requests, tokens and cost.

They are maintained by :func:`apply` **in the transaction that inserts the ledger rows**, from the rows
that insert actually created (``INSERT … ON CONFLICT DO NOTHING RETURNING``): a re-delivered row inserts
nothing and adds nothing, so the rollups always equal the sum of ``usage_ledger`` — :func:`from_rows` and
:func:`stored` compute both sides for checks, and :func:`rebuild` recomputes the rollups from the rows.

* PostgreSQL: one ``INSERT … ON CONFLICT (key) DO UPDATE SET n = usage_daily.n + excluded.n`` — atomic
  under concurrent shippers (keys are sorted so concurrent batches lock in the same order), exact
  ``NUMERIC`` arithmetic.
* SQLite (amounts are decimal text, see :mod:`.tables`): read the affected rollups, add in
  :class:`~decimal.Decimal`, write the new totals. Safe because the ledger insert before it already holds
  SQLite's single write lock for the rest of the transaction.

The ``model`` dimension is the model as requested (an alias stays an alias); ``provider`` says where it
went, and each ledger row also keeps the upstream model.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from decimal import Decimal
from typing import Any, cast

from sqlalchemy import Table, delete, select, tuple_
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.ext.asyncio import AsyncConnection

from tollway.metering.ledger.entries import ERROR_STATUSES, decimal_text
from tollway.metering.ledger.tables import ROLLUP_DIMENSIONS, TOKEN_COLUMNS, UsageDailyRow, UsageLedgerRow

DAILY = cast(Table, UsageDailyRow.__table__)
LEDGER = cast(Table, UsageLedgerRow.__table__)

RollupKey = tuple[dt.date, str, str, str, str, str, str, str]
_COUNTERS = ("requests", "error_requests", "unpriced_requests", *TOKEN_COLUMNS)
_KEY_CHUNK = 1_000


def to_decimal(value: object) -> Decimal:
    """An amount as read from either backend (NUMERIC -> Decimal, SQLite text -> str; NULL -> 0)."""
    if value is None:
        return Decimal(0)
    if isinstance(value, Decimal):
        return value
    return Decimal(str(value))


@dataclass(slots=True)
class Totals:
    requests: int = 0
    error_requests: int = 0
    unpriced_requests: int = 0
    input_tokens: int = 0
    cached_tokens: int = 0
    cache_write_tokens: int = 0
    output_tokens: int = 0
    reasoning_tokens: int = 0
    cost_usd: Decimal = Decimal(0)

    def add_entry(self, row: Mapping[Any, Any]) -> None:
        """Count one ``usage_ledger`` row."""
        self.requests += 1
        if row["status"] in ERROR_STATUSES:
            self.error_requests += 1
        if row["total_usd"] is None:
            self.unpriced_requests += 1
        self.input_tokens += row["input_tokens"]
        self.cached_tokens += row["cached_tokens"]
        self.cache_write_tokens += row["cache_write_tokens"]
        self.output_tokens += row["output_tokens"]
        self.reasoning_tokens += row["reasoning_tokens"]
        self.cost_usd += to_decimal(row["total_usd"])

    def add(self, other: Totals) -> None:
        for name in _COUNTERS:
            setattr(self, name, getattr(self, name) + getattr(other, name))
        self.cost_usd += other.cost_usd

    def values(self, *, money_as_text: bool) -> dict[str, Any]:
        out: dict[str, Any] = {name: getattr(self, name) for name in _COUNTERS}
        out["cost_usd"] = decimal_text(self.cost_usd) if money_as_text else self.cost_usd
        return out

    @classmethod
    def from_db(cls, row: Mapping[Any, Any]) -> Totals:
        totals = cls(cost_usd=to_decimal(row["cost_usd"]))
        for name in _COUNTERS:
            setattr(totals, name, int(row[name] or 0))
        return totals


def rollup_key(row: Mapping[Any, Any]) -> RollupKey:
    day = row["day"]
    if isinstance(day, str):  # SQLite without type processing
        day = dt.date.fromisoformat(day)
    return (
        day,
        row["org_id"] or "",
        row["team_id"] or "",
        row["project_id"] or "",
        row["key_id"] or "",
        row["end_user_id"] or "",
        row["provider"] or "",
        row["model"] or "",
    )


def fold(rows: Iterable[Mapping[Any, Any]]) -> dict[RollupKey, Totals]:
    """Sum ledger rows per rollup key."""
    out: dict[RollupKey, Totals] = {}
    for row in rows:
        key = rollup_key(row)
        totals = out.get(key)
        if totals is None:
            totals = out[key] = Totals()
        totals.add_entry(row)
    return out


async def apply(conn: AsyncConnection, inserted: Iterable[Mapping[Any, Any]]) -> None:
    """Add freshly inserted ledger rows to the rollups (inside the inserting transaction)."""
    deltas = fold(inserted)
    if not deltas:
        return
    keys = sorted(deltas)
    if conn.dialect.name == "postgresql":
        for i in range(0, len(keys), _KEY_CHUNK):
            await _add_postgresql(conn, keys[i : i + _KEY_CHUNK], deltas)
    else:
        for i in range(0, len(keys), _KEY_CHUNK):
            await _add_read_modify_write(conn, keys[i : i + _KEY_CHUNK], deltas)


def _row(key: RollupKey, totals: Totals, *, money_as_text: bool) -> dict[str, Any]:
    return {**dict(zip(ROLLUP_DIMENSIONS, key, strict=True)), **totals.values(money_as_text=money_as_text)}


async def _add_postgresql(conn: AsyncConnection, keys: list[RollupKey], deltas: dict[RollupKey, Totals]) -> None:
    stmt = pg_insert(DAILY).values([_row(k, deltas[k], money_as_text=False) for k in keys])
    stmt = stmt.on_conflict_do_update(
        index_elements=list(ROLLUP_DIMENSIONS),
        set_={name: DAILY.c[name] + stmt.excluded[name] for name in (*_COUNTERS, "cost_usd")},
    )
    await conn.execute(stmt)


async def _add_read_modify_write(
    conn: AsyncConnection, keys: list[RollupKey], deltas: dict[RollupKey, Totals]
) -> None:
    dims = [DAILY.c[name] for name in ROLLUP_DIMENSIONS]
    result = await conn.execute(select(DAILY).where(tuple_(*dims).in_(keys)))
    current = {rollup_key(row): Totals.from_db(row) for row in result.mappings()}
    rows = []
    for key in keys:
        totals = current.get(key) or Totals()
        totals.add(deltas[key])
        rows.append(_row(key, totals, money_as_text=True))
    stmt = sqlite_insert(DAILY).values(rows)
    stmt = stmt.on_conflict_do_update(
        index_elements=list(ROLLUP_DIMENSIONS),
        set_={name: stmt.excluded[name] for name in (*_COUNTERS, "cost_usd")},
    )
    await conn.execute(stmt)


_ROW_COLUMNS = [LEDGER.c[name] for name in (
    *ROLLUP_DIMENSIONS, "status", "total_usd", *TOKEN_COLUMNS)]


async def from_rows(conn: AsyncConnection) -> dict[RollupKey, Totals]:
    """The rollups as computed from ``usage_ledger`` itself."""
    result = await conn.stream(select(*_ROW_COLUMNS))
    out: dict[RollupKey, Totals] = {}
    async for row in result.mappings():
        key = rollup_key(row)
        totals = out.get(key)
        if totals is None:
            totals = out[key] = Totals()
        totals.add_entry(row)
    return out


async def stored(conn: AsyncConnection) -> dict[RollupKey, Totals]:
    """The rollups as stored in ``usage_daily``."""
    result = await conn.execute(select(DAILY))
    return {rollup_key(row): Totals.from_db(row) for row in result.mappings()}


async def rebuild(conn: AsyncConnection) -> int:
    """Recompute every rollup from the ledger rows (repair); returns the number of rollup rows.
    Run it in a transaction."""
    fresh = await from_rows(conn)
    await conn.execute(delete(DAILY))
    money_as_text = conn.dialect.name != "postgresql"
    rows = [_row(k, fresh[k], money_as_text=money_as_text) for k in sorted(fresh)]
    for i in range(0, len(rows), _KEY_CHUNK):
        insert = pg_insert(DAILY) if conn.dialect.name == "postgresql" else sqlite_insert(DAILY)
        await conn.execute(insert.values(rows[i : i + _KEY_CHUNK]))
    return len(rows)

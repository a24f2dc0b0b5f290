"""Reconciliation against the usage ledger (SQLite and PostgreSQL, memory and Redis backends): spend is
raised to the ledger's total of the current period — per entity for ``*`` rules — never lowered, rows of
other periods and of the settlement horizon are left out; the migration matches the models."""

from __future__ import annotations

import secrets
import time
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any, cast
from zoneinfo import ZoneInfo

from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import MetaData, insert, select
from sqlalchemy.engine import Connection

from tollway.core.context import ExchangeRecord, Principal
from tollway.core.types import Usage
from tollway.limits import models
from tollway.limits.backend import Backend
from tollway.limits.budgets import counter_key
from tollway.limits.cache import RuleCache
from tollway.limits.periods import PeriodClock
from tollway.limits.reconcile import LEDGER, Reconciler
from tollway.limits.rules import BudgetRule, RuleBook
from tollway.limits.store import RuleStore
from tollway.metering.cost import CostBreakdown
from tollway.metering.ledger.entries import db_values, encode_row, to_row
from tollway.storage.engine import create_engine
from tollway.storage.migrate import VERSION_TABLE
from tollway.storage.models import Base

D = Decimal


def _noon() -> float:
    """The last noon (UTC) before now: rows an hour before it share its day and month, and the counters of
    its periods have not expired yet (they outlive a period by two days)."""
    today = datetime.now(UTC).replace(hour=12, minute=0, second=0, microsecond=0)
    return (today if today.timestamp() <= time.time() else today - timedelta(days=1)).timestamp()


NOW = _noon()
TABLES = frozenset({"budget_rules", "rate_limit_rules", "limits_revision"})


def _row(key_id: str, project: str, cost: str | None, at: float) -> dict[str, Any]:
    principal = Principal(key_id=key_id, key_name="k", org_id="org_r", org_name="R", project_id=project)
    breakdown = None if cost is None else CostBreakdown("priced", "v", total_usd=D(cost))
    record = ExchangeRecord(request_id=secrets.token_hex(6), created_at=at, principal=principal, end_user_id=None,
                            end_user_external_id=None, door="responses", model="m", provider="p", upstream_model="m",
                            streaming=False, status="completed", http_status=200, error_code=None, usage=Usage(),
                            cost=breakdown, latency_ms=1.0, overhead_ms=0.1, tags={})
    return to_row(record)


async def test_spend_is_raised_to_the_ledger(migrated_url: str, backend: Backend) -> None:
    engine = create_engine(migrated_url)
    project = "proj_" + secrets.token_hex(4)
    k1, k2 = "key_" + secrets.token_hex(4), "key_" + secrets.token_hex(4)
    rows = [
        _row(k1, project, "0.1", NOW - 3600),
        _row(k2, project, "0.2", NOW - 600),
        _row(k1, project, "0.3", NOW - 60),
        _row(k1, project, None, NOW - 60),  # an error: no cost
        _row(k2, project, "5", NOW - 40 * 86400),  # last month
        _row(k2, project, "0.4", NOW - 5),  # inside the settlement horizon
    ]
    text = engine.dialect.name == "sqlite"
    async with engine.begin() as conn:
        for i, row in enumerate(rows):
            await conn.execute(insert(LEDGER).values(**db_values(f"e{i}-{project}", encode_row(row),
                                                                 money_as_text=text)))
    monthly = BudgetRule("bud_" + secrets.token_hex(4), "project", project, D(10), "monthly")
    daily_each = BudgetRule("bud_" + secrets.token_hex(4), "key", "*", D(10), "daily")
    cache = RuleCache(cast(RuleStore, None))
    cache.book = RuleBook.build(1, [monthly, daily_each], [])
    clock = PeriodClock(ZoneInfo("UTC"))
    reconciler = Reconciler(cache, backend, clock, engine)
    try:
        drifts = await reconciler.run(now=NOW)
        got = {(d.budget_id, d.entity_id): d.ledger for d in drifts}
        assert got[(monthly.id, project)] == D("0.6")
        assert got[(daily_each.id, k1)] == D("0.4") and got[(daily_each.id, k2)] == D("0.2")
        assert len(got) == 3 and all(d.spent_before == 0 for d in drifts)
        month = clock.window("monthly", NOW)
        assert await backend.budget_state(counter_key(monthly, project, month)) == (D("0.6"), D(0))
        assert await reconciler.run(now=NOW) == []  # nothing moved: nothing raised
        drifts = await reconciler.run(now=NOW, horizon_s=0)  # the 0.4 row is old enough now
        assert {(d.entity_id, d.ledger) for d in drifts} == {(project, D("1.0")), (k2, D("0.6"))}
        await backend.raise_spent(counter_key(monthly, project, month), D("3"), month)  # ahead of the ledger
        assert await reconciler.run(now=NOW, horizon_s=0) == []  # never lowered
        assert (await backend.budget_state(counter_key(monthly, project, month)))[0] == D("3")
    finally:
        await engine.dispose()


def _diff(connection: Connection) -> list[Any]:
    ours = MetaData(naming_convention=Base.metadata.naming_convention)
    for t in Base.metadata.tables.values():
        if t.name in TABLES:
            t.to_metadata(ours)
    context = MigrationContext.configure(connection, opts={"version_table": VERSION_TABLE, "compare_type": True})
    return [d for d in compare_metadata(context, ours)
            if not (d[0] == "remove_table" or (d[0] == "remove_index" and d[1].table.name not in TABLES))]


async def test_models_match_the_migration(migrated_url: str) -> None:
    assert {t for t in Base.metadata.tables if t in TABLES} == TABLES, models.__name__
    engine = create_engine(migrated_url)
    try:
        async with engine.connect() as connection:
            assert await connection.run_sync(_diff) == []
            revision = (await connection.execute(select(models.LimitsRevision.__table__))).all()
    finally:
        await engine.dispose()
    assert [(r.id, r.revision) for r in revision] == [(1, 0)]

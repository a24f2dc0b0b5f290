"""Rollups equal the sum of rows (also after re-delivery and rebuild); usage queries on SQLite and PostgreSQL."""

from __future__ import annotations

import datetime as dt
import random
from collections.abc import AsyncIterator
from decimal import Decimal
from typing import Any

import pytest
from sqlalchemy.ext.asyncio import AsyncEngine

from tests.metering.ledger.conftest import make_record
from tollway.core.context import Principal
from tollway.metering.ledger import query, rollups
from tollway.metering.ledger.entries import db_values, encode_row, to_row
from tollway.metering.ledger.shipper import insert_entries
from tollway.storage.engine import create_engine

DAY0 = dt.datetime(2025, 3, 1, 12, tzinfo=dt.UTC).timestamp()
ORGS = [
    Principal(key_id=f"key_{o}{t}", key_name="k", org_id=f"org_{o}", org_name="O", team_id=f"team_{o}{t}",
              team_name="T", project_id=f"proj_{o}{t}", project_name="P")
    for o in "ab" for t in "xy"
]


@pytest.fixture
async def engine(db_url: str) -> AsyncIterator[AsyncEngine]:
    eng = create_engine(db_url)
    yield eng
    await eng.dispose()


def values_for(engine: AsyncEngine, n: int, **kw: Any) -> dict[str, Any]:
    return db_values(f"e{n:06d}", encode_row(to_row(make_record(n, **kw))),
                     money_as_text=engine.dialect.name != "postgresql")


def dataset(engine: AsyncEngine, count: int = 400) -> list[dict[str, Any]]:
    rng = random.Random(7)
    rows = []
    for n in range(count):
        rows.append(values_for(
            engine, n,
            principal=rng.choice([*ORGS, None]),
            model=rng.choice(["gpt-4o-mini", "claude-haiku-4-5", "fast"]),
            provider=rng.choice(["openai", "anthropic"]),
            created_at=DAY0 + rng.randrange(5) * 86400 + rng.random() * 3600,
            status=rng.choice(["completed", "completed", "error", "failed", "client_disconnected"]),
            cost=rng.choice([None, Decimal("0.000000123"), Decimal("1.5"), Decimal("0.0375000001")]),
            end_user_id=rng.choice([None, "eu_1", "eu_2"]),
        ))
    return rows


async def test_rollups_equal_rows_with_redelivery_and_rebuild(engine: AsyncEngine) -> None:
    rows = dataset(engine)
    rng = random.Random(3)
    delivered: set[str] = set()
    for start in range(0, len(rows), 37):
        batch = rows[start : start + 37]
        again = rng.sample(rows[:start], min(start, 10))  # re-delivered rows mixed into later batches
        async with engine.begin() as conn:
            inserted = await insert_entries(conn, [*batch, *again])
        assert {v["id"] for v in inserted} == {v["id"] for v in batch}
        delivered.update(v["id"] for v in batch)
    async with engine.begin() as conn:
        assert await insert_entries(conn, rows) == []  # a full replay adds nothing
    async with engine.connect() as conn:
        stored = await rollups.stored(conn)
        assert stored == await rollups.from_rows(conn)
    assert sum(t.requests for t in stored.values()) == len(rows) == len(delivered)
    expected = sum((rollups.to_decimal(v["total_usd"]) for v in rows), Decimal(0))
    assert sum((t.cost_usd for t in stored.values()), Decimal(0)) == expected
    async with engine.begin() as conn:
        assert await rollups.rebuild(conn) == len(stored)
    async with engine.connect() as conn:
        assert await rollups.stored(conn) == stored


async def test_small_amounts_sum_exactly(engine: AsyncEngine) -> None:
    rows = [values_for(engine, n, cost=Decimal("0.000000123"), created_at=DAY0) for n in range(1000)]
    async with engine.begin() as conn:
        for i in range(0, 1000, 100):
            await insert_entries(conn, rows[i : i + 100])
    report = await query.usage(engine)
    assert report.totals.cost_usd == Decimal("0.000123") and report.totals.requests == 1000
    assert report.to_json()["totals"]["cost_usd"] == "0.000123000"


async def test_usage_groups_filters_and_ranges(engine: AsyncEngine) -> None:
    rows = dataset(engine)
    async with engine.begin() as conn:
        await insert_entries(conn, rows)

    def expect(pred: Any, key: Any) -> dict[Any, tuple[int, Decimal, int]]:
        out: dict[Any, tuple[int, Decimal, int]] = {}
        for v in rows:
            if pred(v):
                n, c, t = out.get(key(v), (0, Decimal(0), 0))
                out[key(v)] = (n + 1, c + rollups.to_decimal(v["total_usd"]), t + v["input_tokens"])
        return out

    report = await query.usage(engine, ["org", "model"])
    got = {(g.group["org"], g.group["model"]): (g.totals.requests, g.totals.cost_usd, g.totals.input_tokens)
           for g in report.groups}
    assert got == expect(lambda v: True, lambda v: (v["org_id"], v["model"]))
    assert report.totals.requests == len(rows)
    assert [(g.group["org"], g.group["model"]) for g in report.groups] == sorted(
        got, key=lambda k: (k[0] or "", k[1]))

    flt = query.UsageFilter(start=dt.date(2025, 3, 2), end=dt.date(2025, 3, 3), org_id="org_a", provider="openai")
    report = await query.usage(engine, ["day", "team"], flt)
    got = {(g.group["day"], g.group["team"]): (g.totals.requests, g.totals.cost_usd, g.totals.input_tokens)
           for g in report.groups}
    assert got == expect(
        lambda v: dt.date(2025, 3, 2) <= v["day"] <= dt.date(2025, 3, 3) and v["org_id"] == "org_a"
        and v["provider"] == "openai",
        lambda v: (v["day"].isoformat(), v["team_id"]))
    assert got

    for dim, column in [("key", "key_id"), ("project", "project_id"), ("end_user", "end_user_id"),
                        ("provider", "provider")]:
        report = await query.usage(engine, [dim])
        by_dim = {g.group[dim]: (g.totals.requests, g.totals.cost_usd, g.totals.input_tokens)
                  for g in report.groups}
        assert by_dim == expect(lambda v: True, lambda v, c=column: v[c]), dim

    errors = await query.usage(engine)
    assert errors.totals.error_requests == sum(1 for v in rows if v["status"] in ("error", "failed"))
    assert errors.totals.unpriced_requests == sum(1 for v in rows if v["total_usd"] is None)

    empty = await query.usage(engine, ["org"], query.UsageFilter(org_id="nobody"))
    assert empty.groups == [] and empty.totals.requests == 0 and empty.totals.cost_usd == 0


async def test_bad_arguments_name_the_field(engine: AsyncEngine) -> None:
    with pytest.raises(ValueError, match="group_by"):
        await query.usage(engine, ["planet"])
    with pytest.raises(ValueError, match="start"):
        await query.usage(engine, [], query.UsageFilter(start=dt.date(2025, 2, 2), end=dt.date(2025, 2, 1)))
    with pytest.raises(ValueError, match="limit"):
        await query.entries(engine, limit=0)


async def test_entries_newest_first_paged_and_by_request_id(engine: AsyncEngine) -> None:
    rows = dataset(engine, 30)
    async with engine.begin() as conn:
        await insert_entries(conn, rows)
    first = await query.entries(engine, limit=10)
    second = await query.entries(engine, limit=10, before=first[-1]["id"])
    assert [r["id"] for r in first + second] == sorted((v["id"] for v in rows), reverse=True)[:20]
    one = await query.entries(engine, request_id="req_5")
    cost = rows[5]["total_usd"]
    assert len(one) == 1
    assert one[0]["total_usd"] == (None if cost is None else rollups.to_decimal(cost))
    assert isinstance(one[0]["created_at"], dt.datetime) and one[0]["tags"] == {"n": "5"}
    orgs = await query.entries(engine, query.UsageFilter(org_id="org_b"), limit=100)
    assert {r["org_id"] for r in orgs} == {"org_b"}
    assert len(orgs) == sum(1 for v in rows if v["org_id"] == "org_b")

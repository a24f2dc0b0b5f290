"""The shipper on SQLite and PostgreSQL: batches, exactly once, rollups in step, poison rows quarantined."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Callable
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import func, select, text
from sqlalchemy.ext.asyncio import AsyncEngine

from tests.metering.ledger.conftest import make_record
from tollway.metering.ledger import rollups
from tollway.metering.ledger.entries import to_row
from tollway.metering.ledger.rollups import LEDGER
from tollway.metering.ledger.shipper import Shipper
from tollway.metering.ledger.spool import Spool
from tollway.storage.engine import create_engine


async def wait_until(check: Callable[[], bool], timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            raise AssertionError("condition not reached in time")
        await asyncio.sleep(0.02)


@pytest.fixture
async def engine(db_url: str) -> AsyncIterator[AsyncEngine]:
    eng = create_engine(db_url)
    yield eng
    await eng.dispose()


@pytest.fixture
async def spool(tmp_path: Path) -> AsyncIterator[Spool]:
    s = Spool(tmp_path / "spool.db")
    await asyncio.to_thread(s.open)
    yield s
    await s.close()


async def ledger_ids(engine: AsyncEngine) -> list[str]:
    async with engine.connect() as conn:
        return list((await conn.execute(select(LEDGER.c.request_id))).scalars())


async def assert_rollups_match(engine: AsyncEngine) -> None:
    async with engine.connect() as conn:
        assert await rollups.stored(conn) == await rollups.from_rows(conn)


def fast_shipper(spool: Spool, engine: AsyncEngine, **kw: Any) -> Shipper:
    kw.setdefault("retry_initial_s", 0.02)
    kw.setdefault("retry_max_s", 0.1)
    kw.setdefault("idle_poll_s", 0.05)
    return Shipper(spool, engine, **kw)


async def test_ships_every_row_once_in_batches(spool: Spool, engine: AsyncEngine) -> None:
    shipper = fast_shipper(spool, engine, batch_size=64)
    shipper.start()
    try:
        day = 86400.0
        for n in range(300):
            spool.append(to_row(make_record(n, model=f"m{n % 3}", created_at=1_700_000_000 + (n % 4) * day,
                                            status="completed" if n % 5 else "error",
                                            cost=None if n % 7 == 0 else Decimal("0.0000015"))))
        await spool.flush()
        await wait_until(lambda: spool.rows == 0)
    finally:
        await shipper.stop(5)
    ids = await ledger_ids(engine)
    assert sorted(ids) == sorted(f"req_{n}" for n in range(300))
    assert shipper.shipped == 300 and shipper.duplicates == 0 and shipper.last_error is None
    await assert_rollups_match(engine)
    async with engine.connect() as conn:
        stored = await rollups.stored(conn)
    assert len(stored) == 12  # 4 days x 3 models
    assert sum(t.requests for t in stored.values()) == 300
    assert sum(t.error_requests for t in stored.values()) == 60
    priced = sum(1 for n in range(300) if n % 7)
    assert sum((t.cost_usd for t in stored.values()), Decimal(0)) == Decimal("0.0000015") * priced


async def test_redelivery_after_a_lost_delete_writes_nothing_twice(spool: Spool, engine: AsyncEngine) -> None:
    for n in range(50):
        spool.append(to_row(make_record(n)))
    await spool.flush()
    real_delete = spool.delete
    failures = 0

    async def delete_fails_once(seqs: list[int]) -> None:  # the process "dies" after the DB commit
        nonlocal failures
        if failures == 0:
            failures += 1
            raise OSError("crash between commit and spool delete")
        await real_delete(seqs)

    spool.delete = delete_fails_once  # type: ignore[method-assign]
    shipper = fast_shipper(spool, engine)
    shipper.start()
    try:
        await wait_until(lambda: spool.rows == 0)
    finally:
        await shipper.stop(5)
    ids = await ledger_ids(engine)
    assert len(ids) == 50 == len(set(ids))
    assert (shipper.shipped, shipper.duplicates) == (0, 50)  # the retry found them all committed: skipped
    await assert_rollups_match(engine)
    async with engine.connect() as conn:
        totals = await rollups.stored(conn)
    assert sum(t.requests for t in totals.values()) == 50


async def test_undecodable_and_refused_rows_are_quarantined(spool: Spool, engine: AsyncEngine) -> None:
    async with engine.begin() as conn:
        if conn.dialect.name == "postgresql":
            await conn.execute(text("ALTER TABLE usage_ledger ADD CONSTRAINT poison CHECK (model <> 'poison')"))
        else:
            await conn.execute(text("CREATE TRIGGER poison BEFORE INSERT ON usage_ledger WHEN NEW.model = 'poison' "
                                    "BEGIN SELECT RAISE(ABORT, 'poison'); END"))
    for n in range(10):
        spool.append(to_row(make_record(n, model="poison" if n == 4 else "fine")))
    spool.append({**to_row(make_record(10)), "total_usd": "NaN"})  # spooled, but not a ledger row
    await spool.flush()
    shipper = fast_shipper(spool, engine)
    shipper.start()
    try:
        await wait_until(lambda: spool.rows == 2)
    finally:
        await shipper.stop(5)
    assert shipper.quarantined == 2 and spool.quarantined == 2
    ids = await ledger_ids(engine)
    assert sorted(ids) == sorted(f"req_{n}" for n in range(10) if n != 4)
    await assert_rollups_match(engine)


async def test_unreachable_database_keeps_rows_and_backs_off(tmp_path: Path) -> None:
    spool = Spool(tmp_path / "spool.db")
    await asyncio.to_thread(spool.open)
    engine = create_engine("postgresql://postgres@127.0.0.1:9/none", connect_timeout_s=1)
    shipper = fast_shipper(spool, engine, retry_initial_s=0.05, retry_max_s=0.2)
    shipper.start()
    try:
        for n in range(20):
            spool.append(to_row(make_record(n)))
        await spool.flush()
        await wait_until(lambda: shipper.failing and shipper.last_error is not None)
        await asyncio.sleep(0.3)
        assert spool.rows == 20 and shipper.shipped == 0
        assert "refused" in (shipper.last_error or "").lower() or "connect" in (shipper.last_error or "").lower()
        started = time.monotonic()
        await shipper.stop(5)  # failing: no grace period
        assert time.monotonic() - started < 2
    finally:
        await shipper.stop(1)
        await spool.close()
        await engine.dispose()


async def test_insert_entries_directly_is_idempotent(engine: AsyncEngine) -> None:
    from tollway.metering.ledger.entries import db_values, encode_row
    from tollway.metering.ledger.shipper import insert_entries

    text_money = engine.dialect.name != "postgresql"
    values = [db_values(f"id{n}", encode_row(to_row(make_record(n))), money_as_text=text_money) for n in range(5)]
    async with engine.begin() as conn:
        assert len(await insert_entries(conn, values)) == 5
    extra = db_values("id9", encode_row(to_row(make_record(9))), money_as_text=text_money)
    async with engine.begin() as conn:
        inserted = await insert_entries(conn, [*values[2:], extra])
    assert [v["id"] for v in inserted] == ["id9"]
    async with engine.connect() as conn:
        count = (await conn.execute(select(func.count()).select_from(LEDGER))).scalar_one()
        assert count == 6
        assert await rollups.stored(conn) == await rollups.from_rows(conn)

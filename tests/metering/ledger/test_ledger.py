"""The Ledger of one process: record -> spool -> database; outages, restarts and orphaned spools."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import func, select

from tests.metering.ledger.conftest import TcpProxy, make_record
from tests.metering.ledger.test_shipper import wait_until
from tollway.metering.ledger import rollups
from tollway.metering.ledger.entries import to_row
from tollway.metering.ledger.ledger import Ledger, database_identity, spool_path
from tollway.metering.ledger.rollups import LEDGER
from tollway.metering.ledger.spool import Spool, slot_path
from tollway.settings import Settings
from tollway.storage.engine import create_engine
from tollway.storage.migrate import upgrade_async

FAST: dict[str, Any] = {"retry_initial_s": 0.05, "retry_max_s": 0.3, "idle_poll_s": 0.05}


async def counts(url: str) -> tuple[int, int]:
    """(rows, distinct request ids) in usage_ledger, and checks the rollups."""
    engine = create_engine(url)
    try:
        async with engine.connect() as conn:
            rows = (await conn.execute(select(func.count()).select_from(LEDGER))).scalar_one()
            distinct = (await conn.execute(select(func.count(LEDGER.c.request_id.distinct())))).scalar_one()
            assert await rollups.stored(conn) == await rollups.from_rows(conn)
            return int(rows), int(distinct)
    finally:
        await engine.dispose()


async def test_records_reach_the_database(db_url: str, tmp_path: Path) -> None:
    ledger = await Ledger.open(tmp_path / "spool.db", db_url, **FAST)
    try:
        for n in range(100):
            ledger.recorder.record(make_record(n))
        await ledger.flush()
        await wait_until(lambda: ledger.stats().shipped == 100)
        stats = ledger.stats()
        assert stats.spool_rows == 0 and stats.lag_s == 0 and stats.spool_ok and stats.database_ok
        assert stats.to_json()["spool_path"].endswith("spool.0.db")
        assert stats.metrics()["tollway_ledger_shipped_rows_total"] == 100
    finally:
        await ledger.stop()
    assert await counts(db_url) == (100, 100)


async def test_outage_spools_then_recovers_exactly_once(pg_proxy_url: tuple[TcpProxy, str], tmp_path: Path) -> None:
    proxy, url = pg_proxy_url
    await upgrade_async(url)
    ledger = await Ledger.open(tmp_path / "spool.db", url, **FAST)
    try:
        for n in range(50):
            ledger.recorder.record(make_record(n))
        await wait_until(lambda: ledger.stats().shipped == 50)
        proxy.cut()
        for n in range(50, 550):
            ledger.recorder.record(make_record(n))
            if n % 50 == 0:
                await asyncio.sleep(0.01)
        await ledger.flush()
        await wait_until(lambda: not ledger.stats().database_ok)
        stats = ledger.stats()
        assert stats.spool_rows == 500 and stats.spool_ok and stats.last_error is not None, stats
        assert stats.lag_s > 0 and stats.spool_bytes > 0 and stats.queued == 0, stats
        proxy.restore()
        await wait_until(lambda: ledger.stats().spool_rows == 0, timeout=30)
        stats = ledger.stats()
        assert stats.shipped + stats.duplicates == 550 and stats.database_ok and stats.last_error is None, stats
    finally:
        await ledger.stop()
    assert await counts(url) == (550, 550)


async def test_stop_with_database_down_keeps_rows_for_next_start(
        pg_proxy_url: tuple[TcpProxy, str], tmp_path: Path) -> None:
    proxy, url = pg_proxy_url
    await upgrade_async(url)
    proxy.cut()
    ledger = await Ledger.open(tmp_path / "spool.db", url, **FAST)
    for n in range(40):
        ledger.recorder.record(make_record(n))
    await ledger.flush()
    await wait_until(lambda: not ledger.stats().database_ok)
    await asyncio.wait_for(ledger.stop(timeout=5), 3)  # bounded: no grace while the database fails
    proxy.restore()
    again = await Ledger.open(tmp_path / "spool.db", url, **FAST)
    try:
        assert again.stats().spool_rows == 40
        await wait_until(lambda: again.stats().spool_rows == 0)
    finally:
        await again.stop()
    assert await counts(url) == (40, 40)


async def test_orphaned_slot_files_are_adopted(db_url: str, tmp_path: Path) -> None:
    base = tmp_path / "spool.db"
    held = Spool(base)
    await asyncio.to_thread(held.open)  # slot 0: a live worker
    one, two = Spool(base), Spool(base)
    await asyncio.to_thread(one.open)
    await asyncio.to_thread(two.open)
    for n in range(30):
        two.append(to_row(make_record(n)))
    await two.close()  # slot 2: left behind by a worker that is gone
    await one.close()
    ledger = await Ledger.open(base, db_url, **FAST)
    try:
        assert ledger.spool.path == slot_path(base, 1)
        await wait_until(lambda: ledger.adopted == 30)
    finally:
        await ledger.stop()
        await held.close()
    assert await counts(db_url) == (30, 30)


def test_spool_path_defaults_beside_the_sqlite_database(tmp_path: Path) -> None:
    assert spool_path(Settings(database_url=f"sqlite:///{tmp_path}/data/t.db")) == tmp_path / "data" / (
        "tollway-spool.db")
    assert spool_path(Settings(database_url="postgresql://u@h/db")) == Path("tollway-spool.db")
    assert spool_path(Settings(ledger_spool_path=str(tmp_path / "x.db"))) == tmp_path / "x.db"


async def test_unusable_spool_stops_start_up_with_a_clear_message(tmp_path: Path) -> None:
    (tmp_path / "file").write_text("")
    with pytest.raises(RuntimeError, match="usage ledger: cannot create the ledger spool directory"):
        await Ledger.open(tmp_path / "file" / "spool.db", f"sqlite:///{tmp_path}/t.db")


def test_database_identity_ignores_host_and_credentials(tmp_path: Path) -> None:
    assert database_identity("postgresql://a:pw@db1:5432/tollway") == database_identity(
        "postgres://b@db2:6543/tollway?sslmode=require") == "postgresql:tollway"
    assert database_identity("postgresql://a@db1/other") != database_identity("postgresql://a@db1/tollway")
    assert database_identity(f"sqlite:///{tmp_path}/a.db") == f"sqlite:{tmp_path}/a.db"

"""The direct writer: usage rows straight into an embedded SQLite database, the spool only as a fallback."""

from __future__ import annotations

import asyncio
import sqlite3
from decimal import Decimal
from pathlib import Path
from typing import Any

from tests.metering.ledger.conftest import make_record
from tests.metering.ledger.test_ledger import FAST, counts
from tests.metering.ledger.test_shipper import wait_until
from tollway.metering.ledger.direct import DirectWriter
from tollway.metering.ledger.entries import LEDGER_COLUMNS, to_row
from tollway.metering.ledger.groups import new_entry_id
from tollway.metering.ledger.ledger import Ledger
from tollway.settings import Settings
from tollway.storage.migrate import upgrade_async


async def sqlite_db(tmp_path: Path, name: str = "tollway.db") -> tuple[str, Path]:
    path = tmp_path / name
    url = f"sqlite+aiosqlite:///{path}"
    await upgrade_async(url)
    return url, path


def ledger_rows(path: Path) -> list[dict[str, Any]]:
    """Every usage_ledger row by request id, without the entry id (assigned per path)."""
    with sqlite3.connect(path) as conn:
        cur = conn.execute(f"SELECT {', '.join(LEDGER_COLUMNS)} FROM usage_ledger ORDER BY request_id")
        return [{k: v for k, v in zip(LEDGER_COLUMNS, row, strict=True) if k != "id"} for row in cur]


def records(n: int, start: int = 0) -> list[Any]:
    out = []
    for i in range(start, start + n):
        extra: dict[str, Any] = {}
        if i % 3 == 0:  # a mix of rollup keys, statuses, amounts and odd strings
            extra = {"model": "claude-sonnet-4", "status": "failed", "cost": None, "tags": {"t": "a\x00b"}}
        elif i % 3 == 1:
            extra = {"cost": Decimal("0.000000150"), "end_user_id": "u" * 300}
        out.append(make_record(i, **extra))
    return out


async def test_rows_go_straight_to_the_database(tmp_path: Path) -> None:
    url, path = await sqlite_db(tmp_path)
    ledger = await Ledger.open(tmp_path / "spool.db", url, direct=True, **FAST)
    try:
        assert ledger.spool.direct is not None
        for record in records(120):
            ledger.recorder.record(record)
        await ledger.flush()
        # committed by the time flush returns: nothing was spooled, the shipper had nothing to do
        assert len(ledger_rows(path)) == 120
        stats = ledger.stats()
        assert stats.direct == 120 and stats.shipped == 120 and stats.spool_rows == 0, stats
        assert ledger.shipper.shipped == 0 and ledger.spool.appended == 0
        assert stats.metrics()["tollway_ledger_direct_rows_total"] == 120
    finally:
        await ledger.stop()
    assert await counts(url) == (120, 120)  # and the rollups equal the sum of the rows


async def test_direct_and_shipped_rows_are_the_same(tmp_path: Path) -> None:
    """Same records, one ledger writing directly and one through spool + shipper: identical rows."""
    batch = records(60)
    out = []
    for direct in (True, False):
        url, path = await sqlite_db(tmp_path, f"db-{direct}.db")
        ledger = await Ledger.open(tmp_path / f"spool-{direct}.db", url, direct=direct, **FAST)
        try:
            for record in batch:
                ledger.recorder.record(record)
            await ledger.flush()
            await wait_until(lambda ledger=ledger: ledger.stats().shipped == 60)  # type: ignore[misc]
            assert (ledger.stats().direct == 60) is direct
        finally:
            await ledger.stop()
        assert await counts(url) == (60, 60)
        out.append(ledger_rows(path))
    assert out[0] == out[1]
    sample = out[0][1]
    assert sample["end_user_id"] == "u" * 64 and sample["total_usd"] == "0.000000150", sample


async def test_a_locked_database_falls_back_to_the_spool_exactly_once(tmp_path: Path) -> None:
    url, path = await sqlite_db(tmp_path)
    ledger = await Ledger.open(tmp_path / "spool.db", url, direct=True, **FAST)
    blocker = sqlite3.connect(path, isolation_level=None)
    try:
        for record in records(10):
            ledger.recorder.record(record)
        await ledger.flush()
        blocker.execute("BEGIN IMMEDIATE")  # another writer holds the database
        for record in records(40, start=10):
            ledger.recorder.record(record)
        await ledger.flush()
        direct = ledger.spool.direct
        assert direct is not None and direct.fallbacks >= 1 and "locked" in (direct.error or ""), direct.error
        assert ledger.stats().spool_rows == 40  # durable on disk meanwhile
        blocker.execute("ROLLBACK")
        await wait_until(lambda: ledger.stats().spool_rows == 0, timeout=15)
        await asyncio.sleep(1.1)  # the writer stood aside for retry_after_s (1 s) after the failure
        for record in records(5, start=50):  # direct again once the database is free
            ledger.recorder.record(record)
        await ledger.flush()
        stats = ledger.stats()
        assert stats.shipped == 55 and stats.duplicates == 0 and ledger.shipper.shipped == 40, stats
        assert stats.direct == 15, stats
    finally:
        blocker.close()
        await ledger.stop()
    assert await counts(url) == (55, 55)


async def test_writer_resumes_after_standing_aside(tmp_path: Path) -> None:
    url, path = await sqlite_db(tmp_path)
    writer = DirectWriter(str(path), busy_timeout_s=0.01, retry_after_s=0.0)
    lines = [(new_entry_id(), to_row(r)) for r in records(4)]
    blocker = sqlite3.connect(path, isolation_level=None)
    try:
        blocker.execute("BEGIN IMMEDIATE")
        assert writer.write(lines) is False and writer.fallbacks == 1 and writer.error is not None
        blocker.execute("ROLLBACK")
        assert writer.write(lines) is True and writer.written == 4 and writer.error is None
        # the same entry ids again: refused as a whole (the spool's shipper would skip them), nothing added
        assert writer.write(lines) is False and "UNIQUE" in (writer.error or "")
    finally:
        blocker.close()
        writer.close()
    assert len(ledger_rows(path)) == 4
    assert await counts(url) == (4, 4)


async def test_stands_aside_after_a_database_error(tmp_path: Path) -> None:
    _, path = await sqlite_db(tmp_path)
    writer = DirectWriter(str(path), busy_timeout_s=0.01, retry_after_s=60.0)
    lines = [(new_entry_id(), to_row(r)) for r in records(2)]
    with sqlite3.connect(path, isolation_level=None) as blocker:
        blocker.execute("BEGIN IMMEDIATE")
        assert writer.write(lines) is False
        blocker.execute("ROLLBACK")
    assert writer.write(lines) is False and writer.fallbacks == 2  # not retried within retry_after_s
    writer.close()
    assert ledger_rows(path) == []


async def test_an_unusable_row_falls_back_without_standing_aside(tmp_path: Path) -> None:
    _, path = await sqlite_db(tmp_path)
    writer = DirectWriter(str(path), retry_after_s=60.0)
    good = (new_entry_id(), to_row(make_record(1)))
    bad = (new_entry_id(), {**to_row(make_record(2)), "created_at": "yesterday"})
    assert writer.write([good, bad]) is False and "unusable" in (writer.error or "")
    assert writer.write([(new_entry_id(), to_row(make_record(3)))]) is True  # the next group goes straight in
    writer.close()
    assert len(ledger_rows(path)) == 1


async def test_no_schema_yet_spools_until_migrated(tmp_path: Path) -> None:
    path = tmp_path / "fresh.db"
    url = f"sqlite+aiosqlite:///{path}"
    ledger = await Ledger.open(tmp_path / "spool.db", url, direct=True, retry_initial_s=0.05, retry_max_s=0.1,
                               idle_poll_s=0.05)
    try:
        for record in records(3):
            ledger.recorder.record(record)
        await ledger.flush()
        assert ledger.stats().spool_rows == 3
        await upgrade_async(url)
        await wait_until(lambda: ledger.stats().shipped == 3, timeout=15)
    finally:
        await ledger.stop()
    assert await counts(url) == (3, 3)


async def test_direct_only_for_a_local_sqlite_file(db_url: str, tmp_path: Path) -> None:
    ledger = await Ledger.open(tmp_path / "spool.db", db_url, direct=True, **FAST)
    try:
        assert (ledger.spool.direct is not None) is db_url.startswith("sqlite")
        ledger.recorder.record(make_record(1))
        await ledger.flush()
        await wait_until(lambda: ledger.stats().shipped == 1)
    finally:
        await ledger.stop()
    memory = await Ledger.open(tmp_path / "spool-mem.db", "sqlite+aiosqlite:///:memory:", direct=True, **FAST)
    try:
        assert memory.spool.direct is None
    finally:
        await memory.stop()


async def test_setting_turns_it_on_by_default(tmp_path: Path) -> None:
    url, _ = await sqlite_db(tmp_path)
    for value, expected in ((None, True), (False, False)):
        options: dict[str, Any] = {"database_url": url, "ledger_spool_path": str(tmp_path / f"s-{value}.db")}
        if value is not None:
            options["ledger_direct"] = value
        ledger = await Ledger.start(Settings(**options))
        try:
            assert (ledger.spool.direct is not None) is expected
        finally:
            await ledger.stop()

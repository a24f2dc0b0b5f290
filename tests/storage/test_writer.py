"""BatchWriter with an in-memory ``write_rows``: batching, retries, quarantine, crash recovery, bounds."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from typing import Any

import pytest
from sqlalchemy.exc import DBAPIError, IntegrityError, OperationalError, ProgrammingError, StatementError

from tollway.storage.errors import StoreBacklogFullError
from tollway.storage.writer import BatchWriter, PendingRow, describe, is_row_error


class FakeDatabase:
    """Records committed rows; ``fail`` decides per attempt whether (and how) the write fails."""

    def __init__(self, fail: Callable[[list[PendingRow]], BaseException | None] | None = None) -> None:
        self.committed: dict[str, dict[str, object]] = {}
        self.attempts: list[list[str]] = []
        self.fail = fail

    async def write_rows(self, rows: list[PendingRow]) -> None:
        self.attempts.append([row.key for row in rows])
        await asyncio.sleep(0)
        error = self.fail(rows) if self.fail is not None else None
        if error is not None:
            raise error
        for row in rows:
            self.committed[row.key] = row.values


def _row(key: str, value: object = 1, size: int = 10) -> PendingRow:
    return PendingRow(key, {"id": key, "value": value}, size)


def _writer(db: FakeDatabase, **options: Any) -> BatchWriter:
    options.setdefault("retry_initial_s", 0.01)
    options.setdefault("retry_max_s", 0.05)
    return BatchWriter(db.write_rows, name="test", **options)


def _offline() -> OperationalError:
    return OperationalError("INSERT", None, ConnectionRefusedError("connection refused"))


def _events(caplog: pytest.LogCaptureFixture, event: str) -> list[logging.LogRecord]:
    return [record for record in caplog.records if getattr(record, "event", None) == event]


async def test_rows_are_written_in_batches_of_bounded_size() -> None:
    db = FakeDatabase()
    writer = _writer(db, batch_size=3)
    for index in range(10):
        writer.submit(_row(f"k{index}"))
    writer.start()
    await writer.flush(timeout=5)
    assert set(db.committed) == {f"k{index}" for index in range(10)}
    assert all(len(batch) <= 3 for batch in db.attempts)
    assert writer.pending_rows == 0 and writer.pending_bytes == 0
    await writer.close()


async def test_transient_errors_are_retried_with_backoff_until_success(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="tollway.storage")
    failures = iter([_offline(), _offline(), TimeoutError(), OSError("network down")])
    db = FakeDatabase(lambda rows: next(failures, None))
    writer = _writer(db)
    writer.start()
    writer.submit(_row("a"))
    writer.submit(_row("b"))
    assert writer.get("a") is not None  # readable while unwritten
    await writer.flush(timeout=5)
    assert set(db.committed) == {"a", "b"}
    retries = _events(caplog, "storage.write_retry")
    assert [getattr(record, "attempt") for record in retries] == [1, 2, 3, 4]  # noqa: B009
    assert all(record.levelno == logging.WARNING for record in retries)
    assert "ConnectionRefusedError" in str(getattr(retries[0], "error"))  # noqa: B009
    delays = [float(getattr(record, "retry_in_s")) for record in retries]  # noqa: B009
    assert delays[-1] > delays[0]  # backs off
    assert _events(caplog, "storage.write_recovered")
    await writer.close()


async def test_row_errors_are_isolated_and_quarantined(caplog: pytest.LogCaptureFixture) -> None:
    def fail(rows: list[PendingRow]) -> BaseException | None:
        if any(row.values["value"] == "bad" for row in rows):
            return IntegrityError("INSERT", None, Exception("NOT NULL constraint failed"))
        return None

    db = FakeDatabase(fail)
    writer = _writer(db)
    writer.start()
    for key, value in (("a", 1), ("poison", "bad"), ("b", 2)):
        writer.submit(_row(key, value))
    await writer.flush(timeout=5)
    assert set(db.committed) == {"a", "b"}
    quarantined = writer.get("poison")
    assert quarantined is not None and quarantined.quarantined
    assert [getattr(record, "key") for record in _events(caplog, "storage.row_quarantined")] == ["poison"]  # noqa: B009
    # A later, valid version of the same key is written normally.
    writer.submit(_row("poison", 3))
    await writer.flush(timeout=5)
    assert db.committed["poison"] == {"id": "poison", "value": 3}
    assert writer.get("poison") is None
    await writer.close()


async def test_transient_error_during_isolation_is_retried() -> None:
    calls = {"n": 0}

    def fail(rows: list[PendingRow]) -> BaseException | None:
        calls["n"] += 1
        if calls["n"] == 1:
            return IntegrityError("INSERT", None, Exception("duplicate"))  # looks like a bad row...
        if calls["n"] == 2:
            return _offline()  # ...then the database drops out while rows are tried one by one
        return None

    db = FakeDatabase(fail)
    writer = _writer(db)
    writer.start()
    writer.submit(_row("a"))
    writer.submit(_row("b"))
    await writer.flush(timeout=5)
    assert set(db.committed) == {"a", "b"}
    await writer.close()


async def test_resubmitted_key_writes_its_newest_version() -> None:
    gate = asyncio.Event()

    async def slow_write(rows: list[PendingRow]) -> None:
        await gate.wait()
        for row in rows:
            db.committed[row.key] = row.values

    db = FakeDatabase()
    writer = BatchWriter(slow_write, name="test")
    writer.start()
    writer.submit(_row("a", "v1"))
    await asyncio.sleep(0.01)  # v1 is in flight
    writer.submit(_row("a", "v2"))
    current = writer.get("a")
    assert current is not None and current.values["value"] == "v2"
    gate.set()
    await writer.flush(timeout=5)
    assert db.committed["a"]["value"] == "v2"
    assert writer.pending_rows == 0
    await writer.close()


async def test_discarded_row_is_not_written_after_recovery() -> None:
    down = {"value": True}
    db = FakeDatabase(lambda rows: _offline() if down["value"] else None)
    writer = _writer(db)
    writer.start()
    writer.submit(_row("gone"))
    writer.submit(_row("kept"))
    while len(db.attempts) < 2:
        await asyncio.sleep(0.005)
    async with writer.exclusive():
        assert writer.discard("gone") is True
        assert writer.discard("gone") is False
    down["value"] = False
    await writer.flush(timeout=5)
    assert set(db.committed) == {"kept"}
    await writer.close()


async def test_writer_task_crash_is_logged_and_restarted(caplog: pytest.LogCaptureFixture) -> None:
    crashes = iter([RuntimeError("bug in write_rows")])
    db = FakeDatabase(lambda rows: next(crashes, None))
    writer = _writer(db, retry_max_s=0.05)
    writer.start()
    writer.submit(_row("a"))
    await writer.flush(timeout=5)
    assert set(db.committed) == {"a"}
    [crash] = _events(caplog, "storage.writer_crashed")
    assert crash.levelno == logging.ERROR and crash.exc_info is not None
    await writer.close()


async def test_hung_write_times_out_and_is_retried() -> None:
    hang = {"first": True}

    async def write(rows: list[PendingRow]) -> None:
        if hang["first"]:
            hang["first"] = False
            await asyncio.sleep(3600)
        for row in rows:
            db.committed[row.key] = row.values

    db = FakeDatabase()
    writer = BatchWriter(write, name="test", attempt_timeout_s=0.05, retry_initial_s=0.01, retry_max_s=0.02)
    writer.start()
    writer.submit(_row("a"))
    await writer.flush(timeout=5)
    assert set(db.committed) == {"a"}
    await writer.close()


async def test_backlog_bounds_rows_and_bytes(caplog: pytest.LogCaptureFixture) -> None:
    writer = _writer(FakeDatabase(), max_rows=2, max_bytes=100)  # not started: nothing drains
    writer.submit(_row("a", size=10))
    writer.submit(_row("b", size=10))
    assert not writer.has_capacity()
    with pytest.raises(StoreBacklogFullError):
        writer.submit(_row("c", size=10))
    writer.submit(_row("b", size=60))  # replacing an existing key adds no row
    with pytest.raises(StoreBacklogFullError):
        writer.submit(_row("b", size=95))  # 10 + 95 > 100 bytes
    assert writer.pending_rows == 2 and writer.pending_bytes == 70
    assert writer.get("c") is None
    assert len(_events(caplog, "storage.backlog_full")) == 2


async def test_close_waits_for_backlog_then_gives_up(caplog: pytest.LogCaptureFixture) -> None:
    db = FakeDatabase(lambda rows: _offline())
    writer = _writer(db)
    writer.start()
    writer.submit(_row("a"))
    started = time.monotonic()
    await writer.close(timeout=0.2)
    assert 0.15 <= time.monotonic() - started < 2
    [lost] = _events(caplog, "storage.unwritten_at_close")
    assert getattr(lost, "rows") == 1  # noqa: B009
    with pytest.raises(RuntimeError):
        writer.submit(_row("b"))


async def test_close_writes_the_backlog_when_healthy() -> None:
    db = FakeDatabase()
    writer = _writer(db)
    writer.start()
    for index in range(50):
        writer.submit(_row(f"k{index}"))
    await writer.close(timeout=5)
    assert len(db.committed) == 50


async def test_flush_before_start_is_an_error() -> None:
    with pytest.raises(RuntimeError):
        await _writer(FakeDatabase()).flush(timeout=1)


def _dbapi_error(sqlstate: str) -> DBAPIError:
    class Orig(Exception):
        pass

    orig = Orig("server said no")
    orig.sqlstate = sqlstate  # type: ignore[attr-defined]
    return DBAPIError("INSERT", None, orig)


@pytest.mark.parametrize(
    ("error", "row_level"),
    [
        (IntegrityError("INSERT", None, Exception("dup")), True),
        (_dbapi_error("22P05"), True),  # PostgreSQL: untranslatable character (\u0000 in jsonb)
        (_dbapi_error("23502"), True),  # not null violation
        (_dbapi_error("08006"), False),  # connection failure
        (_dbapi_error("57P01"), False),  # admin shutdown
        (StatementError("bind", "INSERT", None, TypeError("not serialisable")), True),
        (_offline(), False),
        (ProgrammingError("INSERT", None, Exception("relation does not exist")), False),
        (OSError("unreachable"), False),
        (TimeoutError(), False),
    ],
)
def test_is_row_error(error: BaseException, row_level: bool) -> None:
    assert is_row_error(error) is row_level


def test_describe_keeps_statement_and_parameters_out() -> None:
    error = StatementError("boom", "INSERT INTO stored_responses ...", {"input_items": "secret prompt"}, None)
    text = describe(OperationalError("INSERT ... secret", {"p": "secret prompt"}, ConnectionError("refused")))
    assert text == "ConnectionError: refused"
    assert "secret" not in describe(error)

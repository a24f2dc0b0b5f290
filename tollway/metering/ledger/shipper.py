"""The shipper: a background task moving spooled rows to the database, exactly once.

Loop: read the oldest rows from the spool (up to ``batch_size``) → in ONE database transaction insert them
into ``usage_ledger`` with ``ON CONFLICT (id) DO NOTHING RETURNING id`` and add the rows that were really
inserted to ``usage_daily`` → commit → only then delete them from the spool. A crash (or a lost commit
acknowledgement) between the commit and the delete re-delivers those rows later; they insert nothing and
add nothing, so every row is written exactly once and the rollups never double count.

While the database is unreachable each attempt fails fast (bounded by the engine's connect timeout and
``attempt_timeout_s``), the error is kept for ``/health/ready`` and logged, and the next attempt waits with
exponential backoff and jitter (``retry_initial_s`` doubling to ``retry_max_s``, so
the backlog starts draining at most a few seconds after the database is back). Requests keep being
served meanwhile — they only ever touch the spool, which grows on disk — and the backlog drains as soon
as the database answers again.

Rows the database refuses for their content (integrity or data errors; :func:`is_row_error`) would block
the queue forever: the batch is then retried row by row and a row that still fails on its own is
*quarantined* — kept in the spool file, out of the shipping order, logged and counted. A payload that
does not even decode as a ledger row is quarantined the same way.
"""

from __future__ import annotations

import asyncio
import logging
import random
import time
from collections.abc import Sequence
from typing import Any

import orjson
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from tollway.metering.ledger import rollups
from tollway.metering.ledger.entries import db_values
from tollway.metering.ledger.rollups import LEDGER
from tollway.metering.ledger.spool import Spool, SpooledRow, SpoolError
from tollway.storage.engine import DB_ERRORS
from tollway.storage.writer import describe, is_row_error

log = logging.getLogger("tollway.ledger")

_DECODE_ERRORS = (orjson.JSONDecodeError, TypeError, ValueError, KeyError, ArithmeticError)
# Rows per INSERT: 35 bound parameters each, under the 32,766 limit of SQLite and asyncpg.
MAX_BATCH = 900
_SHIP_ERRORS: tuple[type[BaseException], ...] = (*DB_ERRORS, TypeError, ValueError)


_INSERT_PG = pg_insert(LEDGER).on_conflict_do_nothing(index_elements=["id"]).returning(LEDGER.c.id)
_INSERT_SQLITE = sqlite_insert(LEDGER).on_conflict_do_nothing(index_elements=["id"]).returning(LEDGER.c.id)


async def insert_entries(conn: AsyncConnection, values: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    """Insert ledger rows (skipping ids already present) and add the inserted ones to the rollups; returns
    the inserted rows. Run inside a transaction."""
    if not values:
        return []
    # One statement per dialect, executed with the rows as parameters ("insertmanyvalues"): compiled once and
    # cached, where a multi-row .values() would be compiled again for every batch.
    stmt = _INSERT_PG if conn.dialect.name == "postgresql" else _INSERT_SQLITE
    result = await conn.execute(stmt, list(values))
    created = set(result.scalars().all())
    inserted = [v for v in values if v["id"] in created]
    await rollups.apply(conn, inserted)
    return inserted


class Shipper:
    def __init__(
        self,
        spool: Spool,
        engine: AsyncEngine,
        *,
        batch_size: int = 500,
        linger_s: float = 0.02,
        idle_poll_s: float = 1.0,
        retry_initial_s: float = 0.25,
        retry_max_s: float = 5.0,
        attempt_timeout_s: float = 30.0,
    ) -> None:
        if not 1 <= batch_size <= MAX_BATCH:
            raise ValueError(f"batch_size must be between 1 and {MAX_BATCH}")
        self.spool = spool
        self.engine = engine
        self._batch_size = batch_size
        self._linger_s = linger_s
        self._idle_poll_s = idle_poll_s
        self._retry_initial_s = retry_initial_s
        self._retry_max_s = retry_max_s
        self._attempt_timeout_s = attempt_timeout_s
        self._money_as_text = engine.dialect.name != "postgresql"
        self._wake = asyncio.Event()
        self._stopping = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._failures = 0
        # Stats (read by /health/ready and metrics).
        self.shipped = 0  # rows inserted into the database by this shipper
        self.duplicates = 0  # re-delivered rows the database already had (skipped)
        self.quarantined = 0
        self.last_error: str | None = None  # None once a batch succeeds again
        self.last_error_at: float | None = None
        self.last_shipped_at: float | None = None

    @property
    def failing(self) -> bool:
        return self._failures > 0

    # ---- lifecycle ---------------------------------------------------------------------------------

    def start(self) -> None:
        loop = asyncio.get_running_loop()

        def wake() -> None:  # in the spool thread, after each commit
            if not self._wake.is_set():
                loop.call_soon_threadsafe(self._wake.set)

        self.spool.set_on_commit(wake)
        self._task = loop.create_task(self._run(), name="ledger-shipper")
        self._task.add_done_callback(self._on_done)

    async def stop(self, timeout: float) -> None:
        """Ship what the spool holds for up to ``timeout`` seconds (none while the database is failing),
        then stop. Whatever is left stays in the spool for the next start."""
        self.spool.set_on_commit(None)
        self._stopping.set()
        self._wake.set()
        task, self._task = self._task, None
        if task is None:
            return
        if not self.failing:
            await asyncio.wait({task}, timeout=timeout)
        if not task.done():
            task.cancel()
            await asyncio.wait({task})

    def _on_done(self, task: asyncio.Task[None]) -> None:
        if task.cancelled():
            return
        exc = task.exception()
        if exc is None or task is not self._task:
            return
        log.error("ledger shipper crashed; restarting", exc_info=exc, extra={"event": "ledger.shipper_crashed"})
        self._task = None
        asyncio.get_running_loop().call_later(self._retry_max_s, self._restart)

    def _restart(self) -> None:
        if self._task is None and not self._stopping.is_set():
            self.start()

    # ---- the loop ----------------------------------------------------------------------------------

    async def _run(self) -> None:
        while True:
            self._wake.clear()
            try:
                batch = await self.spool.read(self._batch_size)
            except SpoolError:
                return  # the spool closed under us (shutdown)
            if not batch:
                if self._stopping.is_set():
                    return
                await self._wait(self._idle_poll_s, self._wake)
                continue
            if len(batch) < self._batch_size and not self._stopping.is_set() and self._linger_s > 0:
                await asyncio.sleep(self._linger_s)  # let a fuller batch gather under load
                batch = await self.spool.read(self._batch_size)
            if await self.ship(batch):
                continue
            if self._stopping.is_set():
                return
            await self._wait(self._backoff(), self._stopping)  # new rows do not cut a backoff short

    async def ship_available(self) -> bool:
        """Ship until the spool is empty (True) or the database fails (False). For adopted spools."""
        while batch := await self.spool.read(self._batch_size):
            if not await self.ship(batch):
                return False
        return True

    @staticmethod
    async def _wait(seconds: float, event: asyncio.Event) -> None:
        try:
            async with asyncio.timeout(seconds):
                await event.wait()
        except TimeoutError:
            pass

    def _backoff(self) -> float:
        base = min(self._retry_max_s, self._retry_initial_s * 2.0 ** min(self._failures - 1, 30))
        return base * (0.8 + 0.4 * random.random())

    # ---- one batch ---------------------------------------------------------------------------------

    async def ship(self, batch: list[SpooledRow]) -> bool:
        """Write ``batch`` and delete it from the spool; False if the database failed (kept for a retry)."""
        rows, bad = self._decode(batch)
        if bad:
            await self._quarantine(bad, "undecodable ledger row")
        if not rows:
            return True
        try:
            await self._attempt(rows)
        except _SHIP_ERRORS as exc:
            if not is_row_error(exc):
                self._failed(exc, len(rows))
                return False
            return await self._ship_one_by_one(rows)
        self._succeeded()
        return True

    def _decode(self, batch: list[SpooledRow]) -> tuple[list[tuple[int, dict[str, Any]]], list[int]]:
        rows: list[tuple[int, dict[str, Any]]] = []
        bad: list[int] = []
        for item in batch:
            try:
                rows.append((item.seq, db_values(item.entry_id, item.payload, money_as_text=self._money_as_text)))
            except _DECODE_ERRORS:
                bad.append(item.seq)
        return rows, bad

    async def _attempt(self, rows: list[tuple[int, dict[str, Any]]]) -> None:
        async with asyncio.timeout(self._attempt_timeout_s):
            async with self.engine.begin() as conn:
                inserted = await insert_entries(conn, [values for _, values in rows])
        await self.spool.delete([seq for seq, _ in rows])
        self.shipped += len(inserted)
        self.duplicates += len(rows) - len(inserted)
        self.last_shipped_at = time.time()

    async def _ship_one_by_one(self, rows: list[tuple[int, dict[str, Any]]]) -> bool:
        for row in rows:
            try:
                await self._attempt([row])
            except _SHIP_ERRORS as exc:
                if not is_row_error(exc):
                    self._failed(exc, len(rows))
                    return False
                await self._quarantine([row[0]], describe(exc))
        self._succeeded()
        return True

    async def _quarantine(self, seqs: list[int], reason: str) -> None:
        await self.spool.quarantine(seqs)
        self.quarantined += len(seqs)
        log.error("ledger rows refused; quarantined in the spool", extra={
            "event": "ledger.rows_quarantined", "rows": len(seqs), "error": reason,
            "spool": str(self.spool.path)})

    def _failed(self, exc: BaseException, rows: int) -> None:
        self._failures += 1
        self.last_error = describe(exc) if not isinstance(exc, TimeoutError) else "TimeoutError: write timed out"
        self.last_error_at = time.time()
        log.warning("ledger database write failed; rows stay in the spool", extra={
            "event": "ledger.ship_failed", "attempt": self._failures, "rows": rows,
            "spool_rows": self.spool.rows, "error": self.last_error})

    def _succeeded(self) -> None:
        if self._failures:
            log.info("ledger database writes recovered", extra={
                "event": "ledger.ship_recovered", "attempts": self._failures + 1, "spool_rows": self.spool.rows})
        self._failures = 0
        self.last_error = None

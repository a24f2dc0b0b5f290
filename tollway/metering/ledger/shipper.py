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

Cost per row (it runs on the gateway's core): the payload is decoded straight into driver parameters in
column order (:func:`~tollway.metering.ledger.entries.sqlite_params` / ``postgresql_params``) and the
INSERT is driver SQL built once — PostgreSQL: the batch as one JSON text unpacked by the server, a single
prepared statement; SQLite: a multi-row VALUES of a few fixed sizes, run on the aiosqlite connection in one round
trip — so SQLAlchemy neither compiles nor processes parameters per row. The rollups likewise
(:mod:`.rollups`).
"""

from __future__ import annotations

import asyncio
import logging
import random
import time
from collections.abc import Callable, Sequence
from functools import lru_cache
from itertools import chain
from typing import Any

import orjson
from sqlalchemy import String
from sqlalchemy.dialects.postgresql.base import PGDialect
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from tollway.metering.ledger import rollups
from tollway.metering.ledger.entries import (
    LEDGER_COLUMNS,
    postgresql_form,
    postgresql_params,
    sqlite_form,
    sqlite_params,
)
from tollway.metering.ledger.rollups import LEDGER, sqlite_driver_sql
from tollway.metering.ledger.spool import Spool, SpooledRow, SpoolError
from tollway.storage.engine import DB_ERRORS
from tollway.storage.writer import describe, is_row_error

log = logging.getLogger("tollway.ledger")

_DECODE_ERRORS = (orjson.JSONDecodeError, TypeError, ValueError, KeyError, ArithmeticError)
# Rows per INSERT: 33 bound parameters each on SQLite (29,700 at most), under its limit of 32,766
# (PostgreSQL binds one JSON text).
MAX_BATCH = 900
_SHIP_ERRORS: tuple[type[BaseException], ...] = (*DB_ERRORS, TypeError, ValueError)

Row = list[Any]  # usage_ledger values in LEDGER_COLUMNS order, in the driver's form (entries.*_params)

# The ledger INSERT as driver SQL, built once from the table: SQLAlchemy's per-row parameter processing
# cost more than the database's own work. Both skip ids already present and return the ids inserted.
_ID = LEDGER_COLUMNS.index("id")
_COLUMN_LIST = ", ".join(LEDGER_COLUMNS)
_CONFLICT = "ON CONFLICT (id) DO NOTHING RETURNING id"
_SQLITE_ROW = "(" + ", ".join("?" * len(LEDGER_COLUMNS)) + ")"


def _pg_value(i: int, name: str) -> str:
    """Column ``name`` from the JSON array ``e`` (the row): text as is, the rest cast from their JSON text
    (exact: numeric and timestamp from their decimal / ISO text, float8 from the shortest round-trip repr)."""
    if name == "tags":
        return f"(e->{i})::jsonb"
    column_type = LEDGER.c[name].type
    if isinstance(column_type, String):
        return f"e->>{i}"
    return f"(e->>{i})::{column_type.compile(dialect=PGDialect())}"  # type: ignore[no-untyped-call]


# PostgreSQL: the whole batch as ONE JSON text parameter, unpacked by the server — one prepared statement
# whatever the row count, and nothing per value on the client but orjson (asyncpg's array encoder spent
# ~10 µs per row on per-element type checks).
_INSERT_PG = (
    f"INSERT INTO {LEDGER.name} ({_COLUMN_LIST}) SELECT "
    + ", ".join(_pg_value(i, name) for i, name in enumerate(LEDGER_COLUMNS))
    + f" FROM json_array_elements($1::text::json) AS r(e) {_CONFLICT}"
)


def sqlite_statement_rows(rows: int) -> int:
    """Rows of the SQLite statement that inserts ``rows`` rows: the next power of two up to 32, then the next
    multiple of 50 (a full default batch of 500 needs no padding). SQLite caches every statement text it
    prepares (128 per connection), and a prepared multi-row INSERT holds ~3 kB per row: one text per row
    count let partial batches pin over 150 MB of statements; these are at most 24 texts. The missing rows are
    copies of the last row: the same id again, which ON CONFLICT skips (it is inserted and returned once)."""
    if rows <= 32:
        return 1 << (rows - 1).bit_length()
    return -(-rows // 50) * 50


@lru_cache(maxsize=32)
def _insert_sqlite(rows: int) -> str:
    """SQLite: a multi-row VALUES statement (qmark parameters, row after row)."""
    return f"INSERT INTO {LEDGER.name} ({_COLUMN_LIST}) VALUES {', '.join([_SQLITE_ROW] * rows)} {_CONFLICT}"


async def _insert_ids(conn: AsyncConnection, rows: Sequence[Row]) -> set[Any]:
    """Insert rows (at most MAX_BATCH), skipping ids already present; the ids inserted."""
    if conn.dialect.name == "postgresql":
        result = await conn.exec_driver_sql(_INSERT_PG, (orjson.dumps(rows).decode(),))
        return set(result.scalars().all())
    size = sqlite_statement_rows(len(rows))
    padded = chain(chain.from_iterable(rows), rows[-1] * (size - len(rows)))
    return {found[0] for found in await sqlite_driver_sql(conn, _insert_sqlite(size), tuple(padded))}


async def insert_rows(conn: AsyncConnection, rows: Sequence[Row]) -> list[Row]:
    """Insert ledger rows (skipping ids already present) and add the inserted ones to the rollups; returns
    the inserted rows. Run inside a transaction."""
    created: set[Any] = set()
    for i in range(0, len(rows), MAX_BATCH):
        created |= await _insert_ids(conn, rows[i : i + MAX_BATCH])
    inserted = []
    for row in rows:
        if row[_ID] in created:
            created.discard(row[_ID])  # an id twice in one batch is inserted (and counted) once
            inserted.append(row)
    await rollups.apply_rows(conn, inserted)
    return inserted


async def insert_entries(conn: AsyncConnection, values: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    """:func:`insert_rows` for rows by column name, as :func:`~tollway.metering.ledger.entries.db_values`
    gives them; returns the inserted ones."""
    form = postgresql_form if conn.dialect.name == "postgresql" else sqlite_form
    inserted = await insert_rows(conn, [form([v[name] for name in LEDGER_COLUMNS]) for v in values])
    ids = {row[_ID] for row in inserted}
    out = []
    for v in values:
        if v["id"] in ids:
            ids.discard(v["id"])
            out.append(v)
    return out


class Shipper:
    def __init__(
        self,
        spool: Spool,
        engine: AsyncEngine,
        *,
        batch_size: int = 500,
        linger_s: float = 0.25,
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
        self._params: Callable[[str, bytes], Row] = (
            postgresql_params if engine.dialect.name == "postgresql" else sqlite_params)
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

    def _decode(self, batch: list[SpooledRow]) -> tuple[list[tuple[int, Row]], list[int]]:
        rows: list[tuple[int, Row]] = []
        bad: list[int] = []
        params = self._params
        for item in batch:
            try:
                rows.append((item.seq, params(item.entry_id, item.payload)))
            except _DECODE_ERRORS:
                bad.append(item.seq)
        return rows, bad

    async def _attempt(self, rows: list[tuple[int, Row]]) -> None:
        async with asyncio.timeout(self._attempt_timeout_s):
            async with self.engine.begin() as conn:
                inserted = await insert_rows(conn, [values for _, values in rows])
        await self.spool.delete([seq for seq, _ in rows])
        self.shipped += len(inserted)
        self.duplicates += len(rows) - len(inserted)
        self.last_shipped_at = time.time()

    async def _ship_one_by_one(self, rows: list[tuple[int, Row]]) -> bool:
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

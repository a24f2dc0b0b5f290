"""A background, batching, retrying database writer: writes never block the request path.

:meth:`BatchWriter.submit` is synchronous and O(1): it puts the row in an in-memory *pending* map (key →
row) and its key on a FIFO queue, and wakes the writer task. The writer drains the queue in batches of up
to ``batch_size`` rows (rows that arrive while a batch is being written form the next batch) and hands
each batch to the ``write_rows`` callback, one transaction per batch.

A row stays in the pending map until its write has committed, so readers can always find it (a
continuation may arrive the instant the previous response finished). Re-submitting a key replaces the
pending row (the newest version is what gets written).

Failures:

* Transient database errors (connectivity, timeouts, locks, server errors — :data:`DB_ERRORS`) are logged
  with ``logger.warning`` (structured ``extra`` fields, no row content) and the batch is retried with
  exponential backoff and jitter (``retry_initial_s`` doubling up to ``retry_max_s``), for as long as the
  process lives. Nothing queued is dropped.
* Row-level errors (a value the database rejects: integrity or data errors such as a ``\\u0000`` in a
  PostgreSQL JSONB string) would make a batch fail forever. The batch is then written row by row; a row
  that still fails on its own is *quarantined*: logged with ``logger.error``, never retried, but kept in
  the pending map so it stays readable while the process lives. Re-submitting its key un-quarantines it.
* Each attempt is bounded by ``attempt_timeout_s``. If the writer task itself dies of an unexpected
  exception, it is logged and restarted after ``retry_max_s``, with every unwritten row re-queued.

Bound: at most ``max_rows`` rows / ``max_bytes`` (encoded size) may be pending. When full, ``submit``
writes nothing and raises :class:`~tollway.storage.errors.StoreBacklogFullError` (a 503); callers can
check :meth:`has_capacity` first to refuse work they could not store. This only happens when the
database has been failing long enough to build that backlog.

Shutdown: :meth:`close` stops accepting rows and waits up to ``timeout`` for the backlog to be written;
rows still unwritten then (the database is down) are reported with ``logger.error`` and lost with the
process.
"""

from __future__ import annotations

import asyncio
import logging
import random
from collections import deque
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any

from sqlalchemy.exc import DataError, DBAPIError, IntegrityError, StatementError

from tollway.storage.engine import DB_ERRORS
from tollway.storage.errors import StoreBacklogFullError

logger = logging.getLogger("tollway.storage")

# SQLSTATE classes that belong to the row, not to the connection: 22 data exception, 23 integrity.
_ROW_SQLSTATE_CLASSES = ("22", "23")
_WRITE_ERRORS: tuple[type[BaseException], ...] = (*DB_ERRORS, TypeError, ValueError)


@dataclass(slots=True, eq=False)
class PendingRow:
    """One row waiting to be written. ``values`` maps column names to bind values; ``size`` is its
    approximate encoded size in bytes (for the backlog bound)."""

    key: str
    values: dict[str, Any]
    size: int
    quarantined: bool = False


WriteRows = Callable[[list[PendingRow]], Awaitable[None]]


def is_row_error(exc: BaseException) -> bool:
    """True when ``exc`` is caused by the rows' values, so retrying the same rows cannot succeed."""
    if isinstance(exc, (IntegrityError, DataError, TypeError, ValueError)):
        return True
    if isinstance(exc, StatementError) and isinstance(exc.orig, (TypeError, ValueError)):
        return True
    if isinstance(exc, DBAPIError):
        sqlstate = getattr(exc.orig, "sqlstate", None)
        return isinstance(sqlstate, str) and sqlstate[:2] in _ROW_SQLSTATE_CLASSES
    return False


def describe(exc: BaseException) -> str:
    """A short, content-free description of a database error for logs."""
    cause = exc.orig if isinstance(exc, StatementError) and exc.orig is not None else exc
    first_line = str(cause).strip().splitlines()[0] if str(cause).strip() else ""
    return f"{type(cause).__name__}: {first_line[:300]}"


class BatchWriter:
    def __init__(
        self,
        write_rows: WriteRows,
        *,
        name: str,
        batch_size: int = 256,
        max_rows: int = 10_000,
        max_bytes: int = 256 * 1024 * 1024,
        retry_initial_s: float = 0.1,
        retry_max_s: float = 10.0,
        attempt_timeout_s: float = 30.0,
    ) -> None:
        if batch_size < 1 or max_rows < 1 or max_bytes < 1:
            raise ValueError("batch_size, max_rows and max_bytes must be positive")
        self._write_rows = write_rows
        self._name = name
        self._batch_size = batch_size
        self._max_rows = max_rows
        self._max_bytes = max_bytes
        self._retry_initial_s = retry_initial_s
        self._retry_max_s = retry_max_s
        self._attempt_timeout_s = attempt_timeout_s
        self._pending: dict[str, PendingRow] = {}
        self._pending_bytes = 0
        self._queue: deque[str] = deque()
        self._wake = asyncio.Event()
        self._idle = asyncio.Event()
        self._idle.set()
        self._lock = asyncio.Lock()
        self._task: asyncio.Task[None] | None = None
        self._started = False
        self._closing = False

    # ---- state -------------------------------------------------------------------------------------

    @property
    def pending_rows(self) -> int:
        return len(self._pending)

    @property
    def pending_bytes(self) -> int:
        return self._pending_bytes

    def has_capacity(self) -> bool:
        return len(self._pending) < self._max_rows and self._pending_bytes < self._max_bytes

    def get(self, key: str) -> PendingRow | None:
        """The row for ``key`` if it is not yet written (including quarantined rows)."""
        return self._pending.get(key)

    # ---- producer side -----------------------------------------------------------------------------

    def submit(self, row: PendingRow) -> None:
        """Queue ``row`` (replacing any pending row with the same key). Never blocks."""
        if self._closing:
            raise RuntimeError(f"{self._name} writer is closed")
        previous = self._pending.get(row.key)
        rows_after = len(self._pending) + (0 if previous is not None else 1)
        bytes_after = self._pending_bytes + row.size - (previous.size if previous is not None else 0)
        if rows_after > self._max_rows or bytes_after > self._max_bytes:
            logger.warning(
                "write backlog full; row not queued",
                extra={
                    "event": "storage.backlog_full",
                    "writer": self._name,
                    "pending_rows": len(self._pending),
                    "pending_bytes": self._pending_bytes,
                },
            )
            raise StoreBacklogFullError(len(self._pending), self._pending_bytes)
        self._pending[row.key] = row
        self._pending_bytes = bytes_after
        self._queue.append(row.key)
        self._idle.clear()
        self._wake.set()

    @asynccontextmanager
    async def exclusive(self) -> AsyncIterator[None]:
        """Hold off the writer (no write attempt is in flight inside this block)."""
        async with self._lock:
            yield

    def discard(self, key: str) -> bool:
        """Forget the pending row for ``key``; call inside :meth:`exclusive`. True if there was one."""
        row = self._pending.pop(key, None)
        if row is None:
            return False
        self._pending_bytes -= row.size
        return True

    # ---- lifecycle ---------------------------------------------------------------------------------

    def start(self) -> None:
        """Start the writer task (inside a running event loop)."""
        if not self._started and not self._closing:
            self._started = True
            self._spawn()

    async def flush(self, timeout: float | None = None) -> None:
        """Wait until everything queued so far is written (or quarantined). ``TimeoutError`` on timeout."""
        if not self._started:
            raise RuntimeError(f"{self._name} writer is not started")
        async with asyncio.timeout(timeout):
            await self._idle.wait()

    async def close(self, timeout: float = 10.0) -> None:
        """Stop accepting rows, write the backlog (up to ``timeout`` seconds), stop the task."""
        if self._closing:
            return
        self._closing = True
        self._wake.set()
        task, self._task = self._task, None
        if task is not None:
            _done, not_done = await asyncio.wait({task}, timeout=timeout)
            if not_done:
                task.cancel()
                await asyncio.wait({task})
        unwritten = sum(1 for row in self._pending.values() if not row.quarantined)
        if unwritten:
            logger.error(
                "writer closed with unwritten rows; they are lost",
                extra={"event": "storage.unwritten_at_close", "writer": self._name, "rows": unwritten},
            )

    def _spawn(self) -> None:
        # Re-queue every unwritten row: a crashed task may have been holding a batch.
        self._queue = deque(key for key, row in self._pending.items() if not row.quarantined)
        if self._queue:
            self._idle.clear()
        self._task = asyncio.get_running_loop().create_task(self._run(), name=f"{self._name}-writer")
        self._task.add_done_callback(self._on_task_done)

    def _on_task_done(self, task: asyncio.Task[None]) -> None:
        if task.cancelled():
            return
        exc = task.exception()  # always retrieved, so asyncio never reports it as unhandled
        if exc is None or self._closing or task is not self._task:
            return
        logger.error(
            "writer task crashed; restarting",
            exc_info=exc,
            extra={"event": "storage.writer_crashed", "writer": self._name, "restart_in_s": self._retry_max_s},
        )
        self._task = None
        asyncio.get_running_loop().call_later(self._retry_max_s, self._restart)

    def _restart(self) -> None:
        if self._task is None and not self._closing:
            self._spawn()

    # ---- writer task -------------------------------------------------------------------------------

    async def _run(self) -> None:
        while True:
            if not self._queue:
                self._idle.set()
                if self._closing:
                    return
                self._wake.clear()
                await self._wake.wait()
                continue
            batch = self._take_batch()
            if batch:
                await self._write_with_retry(batch)

    def _take_batch(self) -> list[PendingRow]:
        batch: list[PendingRow] = []
        seen: set[str] = set()
        while self._queue and len(batch) < self._batch_size:
            key = self._queue.popleft()
            row = self._pending.get(key)
            if key in seen or row is None or row.quarantined:
                continue
            seen.add(key)
            batch.append(row)
        return batch

    def _current(self, batch: list[PendingRow]) -> list[PendingRow]:
        """The batch's rows still waiting, in their newest version (deleted or quarantined ones dropped)."""
        rows: list[PendingRow] = []
        for old in batch:
            row = self._pending.get(old.key)
            if row is not None and not row.quarantined:
                rows.append(row)
        return rows

    async def _write_with_retry(self, batch: list[PendingRow]) -> None:
        attempt = 0
        one_by_one = False
        while rows := self._current(batch):
            try:
                if one_by_one:
                    await self._write_one_by_one(rows)
                else:
                    await self._attempt(rows)
            except _WRITE_ERRORS as exc:
                if not one_by_one and is_row_error(exc):
                    one_by_one = True
                    continue
                attempt += 1
                delay = self._backoff(attempt)
                logger.warning(
                    "database write failed; will retry",
                    extra={
                        "event": "storage.write_retry",
                        "writer": self._name,
                        "attempt": attempt,
                        "rows": len(rows),
                        "pending_rows": len(self._pending),
                        "retry_in_s": round(delay, 3),
                        "error": describe(exc),
                    },
                )
                await asyncio.sleep(delay)
                continue
            if attempt:
                logger.info(
                    "database writes recovered",
                    extra={"event": "storage.write_recovered", "writer": self._name, "attempts": attempt + 1},
                )
            return

    async def _write_one_by_one(self, rows: list[PendingRow]) -> None:
        for row in rows:
            if self._pending.get(row.key) is not row:
                continue  # deleted or replaced meanwhile (a replacement is queued on its own)
            try:
                await self._attempt([row])
            except _WRITE_ERRORS as exc:
                if not is_row_error(exc):
                    raise
                row.quarantined = True
                logger.error(
                    "database rejected a row; kept in memory only",
                    extra={
                        "event": "storage.row_quarantined",
                        "writer": self._name,
                        "key": row.key,
                        "error": describe(exc),
                    },
                )

    async def _attempt(self, rows: list[PendingRow]) -> None:
        async with self._lock:
            async with asyncio.timeout(self._attempt_timeout_s):
                await self._write_rows(rows)
            for row in rows:
                if self._pending.get(row.key) is row:
                    del self._pending[row.key]
                    self._pending_bytes -= row.size

    def _backoff(self, attempt: int) -> float:
        base = min(self._retry_max_s, self._retry_initial_s * 2.0 ** min(attempt - 1, 30))
        return base * (0.8 + 0.4 * random.random())

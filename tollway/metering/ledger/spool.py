"""The ledger's local spool: a bounded, durable queue of usage rows on disk.

**Layout.** Each group commit is one SQLite row holding all of its usage rows (:mod:`.groups`): one
B-tree insert per group and one delete once every row of it has been shipped, never per-row index work
(the per-row SQLite insert, read-back and delete cost more CPU than the rest of the ledger together).
The shipper reads rows, not groups; rows of a partly shipped group are remembered in memory, and after a
crash the whole group is delivered again — the database skips entry ids it already has, so nothing is
written twice. A file of the earlier one-row-per-row layout is converted when it is claimed.

Every exchange record goes to the spool first; the shipper (:mod:`.shipper`) moves rows on to the
database and deletes them here only after the database committed them. The request path never waits for
either: :meth:`Spool.append` puts the row dict on an in-process queue and returns.

**File and ownership.** SQLite in WAL mode, ``locking_mode=EXCLUSIVE``: the connection that claims a spool
file keeps its write lock until it closes, so exactly one process ever writes a given file (no shared
writer between workers), and the kernel drops the lock when the process dies — even by SIGKILL — so the
file can be claimed again. From the configured path (``ledger_spool_path``, e.g. ``./tollway-spool.db``)
each process claims the lowest free *slot* file, ``tollway-spool.0.db``, ``tollway-spool.1.db``, … — a
worker id that is stable across restarts, so a restarted worker finds and ships what its predecessor
left behind. Slot files left by processes that are gone (fewer workers after a restart, a rolling
restart) are *adopted* by a live process: see :class:`~tollway.metering.ledger.ledger.Ledger`. Each file
records the database its rows are for (dialect and database name, so a host move or a proxy does not
matter); a file still holding rows for another database is never claimed or adopted — its rows stay
on disk, with a warning — so gateways sharing a spool directory never ship usage into the wrong database.

**Group commit.** One dedicated thread owns the SQLite connection. The first row of a group wakes it; it
waits ``linger_s`` for more, takes every row queued by then, writes them in one transaction and commits
once — with ``synchronous=FULL`` that is one fsync of the WAL per group, never one per request, and never
on the event loop. Later rows of the group only go on the queue (a deque): the thread is woken once per
group, not once per row (a wake-up per row cost more CPU than the SQLite insert). Reads and deletes for
the shipper run in the same thread, between groups.

**Bounds (on disk, not in RAM).** At most ``max_rows`` rows and ``max_bytes`` bytes of live pages
(``auto_vacuum=INCREMENTAL`` returns pages freed by shipped rows; the WAL is truncated to
``WAL_LIMIT_BYTES`` after checkpoints). The in-RAM hand-off queue between the event loop and the thread
is bounded by ``max_queue`` rows; it only fills if the disk stops keeping up.

**When full** (the database has been unreachable long enough to fill the spool): rows that do not fit
are *dropped*, counted in :attr:`Spool.dropped` and logged at error level (at most every 10 s); the spool
reports itself full, and ``/health/ready`` answers 503 so orchestrators stop sending traffic to this
worker. Requests already admitted are still served. The spool accepts rows again as soon as the shipper
frees room. A write error of the spool file itself (disk full, I/O error) is retried with backoff while
rows wait in the bounded queue, and is reported the same way.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import re
import sqlite3
import threading
import time
from collections import deque
from collections.abc import Callable
from concurrent.futures import Future
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

from tollway.metering.ledger.direct import DirectWriter
from tollway.metering.ledger.groups import (
    INDEX_MASK,
    MAX_GROUP_ROWS,
    SpooledRow,
    as_bytes,
    decode_group,
    encode_line,
    format_line,
    join_lines,
    line_created_at,
    new_entry_id,
    split_seq,
)

__all__ = ["Spool", "SpoolBusyError", "SpoolError", "SpoolForeignError", "SpooledRow", "new_entry_id"]

log = logging.getLogger("tollway.ledger")

T = TypeVar("T")

SLOT_LIMIT = 256  # worker slots per configured path
WAL_LIMIT_BYTES = 4 * 1024 * 1024
WAL_CHECKPOINT_PAGES = 256  # checkpoint the WAL into the file every ~1 MB
_LOG_EVERY_S = 10.0
_VACUUM_MIN_FREE_PAGES = 256
_BUSY = frozenset({sqlite3.SQLITE_BUSY, sqlite3.SQLITE_LOCKED})
_CALL_ERRORS = (sqlite3.Error, TypeError, ValueError, ArithmeticError)

_SCHEMA = (
    "CREATE TABLE IF NOT EXISTS spool_groups ("
    " seq INTEGER PRIMARY KEY AUTOINCREMENT,"
    " created_at REAL NOT NULL,"  # of the group's first row
    " rows INTEGER NOT NULL,"
    " payload BLOB NOT NULL,"
    " quarantined INTEGER NOT NULL DEFAULT 0)"
)
_META = "CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL)"
_INSERT = "INSERT INTO spool_groups (created_at, rows, payload, quarantined) VALUES (?, ?, ?, ?)"
_OLDEST = "SELECT created_at FROM spool_groups WHERE quarantined = 0 ORDER BY seq LIMIT 1"
_LEGACY = "spool"  # the one-row-per-row table of earlier versions
_READ_GROUPS = 8  # groups fetched per SELECT while filling a read


class SpoolError(Exception):
    """The spool cannot be opened (unwritable directory, every slot taken, ...)."""


class SpoolBusyError(SpoolError):
    """Another live process holds this spool file."""


class SpoolForeignError(SpoolError):
    """The spool file holds rows for another database; they are left alone (never shipped elsewhere)."""


@dataclass(slots=True)
class _Call:
    fn: Callable[[sqlite3.Connection], Any]
    future: Future[Any]


_STOP = object()


def slot_path(base: Path, slot: int) -> Path:
    """``tollway-spool.db`` -> ``tollway-spool.<slot>.db``."""
    return base.with_name(f"{base.stem}.{slot}{base.suffix}")


def slot_paths(base: Path) -> list[Path]:
    """Existing slot files of ``base``, by slot number."""
    pattern = re.compile(re.escape(base.stem) + r"\.(\d+)" + re.escape(base.suffix) + "$")
    found: list[tuple[int, Path]] = []
    try:
        entries = list(base.parent.iterdir())
    except OSError:
        return []
    for entry in entries:
        m = pattern.match(entry.name)
        if m is not None:
            found.append((int(m.group(1)), entry))
    return [p for _, p in sorted(found)]


def _is_busy(exc: sqlite3.Error) -> bool:
    return getattr(exc, "sqlite_errorcode", None) in _BUSY


def _claim(path: Path) -> sqlite3.Connection:
    """Open ``path`` and take its write lock for good; :class:`SpoolBusyError` if another connection has it."""
    try:
        conn = sqlite3.connect(str(path), timeout=0, isolation_level=None, check_same_thread=False)
    except sqlite3.Error as exc:
        raise SpoolError(f"cannot open the ledger spool {path}: {exc}") from exc
    try:
        conn.execute("PRAGMA locking_mode=EXCLUSIVE")
        conn.execute("PRAGMA auto_vacuum=INCREMENTAL")  # takes effect when the file is new
        conn.execute("PRAGMA journal_mode=WAL")
        conn.execute("PRAGMA synchronous=FULL")
        conn.execute(f"PRAGMA journal_size_limit={WAL_LIMIT_BYTES}")
        conn.execute(f"PRAGMA wal_autocheckpoint={WAL_CHECKPOINT_PAGES}")
        conn.execute("BEGIN IMMEDIATE")  # the write lock, kept until close (exclusive mode)
        conn.execute(_SCHEMA)
        conn.execute(_META)
        conn.execute("COMMIT")
    except sqlite3.Error as exc:
        conn.close()
        if _is_busy(exc):
            raise SpoolBusyError(f"{path} is held by another process") from exc
        raise SpoolError(f"cannot use the ledger spool {path}: {exc}") from exc
    return conn


class Spool:
    """One claimed spool file and the thread that writes it (see the module docstring)."""

    def __init__(
        self,
        base: Path | str,
        *,
        max_rows: int = 1_000_000,
        max_bytes: int = 1024 * 1024 * 1024,
        max_queue: int = 100_000,
        linger_s: float = 0.02,
        max_group: int = 2_000,
        database: str | None = None,
        direct: DirectWriter | None = None,
    ) -> None:
        """``database`` names the database the rows are for (see :class:`SpoolForeignError`); None: any.
        ``direct``: groups go straight into the (embedded SQLite) database, the file only takes the groups
        it could not (:mod:`.direct`)."""
        if max_rows < 1 or max_bytes < 1 or max_queue < 1 or not 1 <= max_group <= MAX_GROUP_ROWS:
            raise ValueError(f"spool bounds must be positive (max_group at most {MAX_GROUP_ROWS})")
        self.base = Path(base)
        self.database = database
        self.path: Path | None = None
        self.max_rows = max_rows
        self.max_bytes = max_bytes
        self._max_queue = max_queue
        self._linger_s = linger_s
        self._max_group = max_group
        self.direct = direct
        self._rows: deque[dict[str, Any]] = deque()  # appended by the event loop, taken by the thread
        self._calls: deque[object] = deque()  # _Call or _STOP
        self._wake = threading.Event()
        self._conn: sqlite3.Connection | None = None
        self._thread: threading.Thread | None = None
        self._closed = False
        self._page_size = 4096
        self._on_commit: Callable[[], None] | None = None
        self._last_drop_log = 0.0
        # Counters and gauges: written by the spool thread (dropped also by append), read anywhere.
        self.rows = 0  # rows in the file (quarantined included)
        self.quarantined = 0
        self.live_bytes = 0
        self.oldest: float | None = None  # created_at of the oldest row waiting to be shipped
        self.appended = 0
        self._dropped_here = 0  # by append (event loop thread)
        self._dropped_there = 0  # by the spool thread
        self.error: str | None = None  # the spool file's own last write error (None: writing fine)
        # Spool-thread state: indexes already shipped (or quarantined) of partly shipped groups, and the
        # last group decoded (a read usually resumes inside it).
        self._done: dict[int, set[int]] = {}
        self._decoded: tuple[int, list[SpooledRow]] | None = None

    # ---- lifecycle (blocking: call via asyncio.to_thread) ------------------------------------------

    def open(self) -> None:
        """Claim the lowest free slot file and start the thread. :class:`SpoolError` if none can be used."""
        try:
            self.base.parent.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise SpoolError(f"cannot create the ledger spool directory {self.base.parent}: {exc}") from exc
        first_error: SpoolError | None = None
        for slot in range(SLOT_LIMIT):
            path = slot_path(self.base, slot)
            try:
                self._start(path, _claim(path))
            except SpoolBusyError:
                continue
            except SpoolForeignError as exc:
                log.warning("ledger spool slot belongs to another database; skipped", extra={
                    "event": "ledger.slot_foreign", "path": str(path), "error": str(exc)})
                continue
            except SpoolError as exc:  # e.g. a damaged file: leave it for an operator, try the next slot
                if not path.exists():  # could not even create it: no other slot will do better
                    raise
                log.error("ledger spool slot unusable", extra={"event": "ledger.slot_unusable", "path": str(path),
                                                               "error": str(exc)})
                first_error = first_error or exc
                continue
            return
        raise first_error or SpoolError(f"every ledger spool slot of {self.base} is held by another process")

    def adopt(self, path: Path) -> None:
        """Claim exactly ``path`` (a slot file left by a process that is gone); :class:`SpoolBusyError`
        while its owner lives."""
        self._start(path, _claim(path))

    def _start(self, path: Path, conn: sqlite3.Connection) -> None:
        try:
            self._page_size = int(conn.execute("PRAGMA page_size").fetchone()[0])
            self._convert_legacy(conn)
            self.rows = int(conn.execute("SELECT COALESCE(SUM(rows), 0) FROM spool_groups").fetchone()[0])
            if self.database is not None:
                owner = conn.execute("SELECT value FROM meta WHERE key = 'database'").fetchone()
                if owner is not None and owner[0] != self.database and self.rows:
                    conn.close()
                    raise SpoolForeignError(f"{path} holds {self.rows} usage rows for database {owner[0]!r}, "
                                            f"not {self.database!r}; they are left in place")
                conn.execute("INSERT OR REPLACE INTO meta (key, value) VALUES ('database', ?)", (self.database,))
            conn.execute("UPDATE spool_groups SET quarantined = 0 WHERE quarantined = 1")  # each process retries
            self._refresh(conn)
        except sqlite3.Error as exc:
            conn.close()
            raise SpoolError(f"cannot read the ledger spool {path}: {exc}") from exc
        self.path = path
        self._conn = conn
        self._thread = threading.Thread(target=self._run, name=f"ledger-spool-{path.name}", daemon=True)
        self._thread.start()

    async def close(self, timeout: float = 10.0) -> None:
        """Commit what is queued, stop the thread, checkpoint and release the file."""
        if self._closed:
            return
        self._closed = True
        thread = self._thread
        if thread is None:
            return
        self._calls.append(_STOP)
        self._wake.set()
        await asyncio.to_thread(thread.join, timeout)
        if thread.is_alive():
            log.error("ledger spool thread did not stop in time", extra={"event": "ledger.spool_stuck",
                                                                         "path": str(self.path)})

    def set_on_commit(self, callback: Callable[[], None] | None) -> None:
        """``callback`` runs in the spool thread after every commit that added rows (keep it tiny)."""
        self._on_commit = callback

    # ---- producer side (event loop) ----------------------------------------------------------------

    def append(self, row: dict[str, Any]) -> None:
        """Queue ``row`` for the next group commit. O(1), never blocks, never raises. Call it from one
        thread (the event loop)."""
        rows = self._rows
        if self._closed or len(rows) >= self._max_queue:
            self._dropped_here += 1
            self._log_drop("closed" if self._closed else "queue_full")
            return
        rows.append(row)
        if not self._wake.is_set():  # the group's first row: wake the thread (it lingers for the rest)
            self._wake.set()

    @property
    def dropped(self) -> int:
        """Rows that never reached the disk (spool full, queue full, closed, or unencodable)."""
        return self._dropped_here + self._dropped_there

    @property
    def full(self) -> bool:
        return self.rows >= self.max_rows or self.live_bytes >= self.max_bytes

    @property
    def healthy(self) -> bool:
        """Can the spool take rows right now?"""
        thread = self._thread
        return self.error is None and not self.full and not self._closed and thread is not None and thread.is_alive()

    @property
    def queued(self) -> int:
        return len(self._rows)

    def disk_bytes(self) -> int:
        """Size of the spool file and its WAL on disk."""
        total = 0
        if self.path is not None:
            for p in (self.path, self.path.with_name(self.path.name + "-wal")):
                with contextlib.suppress(OSError):
                    total += p.stat().st_size
        return total

    # ---- consumer side (the shipper; coroutines run the work in the spool thread) ------------------

    async def read(self, limit: int) -> list[SpooledRow]:
        """The oldest ``limit`` rows waiting to be shipped (quarantined rows excluded)."""

        def fn(conn: sqlite3.Connection) -> list[SpooledRow]:
            out: list[SpooledRow] = []
            after = -1
            while len(out) < limit:
                groups = conn.execute(
                    "SELECT seq, payload FROM spool_groups WHERE quarantined = 0 AND seq > ? ORDER BY seq LIMIT ?",
                    (after, _READ_GROUPS),
                ).fetchall()
                if not groups:
                    break
                for seq, payload in groups:
                    after = int(seq)
                    done = self._done.get(after)
                    for r in self._group_rows(after, payload):
                        if done is None or (r.seq & INDEX_MASK) not in done:
                            out.append(r)
                            if len(out) == limit:
                                return out
            return out

        return await self._call(fn)

    def _group_rows(self, seq: int, payload: bytes | str) -> list[SpooledRow]:
        cached = self._decoded
        if cached is not None and cached[0] == seq:
            return cached[1]
        rows = decode_group(seq, as_bytes(payload))
        self._decoded = (seq, rows)
        return rows

    def _mark_done(self, conn: sqlite3.Connection, seqs: list[int]) -> int:
        """Record rows as gone; delete each group all of whose rows are. Returns rows newly marked."""
        marked = 0
        by_group: dict[int, list[int]] = {}
        for seq in seqs:
            group, index = split_seq(seq)
            by_group.setdefault(group, []).append(index)
        for group, indexes in by_group.items():
            found = conn.execute("SELECT rows FROM spool_groups WHERE seq = ?", (group,)).fetchone()
            if found is None:
                self._done.pop(group, None)
                continue
            done = self._done.setdefault(group, set())
            before = len(done)
            done.update(indexes)
            marked += len(done) - before
            if len(done) >= found[0]:
                conn.execute("DELETE FROM spool_groups WHERE seq = ?", (group,))
                del self._done[group]
                if self._decoded is not None and self._decoded[0] == group:
                    self._decoded = None
        return marked

    async def delete(self, seqs: list[int]) -> None:
        """Forget shipped rows (after the database committed them)."""

        def fn(conn: sqlite3.Connection) -> None:
            conn.execute("BEGIN IMMEDIATE")
            try:
                removed = self._mark_done(conn, seqs)
                conn.execute("COMMIT")
            except sqlite3.Error:
                conn.execute("ROLLBACK")
                self._done.clear()  # what the file still holds is the truth: those rows come again
                raise
            self.rows -= removed
            self._refresh(conn)
            self._maybe_vacuum(conn)

        await self._call(fn)

    async def quarantine(self, seqs: list[int]) -> None:
        """Keep rows the database refuses on disk, out of the shipping order."""

        def fn(conn: sqlite3.Connection) -> None:
            by_group: dict[int, set[int]] = {}
            for seq in seqs:
                group, index = split_seq(seq)
                by_group.setdefault(group, set()).add(index)
            moved: list[bytes] = []
            changes: list[tuple[int, bytes, int]] = []  # group, payload with tombstones, live rows left
            for group, indexes in by_group.items():
                found = conn.execute("SELECT payload, rows FROM spool_groups WHERE seq = ? AND quarantined = 0",
                                     (group,)).fetchone()
                if found is None:
                    continue
                payload, live = found
                lines = as_bytes(payload).split(b"\n")
                taken = 0
                for i in sorted(indexes - self._done.get(group, set())):
                    if i < len(lines) and lines[i]:
                        moved.append(lines[i])
                        lines[i] = b""  # a tombstone keeps the other rows' indexes (and seqs) stable
                        taken += 1
                if taken:
                    changes.append((group, join_lines(lines), int(live) - taken))
            if not moved:
                return
            conn.execute("BEGIN IMMEDIATE")
            try:  # the rows move to a quarantined group of their own, atomically
                conn.execute(_INSERT, (line_created_at(moved[0]), len(moved), join_lines(moved), 1))
                for group, payload, live in changes:
                    if live - len(self._done.get(group, ())) <= 0:
                        conn.execute("DELETE FROM spool_groups WHERE seq = ?", (group,))
                    else:
                        conn.execute("UPDATE spool_groups SET payload = ?, rows = ? WHERE seq = ?",
                                     (payload, live, group))
                conn.execute("COMMIT")
            except sqlite3.Error:
                conn.execute("ROLLBACK")
                self._done.clear()
                raise
            for group, _, live in changes:
                if live - len(self._done.get(group, ())) <= 0:
                    self._done.pop(group, None)
            self._decoded = None
            self.quarantined += len(moved)
            self._refresh(conn)

        await self._call(fn)

    async def flush(self) -> None:
        """Return once every row appended before this call is committed to disk."""
        await self._call(lambda conn: None)

    async def _call(self, fn: Callable[[sqlite3.Connection], T]) -> T:
        if self._closed or self._thread is None or not self._thread.is_alive():
            raise SpoolError("the ledger spool is not running")
        future: Future[T] = Future()
        self._calls.append(_Call(fn, future))
        self._wake.set()
        return await asyncio.wrap_future(future)

    # ---- the spool thread --------------------------------------------------------------------------

    def _run(self) -> None:
        conn = self._conn
        assert conn is not None
        wake, pending, pending_calls = self._wake, self._rows, self._calls
        stop = False
        while not stop:
            wake.wait()
            wake.clear()  # anything queued after this point sets it again: nothing is missed
            if pending and not pending_calls and self._linger_s > 0:
                time.sleep(self._linger_s)  # let the rest of the group arrive (calls do not wait)
            while pending:
                rows = [pending.popleft() for _ in range(min(len(pending), self._max_group))]
                self._write(conn, rows, stop)
            calls: list[_Call] = []
            while pending_calls:
                item = pending_calls.popleft()
                if item is _STOP:
                    stop = True
                elif isinstance(item, _Call):
                    calls.append(item)
            if stop:  # rows queued before the stop marker are committed before the thread ends
                while pending:
                    self._write(conn, [pending.popleft() for _ in range(min(len(pending), self._max_group))], True)
            for call in calls:
                self._run_call(conn, call)
        self._finish(conn)

    @staticmethod
    def _run_call(conn: sqlite3.Connection, call: _Call) -> None:
        if not call.future.set_running_or_notify_cancel():
            return
        try:
            call.future.set_result(call.fn(conn))
        except _CALL_ERRORS as exc:  # handed to the awaiting coroutine; the thread lives on
            call.future.set_exception(exc)

    def _write(self, conn: sqlite3.Connection, rows: list[dict[str, Any]], stopping: bool) -> None:
        entries = [(new_entry_id(), row) for row in rows]  # a group the database refuses keeps its ids
        if self.direct is not None and self.direct.write(entries):
            return
        batch: list[bytes] = []
        for entry_id, row in entries:
            try:
                batch.append(encode_line(row, entry_id))
            except (TypeError, ValueError, KeyError) as exc:  # not a ledger row: a bug upstream, never retried
                log.error("ledger row cannot be encoded; dropped", extra={"event": "ledger.row_unencodable",
                                                                          "error": str(exc)})
                self._dropped_there += 1
        if not batch:
            return
        room = self.max_rows - self.rows if self.live_bytes < self.max_bytes else 0
        if room < len(batch):
            self._dropped_there += len(batch) - max(room, 0)
            self._log_drop("spool_full")
            batch = batch[: max(room, 0)]
            if not batch:
                return
        first_created = line_created_at(batch[0])
        group = (first_created, len(batch), join_lines(batch), 0)
        attempt = 0
        while True:
            try:
                conn.execute("BEGIN IMMEDIATE")
                conn.execute(_INSERT, group)
                conn.execute("COMMIT")
                break
            except sqlite3.Error as exc:
                self._rollback(conn)
                attempt += 1
                self.error = f"{type(exc).__name__}: {exc}"
                if (stopping or self._closed) and attempt >= 3:
                    log.error("ledger spool cannot write at shutdown; rows lost", extra={
                        "event": "ledger.spool_lost", "rows": len(batch), "error": self.error})
                    self._dropped_there += len(batch)
                    return
                log.error("ledger spool write failed; retrying", extra={
                    "event": "ledger.spool_write_failed", "rows": len(batch), "attempt": attempt,
                    "error": self.error})
                time.sleep(min(2.0, 0.05 * 2 ** min(attempt, 6)))
        self.error = None
        if self.oldest is None:
            self.oldest = first_created
        self.rows += len(batch)
        self.appended += len(batch)
        self._refresh_bytes(conn)
        callback = self._on_commit
        if callback is not None:
            with contextlib.suppress(RuntimeError):  # the event loop is gone (shutdown)
                callback()

    @staticmethod
    def _rollback(conn: sqlite3.Connection) -> None:
        with contextlib.suppress(sqlite3.Error):
            if conn.in_transaction:
                conn.execute("ROLLBACK")

    def _log_drop(self, reason: str) -> None:
        now = time.monotonic()
        if now - self._last_drop_log >= _LOG_EVERY_S:
            self._last_drop_log = now
            log.error("ledger spool cannot take rows; usage rows dropped", extra={
                "event": "ledger.rows_dropped", "reason": reason, "dropped_total": self.dropped,
                "spool_rows": self.rows, "spool_bytes": self.live_bytes})

    def _persist_done(self, conn: sqlite3.Connection) -> None:
        """At close: rows shipped from partly shipped groups become tombstones on disk, so the next start
        neither counts nor re-delivers them (after a crash they are re-delivered, and skipped by the
        database)."""
        if not self._done:
            return
        try:
            conn.execute("BEGIN IMMEDIATE")
            for group, done in self._done.items():
                found = conn.execute("SELECT payload, rows FROM spool_groups WHERE seq = ?", (group,)).fetchone()
                if found is None:
                    continue
                lines = as_bytes(found[0]).split(b"\n")
                for i in done:
                    if i < len(lines):
                        lines[i] = b""
                conn.execute("UPDATE spool_groups SET payload = ?, rows = ? WHERE seq = ?",
                             (join_lines(lines), max(int(found[1]) - len(done), 0), group))
            conn.execute("COMMIT")
        except sqlite3.Error as exc:
            self._rollback(conn)
            log.warning("ledger spool could not record shipped rows at close; they will be re-delivered",
                        extra={"event": "ledger.spool_close_partial", "error": str(exc)})
        self._done.clear()

    def _convert_legacy(self, conn: sqlite3.Connection) -> None:
        """Move the rows of an earlier version's one-row-per-row table into groups (one transaction)."""
        exists = conn.execute("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = ?", (_LEGACY,)).fetchone()
        if exists is None:
            return
        conn.execute("BEGIN IMMEDIATE")
        try:
            cur = conn.execute(f"SELECT entry_id, created_at, payload FROM {_LEGACY} ORDER BY seq")
            moved = 0
            while chunk := cur.fetchmany(self._max_group):
                lines = [format_line(str(e), float(c), as_bytes(p)) for e, c, p in chunk]
                conn.execute(_INSERT, (float(chunk[0][1]), len(lines), join_lines(lines), 0))
                moved += len(lines)
            conn.execute(f"DROP TABLE {_LEGACY}")
            conn.execute("COMMIT")
        except sqlite3.Error:
            self._rollback(conn)
            raise
        if moved:
            log.info("ledger spool converted to the grouped layout", extra={
                "event": "ledger.spool_converted", "rows": moved})

    def _refresh(self, conn: sqlite3.Connection) -> None:
        row = conn.execute(_OLDEST).fetchone()
        self.oldest = None if row is None else float(row[0])
        self._refresh_bytes(conn)

    def _refresh_bytes(self, conn: sqlite3.Connection) -> None:
        with contextlib.suppress(sqlite3.Error):  # bookkeeping only: keep the last value
            pages = int(conn.execute("PRAGMA page_count").fetchone()[0])
            free = int(conn.execute("PRAGMA freelist_count").fetchone()[0])
            self.live_bytes = (pages - free) * self._page_size

    def _maybe_vacuum(self, conn: sqlite3.Connection) -> None:
        # Free pages are reused by the next groups; only a large surplus (after a backlog drained) is given
        # back. Vacuuming every time the spool empties (each ship, under steady load) churned the file.
        free = int(conn.execute("PRAGMA freelist_count").fetchone()[0])
        if free >= _VACUUM_MIN_FREE_PAGES and free * self._page_size > self.live_bytes:
            conn.executescript("PRAGMA incremental_vacuum;")  # execute() would free only one page

    def _finish(self, conn: sqlite3.Connection) -> None:
        # Anything still queued after the stop marker arrived too late: count it, never silently.
        while self._calls:
            item = self._calls.popleft()
            if isinstance(item, _Call):
                item.future.set_exception(SpoolError("the ledger spool is closed"))
        while self._rows:
            self._rows.popleft()
            self._dropped_there += 1
        self._persist_done(conn)
        if self.direct is not None:
            self.direct.close()
        try:
            conn.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchall()
        except sqlite3.Error as exc:
            log.warning("ledger spool checkpoint failed", extra={"event": "ledger.spool_checkpoint_failed",
                                                                  "error": str(exc)})
        conn.close()

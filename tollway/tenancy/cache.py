"""The in-process tenancy cache, and how changes reach every worker and replica within a second.

Design:

* Every administrative write (admin API, CLI) increments the single row ``tenancy_revision`` in the
  same transaction as the change (:mod:`tollway.tenancy.revision`).
* Each gateway process (every uvicorn worker, every replica) runs ONE background task that reads that
  row every ``poll_interval_s`` (default 0.25 s: one primary-key read, a few hundred per minute per
  process). When the number differs from the snapshot's, it reloads the whole snapshot in one read
  transaction and swaps it in with a single assignment.
* The request path only reads ``cache.snapshot`` (a dict lookup): no database round trip.
* The process that made a change refreshes at once (:meth:`TenancyCache.refresh` after the commit), so
  the admin API reads its own writes.
* Optionally (``REDIS_URL``), a writer publishes the new revision on the ``tollway:tenancy`` channel and
  every process subscribed wakes its poller immediately; polling stays the guarantee (Redis may be down).

Bound: a committed revocation is visible everywhere after at most ``poll_interval_s`` + one reload (a
few milliseconds for thousands of keys), i.e. < 1 s with the default, typically ~125 ms on average and a
few ms with Redis. Expiry needs no propagation: it is compared with the clock on every request.

While the database is unreachable the last snapshot keeps serving (a revocation needs a committed write,
so none can be missed by every process at once; a process cut off from a database others still reach
would be stale — it logs ``tenancy.poll_failed`` until it recovers).

The same task flushes keys' ``last_used_at`` (recorded in memory by :meth:`touch`) every
``last_used_flush_s`` — a write that does not bump the revision.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any, cast

from sqlalchemy import Table, bindparam, update
from sqlalchemy.ext.asyncio import AsyncEngine

from tollway.storage.engine import DB_ERRORS
from tollway.storage.writer import describe
from tollway.tenancy.models import ApiKey
from tollway.tenancy.revision import read_revision
from tollway.tenancy.snapshot import EMPTY, Snapshot, load_snapshot

log = logging.getLogger("tollway.tenancy")

CHANNEL = "tollway:tenancy"
_KEYS = cast(Table, ApiKey.__table__)
_TOUCH = update(_KEYS).where(_KEYS.c.id == bindparam("key_id")).values(last_used_at=bindparam("used"))

Listener = Callable[[Snapshot], None]


class TenancyCache:
    def __init__(
        self,
        engine: AsyncEngine,
        *,
        poll_interval_s: float = 0.25,
        redis_url: str | None = None,
        last_used_flush_s: float = 10.0,
        timeout_s: float = 5.0,
    ) -> None:
        self.engine = engine
        self.snapshot: Snapshot = EMPTY
        self.poll_interval_s = poll_interval_s
        self.redis_url = redis_url
        self.last_used_flush_s = last_used_flush_s
        self.timeout_s = timeout_s
        self.last_poll_ok = 0.0  # monotonic time of the last successful poll
        self.reloads = 0
        self._listeners: list[Listener] = []
        self._touched: dict[str, float] = {}
        self._lock = asyncio.Lock()
        self._wake = asyncio.Event()
        self._tasks: list[asyncio.Task[None]] = []
        self._redis: Any = None
        self._failing = False
        self._stopped = False

    def subscribe(self, listener: Listener) -> None:
        """``listener(snapshot)`` runs after every reload (and at once if a snapshot is loaded)."""
        self._listeners.append(listener)
        if self.snapshot.loaded:
            listener(self.snapshot)

    # ---- lifecycle ---------------------------------------------------------------------------------

    async def start(self) -> None:
        """Load the first snapshot (a failure is logged; the poller keeps trying) and start the tasks."""
        try:
            await self.refresh()
        except DB_ERRORS as exc:
            log.error("tenancy: cannot load keys from the database; retrying in the background",
                      extra={"event": "tenancy.load_failed", "error": describe(exc)})
        self._spawn_poller()
        if self.redis_url:
            self._tasks.append(asyncio.get_running_loop().create_task(self._redis_loop(), name="tenancy-redis"))

    def _spawn_poller(self) -> None:
        if self._stopped:
            return
        task = asyncio.get_running_loop().create_task(self._poll_loop(), name="tenancy-poller")
        task.add_done_callback(self._on_poller_done)
        self._tasks.append(task)

    def _on_poller_done(self, task: asyncio.Task[None]) -> None:
        """The poller is what makes revocations reach this process: if a bug kills it, log and restart."""
        if task.cancelled() or task not in self._tasks:
            return
        self._tasks.remove(task)
        log.error("tenancy poller crashed; restarting", exc_info=task.exception(),
                  extra={"event": "tenancy.poller_crashed"})
        asyncio.get_running_loop().call_later(self.poll_interval_s, self._spawn_poller)

    async def stop(self) -> None:
        self._stopped = True
        tasks, self._tasks = self._tasks, []
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        with contextlib.suppress(*DB_ERRORS):
            await self._flush_last_used()
        if self._redis is not None:
            await self._redis.aclose()
            self._redis = None

    # ---- request path ------------------------------------------------------------------------------

    def touch(self, key_id: str) -> None:
        self._touched[key_id] = time.time()

    # ---- refresh -----------------------------------------------------------------------------------

    async def refresh(self) -> bool:
        """Reload if the revision moved; True when a new snapshot was installed."""
        async with self._lock, asyncio.timeout(self.timeout_s):
            async with self.engine.connect() as connection:
                revision = await read_revision(connection)
                if revision == self.snapshot.revision:
                    self.last_poll_ok = time.monotonic()
                    return False
                snapshot = await load_snapshot(connection)
            self.snapshot = snapshot
            self.last_poll_ok = time.monotonic()
            self.reloads += 1
            for listener in self._listeners:  # under the lock: listeners see snapshots in order
                listener(snapshot)
        log.info("tenancy snapshot loaded", extra={"event": "tenancy.reloaded", "revision": snapshot.revision,
                                                   "keys": len(snapshot.keys)})
        return True

    async def notify(self, revision: int) -> None:
        """After a committed write: refresh here now, and wake the other processes through Redis."""
        try:
            await self.refresh()
        except DB_ERRORS as exc:
            log.warning("tenancy refresh after a write failed", extra={"event": "tenancy.refresh_failed",
                                                                       "error": describe(exc)})
        if self._redis is not None:
            from redis.exceptions import RedisError  # loaded already: the subscription imported redis

            try:
                async with asyncio.timeout(1.0):
                    await self._redis.publish(CHANNEL, str(revision))
            except (OSError, TimeoutError, RedisError) as exc:
                log.warning("tenancy: redis publish failed (polling still applies)",
                            extra={"event": "tenancy.redis_failed", "error": repr(exc)})

    async def _poll_loop(self) -> None:
        next_flush = time.monotonic() + self.last_used_flush_s
        while True:
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(self.poll_interval_s):
                    await self._wake.wait()
            self._wake.clear()
            try:
                await self.refresh()
                if time.monotonic() >= next_flush:
                    next_flush = time.monotonic() + self.last_used_flush_s
                    await self._flush_last_used()
            except DB_ERRORS as exc:
                if not self._failing:
                    log.warning("tenancy: polling the database failed; serving the last snapshot",
                                extra={"event": "tenancy.poll_failed", "error": describe(exc),
                                       "revision": self.snapshot.revision})
                self._failing = True
                continue
            if self._failing:
                log.info("tenancy: polling recovered", extra={"event": "tenancy.poll_recovered"})
                self._failing = False

    async def _flush_last_used(self) -> None:
        if not self._touched:
            return
        touched, self._touched = self._touched, {}
        params = [{"key_id": k, "used": datetime.fromtimestamp(t, UTC)} for k, t in touched.items()]
        try:
            async with asyncio.timeout(self.timeout_s), self.engine.begin() as connection:
                await connection.execute(_TOUCH, params)
        except DB_ERRORS:
            for key_id, used in touched.items():  # keep them for the next flush
                self._touched.setdefault(key_id, used)
            raise

    # ---- redis -------------------------------------------------------------------------------------

    async def _redis_loop(self) -> None:
        from redis.asyncio import Redis  # only with REDIS_URL: redis-py costs ~13 MB of RSS
        from redis.exceptions import RedisError

        delay = 0.5
        while True:
            client = Redis.from_url(cast(str, self.redis_url))
            self._redis = client
            pubsub = client.pubsub()
            try:
                await pubsub.subscribe(CHANNEL)
                delay = 0.5
                async for message in pubsub.listen():
                    if message.get("type") == "message":
                        self._wake.set()
            except (OSError, TimeoutError, RedisError) as exc:
                log.warning("tenancy: redis subscription lost; polling only until it returns",
                            extra={"event": "tenancy.redis_failed", "error": repr(exc)})
            finally:
                with contextlib.suppress(OSError, RedisError):
                    await pubsub.aclose()  # type: ignore[no-untyped-call]
            self._redis = None
            with contextlib.suppress(OSError, RedisError):
                await client.aclose()
            await asyncio.sleep(delay)
            delay = min(delay * 2, 10.0)

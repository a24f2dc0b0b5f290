"""The in-process :class:`~tollway.limits.rules.RuleBook` and the task that keeps it current.

One background task per process reads ``limits_revision`` every ``poll_s`` (one primary-key read) and
reloads every rule when it moved; the request path only reads :attr:`RuleCache.book`. The process that
made a change refreshes at once (:meth:`RuleCache.refresh`), so the admin API reads its own writes; the
others follow within ``poll_s``. While the database is unreachable the last rules stay in force; before
the first load succeeds :attr:`RuleBook.loaded` is False and the guard applies the failure policy.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging

from tollway.limits.rules import RuleBook
from tollway.limits.store import RuleStore
from tollway.storage.engine import DB_ERRORS
from tollway.storage.writer import describe

log = logging.getLogger("tollway.limits")


class RuleCache:
    def __init__(self, store: RuleStore, poll_s: float = 0.5) -> None:
        self.store = store
        self.poll_s = poll_s
        self.book = RuleBook()
        self._lock = asyncio.Lock()
        self._task: asyncio.Task[None] | None = None
        self._failing = False

    async def start(self) -> None:
        try:
            await self.refresh()
        except DB_ERRORS as exc:
            log.error("limits: cannot load budget and rate-limit rules; retrying in the background",
                      extra={"event": "limits.rules_load_failed", "error": describe(exc)})
        self._task = asyncio.get_running_loop().create_task(self._poll(), name="limits-rules")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None

    async def refresh(self, force: bool = False) -> bool:
        """Reload if the revision moved (or ``force``); True when new rules were installed."""
        async with self._lock:
            if not force and self.book.loaded and await self.store.revision() == self.book.revision:
                return False
            book = await self.store.load()
            self.book = book
        log.info("limits rules loaded", extra={"event": "limits.rules_loaded", "revision": book.revision,
                                               "budgets": sum(len(v) for v in book.budgets.values()),
                                               "rate_limits": sum(len(v) for v in book.rates.values())})
        return True

    async def _poll(self) -> None:
        while True:
            await asyncio.sleep(self.poll_s)
            try:
                await self.refresh()
            except DB_ERRORS as exc:
                if not self._failing:
                    log.warning("limits: polling the rules failed; the last rules stay in force",
                                extra={"event": "limits.rules_poll_failed", "error": describe(exc)})
                self._failing = True
                continue
            if self._failing:
                log.info("limits: rule polling recovered", extra={"event": "limits.rules_poll_recovered"})
                self._failing = False

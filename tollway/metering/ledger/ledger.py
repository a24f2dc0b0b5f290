"""The usage ledger of one gateway process: spool + recorder + shipper + adoption of orphaned spools.

:meth:`Ledger.start` claims this process's spool slot (see :mod:`.spool`), builds a small database engine
of its own and starts the shipper. It does not need the database: when it is unreachable the gateway
starts all the same, rows wait in the spool and the shipper keeps retrying (logged, and visible in
``/health/ready``). A spool that cannot be opened at all stops start-up with a clear message.

With a local SQLite database file (the embedded default) and ``direct`` on, the spool thread writes each
group of rows straight into the database (:mod:`.direct`); the spool file and the shipper only carry the
groups it could not write.

Orphans: slot files whose process is gone (the worker count went down, a rolling restart) are claimed by a
live process — at start-up and then every ``adopt_interval_s`` — shipped until empty, and released.

:meth:`Ledger.stop` is bounded: rows are committed to the spool at once, the shipper gets ``timeout``
seconds to write what it can (no time at all while the database is failing), and whatever is left stays
in the spool file for the next start.
"""

from __future__ import annotations

import asyncio
import logging
import time
from pathlib import Path
from typing import Any

from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import AsyncEngine

from tollway.metering.ledger.direct import DirectWriter
from tollway.metering.ledger.recorder import LedgerRecorder
from tollway.metering.ledger.shipper import Shipper
from tollway.metering.ledger.spool import Spool, SpoolBusyError, SpoolError, slot_paths
from tollway.metering.ledger.stats import LedgerStats
from tollway.settings import Settings
from tollway.storage.engine import DB_ERRORS, create_engine
from tollway.storage.urls import normalise_database_url, sqlite_database_path

log = logging.getLogger("tollway.ledger")

_ADOPT_ERRORS: tuple[type[BaseException], ...] = (SpoolError, *DB_ERRORS)
DEFAULT_SPOOL_NAME = "tollway-spool.db"


def database_identity(database_url: str) -> str:
    """What a spool file's rows belong to: the SQLite file, or the dialect and database name (host, port
    and credentials may change without stranding the rows)."""
    url = make_url(normalise_database_url(database_url))
    backend = url.get_backend_name()
    if backend == "sqlite":
        path = sqlite_database_path(url.render_as_string(hide_password=False))
        return f"sqlite:{Path(path).expanduser().resolve() if path else ':memory:'}"
    return f"{backend}:{url.database or ''}"


def spool_path(settings: Settings) -> Path:
    """``ledger_spool_path``, else ``tollway-spool.db`` beside the SQLite database file, else in the
    working directory."""
    if settings.ledger_spool_path:
        return Path(settings.ledger_spool_path).expanduser()
    try:
        database = sqlite_database_path(normalise_database_url(settings.database_url))
    except ValueError:  # an invalid URL is reported by the engine
        database = None
    if database is not None:
        return Path(database).expanduser().parent / DEFAULT_SPOOL_NAME
    return Path(DEFAULT_SPOOL_NAME)


class Ledger:
    def __init__(
        self,
        spool: Spool,
        engine: AsyncEngine,
        shipper: Shipper,
        *,
        adopt_interval_s: float = 60.0,
        shipper_options: dict[str, Any] | None = None,
    ) -> None:
        self.spool = spool
        self.engine = engine
        self.shipper = shipper
        self.recorder = LedgerRecorder(spool)
        self.adopted = 0
        self._adopt_interval_s = adopt_interval_s
        self._shipper_options = shipper_options or {}
        self._reported: set[Path] = set()  # unusable orphan files already logged
        self._adopter: asyncio.Task[None] | None = None

    @classmethod
    async def start(cls, settings: Settings) -> Ledger:
        return await cls.open(
            spool_path(settings),
            settings.database_url,
            max_rows=settings.ledger_spool_max_rows,
            max_bytes=settings.ledger_spool_max_bytes,
            direct=settings.ledger_direct,
        )

    @classmethod
    async def open(
        cls,
        spool_path: str | Path,
        database_url: str,
        *,
        max_rows: int = 1_000_000,
        max_bytes: int = 1024 * 1024 * 1024,
        adopt_interval_s: float = 60.0,
        direct: bool = False,
        **shipper_options: Any,
    ) -> Ledger:
        """Open the spool, start the shipper (and the orphan adopter). ``RuntimeError`` if the spool
        cannot be used. ``direct``: write straight into the database when it is a local SQLite file."""
        database_file = sqlite_database_path(normalise_database_url(database_url)) if direct else None
        spool = Spool(spool_path, max_rows=max_rows, max_bytes=max_bytes, database=database_identity(database_url),
                      direct=DirectWriter(database_file) if database_file is not None else None)
        try:
            await asyncio.to_thread(spool.open)
        except SpoolError as exc:
            raise RuntimeError(f"usage ledger: {exc}") from exc
        engine = create_engine(database_url, pool_size=2, max_overflow=2)
        shipper = Shipper(spool, engine, **shipper_options)
        ledger = cls(spool, engine, shipper, adopt_interval_s=adopt_interval_s, shipper_options=shipper_options)
        shipper.start()
        ledger._adopter = asyncio.get_running_loop().create_task(ledger._adopt_loop(), name="ledger-adopter")
        log.info("usage ledger started", extra={"event": "ledger.started", "spool": str(spool.path),
                                                "spool_rows": spool.rows})
        return ledger

    def stats(self) -> LedgerStats:
        spool, shipper = self.spool, self.shipper
        oldest = spool.oldest
        direct_rows = spool.direct.written if spool.direct is not None else 0
        return LedgerStats(
            spool_path=str(spool.path),
            spool_rows=spool.rows,
            spool_bytes=spool.disk_bytes(),
            spool_max_rows=spool.max_rows,
            spool_max_bytes=spool.max_bytes,
            queued=spool.queued,
            lag_s=max(0.0, time.time() - oldest) if oldest is not None else 0.0,
            shipped=shipper.shipped + direct_rows,
            direct=direct_rows,
            duplicates=shipper.duplicates,
            adopted=self.adopted,
            dropped=spool.dropped,
            quarantined=spool.quarantined,
            spool_ok=spool.healthy,
            spool_full=spool.full,
            spool_error=spool.error,
            database_ok=not shipper.failing,
            last_error=shipper.last_error,
            last_error_at=shipper.last_error_at,
        )

    async def flush(self) -> None:
        """Return once every row recorded so far is on disk in the spool."""
        await self.spool.flush()

    async def stop(self, timeout: float = 5.0) -> None:
        if self._adopter is not None:
            self._adopter.cancel()
            await asyncio.wait({self._adopter})
            self._adopter = None
        try:
            async with asyncio.timeout(timeout):
                await self.spool.flush()
        except (TimeoutError, SpoolError) as exc:
            log.error("ledger spool flush at shutdown failed", extra={"event": "ledger.flush_failed",
                                                                      "error": repr(exc)})
        await self.shipper.stop(timeout)
        await self.spool.close(timeout)
        await self.engine.dispose()
        log.info("usage ledger stopped", extra={"event": "ledger.stopped", "spool": str(self.spool.path),
                                                "unshipped_rows": self.spool.rows, "shipped": self.stats().shipped})

    # ---- orphaned spool files ----------------------------------------------------------------------

    async def _adopt_loop(self) -> None:
        while True:
            try:
                await self.adopt_orphans()
            except _ADOPT_ERRORS as exc:
                log.warning("ledger orphan adoption failed", extra={"event": "ledger.adopt_failed",
                                                                    "error": repr(exc)})
            await asyncio.sleep(self._adopt_interval_s)

    async def adopt_orphans(self) -> int:
        """Ship the rows of every slot file no live process holds; returns the rows shipped."""
        total = 0
        for path in slot_paths(self.spool.base):
            if path == self.spool.path:
                continue
            own = self.spool
            orphan = Spool(path, max_rows=own.max_rows, max_bytes=own.max_bytes, database=own.database)
            try:
                await asyncio.to_thread(orphan.adopt, path)
            except SpoolBusyError:
                continue
            except SpoolError as exc:  # another database's rows, or a damaged file: say so once
                if path not in self._reported:
                    self._reported.add(path)
                    log.warning("ledger orphan spool not adopted", extra={"event": "ledger.orphan_skipped",
                                                                          "path": str(path), "error": str(exc)})
                continue
            try:
                if orphan.rows:
                    shipper = Shipper(orphan, self.engine, **self._shipper_options)
                    await shipper.ship_available()
                    shipped = shipper.shipped + shipper.duplicates
                    total += shipped
                    log.info("ledger shipped an orphaned spool", extra={
                        "event": "ledger.orphan_shipped", "path": str(path), "rows": shipped,
                        "left": orphan.rows})
            finally:
                await orphan.close()
        self.adopted += total
        return total

"""End users created on first sight, without a database write on the request path.

An end user's id is a function of ``(org id, external id)`` (:func:`tollway.tenancy.models.end_user_id`),
so any process can name a user it has never seen without asking anyone. The first time a process sees a
pair it computes the id, remembers it in a bounded in-process map, and queues an idempotent insert
(``ON CONFLICT DO NOTHING``) on a background :class:`~tollway.storage.writer.BatchWriter`; two processes
seeing the same new user at once insert the same row once. The map is only a cache: when it is full it is
cleared, and a user seen again is re-queued (a no-op insert).
"""

from __future__ import annotations

import logging
from typing import Any, cast

from sqlalchemy import Table
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.ext.asyncio import AsyncEngine

from tollway.storage.errors import StoreBacklogFullError
from tollway.storage.writer import BatchWriter, PendingRow
from tollway.tenancy.models import EndUser, end_user_id, utcnow

log = logging.getLogger("tollway.tenancy")

_T = cast(Table, EndUser.__table__)
_ROW_BYTES = 512


class EndUserRegistry:
    def __init__(self, engine: AsyncEngine, *, max_cached: int = 100_000, **writer_options: Any) -> None:
        self._engine = engine
        self._max_cached = max_cached
        self._known: dict[tuple[str, str], str] = {}
        insert = pg_insert(_T) if engine.dialect.name == "postgresql" else sqlite_insert(_T)
        self._insert = insert.on_conflict_do_nothing()
        writer_options.setdefault("max_rows", 50_000)
        self._writer = BatchWriter(self._write_rows, name="end_users", **writer_options)

    def start(self) -> None:
        self._writer.start()

    async def close(self, timeout: float = 5.0) -> None:
        await self._writer.close(timeout)

    async def flush(self, timeout: float | None = None) -> None:
        await self._writer.flush(timeout)

    @property
    def pending_rows(self) -> int:
        return self._writer.pending_rows

    def resolve(self, org_id: str, external_id: str) -> str:
        """The end user's id; queues its creation the first time this process sees it."""
        pair = (org_id, external_id)
        known = self._known.get(pair)
        if known is not None:
            return known
        eid = end_user_id(org_id, external_id)
        values: dict[str, Any] = {"id": eid, "org_id": org_id, "external_id": external_id, "name": None, "email": None,
                  "blocked": False, "metadata": {}, "created_at": utcnow()}
        try:
            self._writer.submit(PendingRow(eid, values, _ROW_BYTES + len(external_id)))
        except StoreBacklogFullError:
            log.warning("end user not recorded yet: write backlog full", extra={"event": "tenancy.end_user_backlog",
                                                                              "end_user_id": eid})
            return eid
        except RuntimeError:  # closing
            return eid
        if len(self._known) >= self._max_cached:
            self._known.clear()
        self._known[pair] = eid
        return eid

    async def _write_rows(self, rows: list[PendingRow]) -> None:
        async with self._engine.begin() as connection:
            await connection.execute(self._insert, [row.values for row in rows])

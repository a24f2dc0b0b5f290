"""Stored responses: ``previous_response_id`` continuations and ``GET/DELETE /v1/responses/{id}``,
``GET /v1/responses/{id}/input_items``.

Writes (:meth:`ResponseStore.save`) never wait for the database: the row is encoded, put in the pending
map of a :class:`~tollway.storage.writer.BatchWriter` and written in the background (see that module for
batching, retries, the backlog bound and shutdown). Every read looks at the pending map first, so a
response is readable the moment ``save`` returns.

Each row holds only the input items of *its own* turn; :meth:`ResponseStore.conversation_items` rebuilds
a continuation's context by walking ``previous_response_id`` to the root (one recursive query for the
persisted part of the chain). A chain with a deleted or unknown link cannot be rebuilt: ``None``.

Deletion removes the row (no soft delete): a deleted response's content is gone, and continuing from a
response whose chain passes through it fails as ``previous_response_not_found``.

JSON read back (pending or persisted) is always a fresh decode of what was stored: callers may mutate
it. ``Decimal`` values come back as strings (see :mod:`tollway.storage.jsoncodec`).

Read and delete failures raise :class:`~tollway.storage.errors.StorageUnavailableError` (a 503).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any, cast

from sqlalchemy import Integer, Table, bindparam, delete, literal, select, text
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine
from sqlalchemy.sql.elements import TextClause

from tollway.core.types import JSON, Item
from tollway.storage import jsoncodec
from tollway.storage.engine import DB_ERRORS, create_engine
from tollway.storage.errors import StorageUnavailableError
from tollway.storage.models import StoredResponseRow
from tollway.storage.urls import normalise_database_url
from tollway.storage.writer import BatchWriter, PendingRow, describe

logger = logging.getLogger("tollway.storage")

_T = cast(Table, StoredResponseRow.__table__)
_ROW_OVERHEAD_BYTES = 256

_SELECT_ONE = select(_T).where(_T.c.id == bindparam("id"))
_SELECT_INPUT = select(_T.c.input_items).where(_T.c.id == bindparam("id"))
_DELETE_ONE = delete(_T).where(_T.c.id == bindparam("id"))
# The write: one upsert, the same text on SQLite and PostgreSQL. Spelled as text() with typed parameters
# (the JSON columns still go through their bind processors) because the dialects' insert().on_conflict_*
# constructs have no cache key: SQLAlchemy compiled them again for every batch (~0.2 ms; at one request at
# a time that was the biggest single cost of a stored response).
_COLUMNS = [column.name for column in _T.columns]
_UPSERT = text(
    f"INSERT INTO {_T.name} ({', '.join(_COLUMNS)}) VALUES ({', '.join(':' + c for c in _COLUMNS)}) "
    f"ON CONFLICT (id) DO UPDATE SET {', '.join(f'{c} = excluded.{c}' for c in _COLUMNS if c != 'id')}"
).bindparams(*(bindparam(column.name, type_=column.type) for column in _T.columns))
_PING = text("SELECT 1")


def _chain_statement() -> Any:
    """Rows of the chain ending at ``:start``, newest first, at most ``:max_depth + 1`` of them."""
    chain = (
        select(_T.c.id, _T.c.previous_response_id, literal(0, Integer).label("depth"))
        .where(_T.c.id == bindparam("start"))
        .cte("chain", recursive=True)
    )
    step = (
        select(_T.c.id, _T.c.previous_response_id, (chain.c.depth + 1).label("depth"))
        .join(chain, _T.c.id == chain.c.previous_response_id)
        .where(chain.c.depth < bindparam("max_depth"))
    )
    chain = chain.union_all(step)
    return (
        select(_T.c.id, _T.c.previous_response_id, _T.c.input_items, _T.c.output_items)
        .join(chain, _T.c.id == chain.c.id)
        .order_by(chain.c.depth)
    )


_SELECT_CHAIN = _chain_statement()


@dataclass(slots=True)
class StoredResponse:
    id: str
    created_at: int
    model: str
    status: str
    previous_response_id: str | None
    input_items: list[Item]
    output_items: list[Item]
    resource: JSON


class ResponseStore:
    """The stored-responses table behind a non-blocking write path. Use inside one event loop:
    ``await start()`` before use, ``await close()`` at shutdown."""

    def __init__(
        self,
        database_url: str,
        *,
        batch_size: int = 256,
        max_pending_rows: int = 10_000,
        max_pending_bytes: int = 256 * 1024 * 1024,
        retry_initial_s: float = 0.1,
        retry_max_s: float = 10.0,
        write_timeout_s: float = 30.0,
        read_timeout_s: float = 10.0,
        ping_timeout_s: float = 2.0,
        connect_timeout_s: float = 5.0,
        sqlite_busy_timeout_s: float = 5.0,
        max_chain_depth: int = 10_000,
    ) -> None:
        self._url = normalise_database_url(database_url)
        self._read_timeout_s = read_timeout_s
        self._ping_timeout_s = ping_timeout_s
        self._connect_timeout_s = min(connect_timeout_s, write_timeout_s)
        self._sqlite_busy_timeout_s = sqlite_busy_timeout_s
        self._max_chain_depth = max_chain_depth
        self._engine: AsyncEngine | None = None
        self._upsert: TextClause | None = None
        self._writer = BatchWriter(
            self._write_rows,
            name="responses",
            batch_size=batch_size,
            max_rows=max_pending_rows,
            max_bytes=max_pending_bytes,
            retry_initial_s=retry_initial_s,
            retry_max_s=retry_max_s,
            attempt_timeout_s=write_timeout_s,
        )

    # ---- lifecycle ---------------------------------------------------------------------------------

    async def start(self) -> None:
        """Build the engine and start the writer. Does not need the database to be reachable."""
        if self._engine is not None:
            return
        engine = create_engine(
            self._url,
            connect_timeout_s=self._connect_timeout_s,
            sqlite_busy_timeout_s=self._sqlite_busy_timeout_s,
        )
        self._upsert = _UPSERT
        self._engine = engine
        self._writer.start()

    async def close(self, timeout: float = 10.0) -> None:
        """Write the backlog (up to ``timeout`` seconds), stop the writer, release connections."""
        await self._writer.close(timeout)
        if self._engine is not None:
            await self._engine.dispose()

    async def flush(self, timeout: float | None = None) -> None:
        """Wait until every response saved so far is written (``TimeoutError`` after ``timeout``)."""
        await self._writer.flush(timeout)

    async def ping(self) -> bool:
        """Readiness: can the database answer ``SELECT 1`` within ``ping_timeout_s``?"""
        engine = self._engine
        if engine is None:
            return False
        try:
            async with asyncio.timeout(self._ping_timeout_s), engine.connect() as connection:
                await connection.execute(_PING)
        except DB_ERRORS as exc:
            logger.warning("database ping failed", extra={"event": "storage.ping_failed", "error": describe(exc)})
            return False
        return True

    def has_capacity(self) -> bool:
        """False while the write backlog is full (``save`` would raise): refuse ``store: true`` work."""
        return self._writer.has_capacity()

    @property
    def pending_rows(self) -> int:
        return self._writer.pending_rows

    # ---- writes ------------------------------------------------------------------------------------

    def save(
        self,
        response_id: str,
        *,
        created_at: int,
        model: str,
        status: str,
        previous_response_id: str | None,
        input_items: list[Item],
        output_items: list[Item],
        resource: JSON,
    ) -> None:
        """Queue a response for writing and return at once; it is readable immediately.

        The items and resource are encoded now (later mutation by the caller does not affect what is
        stored). Raises ``TypeError`` for a value that is not JSON-serialisable and
        :class:`~tollway.storage.errors.StoreBacklogFullError` when the write backlog is full.
        """
        encoded = {
            "input_items": jsoncodec.encode(input_items),
            "output_items": jsoncodec.encode(output_items),
            "resource": jsoncodec.encode(resource),
        }
        size = _ROW_OVERHEAD_BYTES + sum(len(value.text) for value in encoded.values())
        values: dict[str, Any] = {
            "id": response_id,
            "created_at": int(created_at),
            "model": model,
            "status": status,
            "previous_response_id": previous_response_id,
            **encoded,
        }
        self._writer.submit(PendingRow(response_id, values, size))

    async def _write_rows(self, rows: list[PendingRow]) -> None:
        async with self._require_engine().begin() as connection:
            await connection.execute(self._require_upsert(), [row.values for row in rows])

    async def delete(self, response_id: str) -> bool:
        """Delete a stored response. True if it existed."""
        async with self._writer.exclusive():
            was_pending = self._writer.discard(response_id)
            async with self._database("delete", begin=True) as connection:
                result = await connection.execute(_DELETE_ONE, {"id": response_id})
        return was_pending or result.rowcount > 0

    # ---- reads -------------------------------------------------------------------------------------

    async def get(self, response_id: str) -> StoredResponse | None:
        pending = self._writer.get(response_id)
        if pending is not None:
            return _from_values(pending.values)
        async with self._database("get") as connection:
            record = (await connection.execute(_SELECT_ONE, {"id": response_id})).first()
        if record is None:
            return None
        return StoredResponse(
            id=record.id,
            created_at=record.created_at,
            model=record.model,
            status=record.status,
            previous_response_id=record.previous_response_id,
            input_items=record.input_items,
            output_items=record.output_items,
            resource=record.resource,
        )

    async def conversation_items(self, response_id: str) -> list[Item] | None:
        """The full context a continuation of ``response_id`` builds on: every turn's input then output,
        root first. None when ``response_id`` or any earlier link of its chain is unknown."""
        turns: list[tuple[list[Item], list[Item]]] = []
        seen: set[str] = set()
        current: str | None = response_id
        while current is not None:
            if current in seen or len(turns) > self._max_chain_depth:
                self._log_broken_chain(response_id, current)
                return None
            pending = self._writer.get(current)
            if pending is not None:
                seen.add(current)
                turns.append(_decode_turn(pending.values))
                current = pending.values["previous_response_id"]
                continue
            async with self._database("conversation") as connection:
                result = await connection.execute(_SELECT_CHAIN, {"start": current, "max_depth": self._max_chain_depth})
                records = result.all()
            if not records:
                return None
            for record in records:
                if record.id in seen:
                    self._log_broken_chain(response_id, record.id)
                    return None
                seen.add(record.id)
                turns.append((record.input_items, record.output_items))
            current = records[-1].previous_response_id
        items: list[Item] = []
        for input_items, output_items in reversed(turns):
            items.extend(input_items)
            items.extend(output_items)
        return items

    async def input_items(
        self,
        response_id: str,
        *,
        limit: int = 20,
        order: str = "desc",
        after: str | None = None,
    ) -> tuple[list[Item], bool]:
        """One page of this response's own input items, and whether more follow.

        OpenAI semantics: ``order`` ``desc`` (default) lists the newest item first, ``asc`` the oldest;
        ``after`` is an item id and the page starts just past it in that order; ``limit`` is 1..100.
        An unknown response id or an ``after`` id that is not among the items gives an empty page
        (``([], False)``); routes check the response exists first (404). ``ValueError`` for a ``limit``
        or ``order`` out of range.
        """
        if not 1 <= limit <= 100:
            raise ValueError("limit must be between 1 and 100")
        if order not in ("asc", "desc"):
            raise ValueError("order must be 'asc' or 'desc'")
        pending = self._writer.get(response_id)
        items: list[Item]
        if pending is not None:
            items = jsoncodec.loads(pending.values["input_items"].text)
        else:
            async with self._database("input_items") as connection:
                record = (await connection.execute(_SELECT_INPUT, {"id": response_id})).first()
            if record is None:
                return [], False
            items = record.input_items
        if order == "desc":
            items.reverse()
        start = 0
        if after is not None:
            position = next((i for i, item in enumerate(items) if item.get("id") == after), None)
            if position is None:
                return [], False
            start = position + 1
        return items[start : start + limit], start + limit < len(items)

    # ---- plumbing ----------------------------------------------------------------------------------

    @asynccontextmanager
    async def _database(self, operation: str, *, begin: bool = False) -> AsyncIterator[AsyncConnection]:
        engine = self._require_engine()
        try:
            async with asyncio.timeout(self._read_timeout_s):
                connect = engine.begin() if begin else engine.connect()
                async with connect as connection:
                    yield connection
        except DB_ERRORS as exc:
            logger.warning(
                "database operation failed",
                extra={"event": "storage.operation_failed", "operation": operation, "error": describe(exc)},
            )
            raise StorageUnavailableError(operation) from exc

    def _log_broken_chain(self, response_id: str, at: str) -> None:
        logger.warning(
            "response chain has a cycle or is too deep",
            extra={"event": "storage.chain_invalid", "response_id": response_id, "at": at},
        )

    def _require_engine(self) -> AsyncEngine:
        if self._engine is None:
            raise RuntimeError("ResponseStore.start() has not been awaited")
        return self._engine

    def _require_upsert(self) -> TextClause:
        if self._upsert is None:
            raise RuntimeError("ResponseStore.start() has not been awaited")
        return self._upsert


def _decode_turn(values: dict[str, Any]) -> tuple[list[Item], list[Item]]:
    return jsoncodec.loads(values["input_items"].text), jsoncodec.loads(values["output_items"].text)


def _from_values(values: dict[str, Any]) -> StoredResponse:
    input_items, output_items = _decode_turn(values)
    return StoredResponse(
        id=values["id"],
        created_at=values["created_at"],
        model=values["model"],
        status=values["status"],
        previous_response_id=values["previous_response_id"],
        input_items=input_items,
        output_items=output_items,
        resource=jsoncodec.loads(values["resource"].text),
    )

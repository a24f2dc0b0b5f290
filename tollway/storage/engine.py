"""Async engine construction for tollway's database (SQLite via aiosqlite, PostgreSQL via asyncpg).

* JSON columns use orjson (:mod:`tollway.storage.jsoncodec`).
* SQLite: the file's parent directory is created on first start; every connection turns on WAL (readers
  never block the writer), ``synchronous=NORMAL`` (safe with WAL) and a busy timeout, so a briefly
  locked database makes a statement wait instead of failing at once.
* Statement parameters (user content) are kept out of error messages and logs (``hide_parameters``).
* PostgreSQL: bounded connect and command timeouts, and pre-ping on checkout so connections killed by a
  database restart are replaced instead of failing the next statement.

:data:`DB_ERRORS` is every exception a database round trip can raise for reasons outside tollway's
control (connectivity, timeouts, server-side errors), including the raw driver errors SQLAlchemy lets
through while a connection is being opened.
"""

from __future__ import annotations

import logging
import sqlite3
from pathlib import Path
from typing import Any

import asyncpg  # type: ignore[import-untyped]
from sqlalchemy import event
from sqlalchemy.engine import make_url
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine
from sqlalchemy.pool import StaticPool

from tollway.storage import jsoncodec
from tollway.storage.urls import normalise_database_url, sqlite_database_path

logger = logging.getLogger("tollway.storage")

DB_ERRORS: tuple[type[BaseException], ...] = (
    SQLAlchemyError,
    OSError,
    TimeoutError,
    sqlite3.Error,
    asyncpg.PostgresError,
    asyncpg.InterfaceError,
)


def create_engine(
    database_url: str,
    *,
    connect_timeout_s: float = 5.0,
    command_timeout_s: float = 30.0,
    sqlite_busy_timeout_s: float = 5.0,
    pool_size: int = 5,
    max_overflow: int = 10,
) -> AsyncEngine:
    """Build the async engine for ``database_url`` (normalised first). Opens no connection."""
    url = normalise_database_url(database_url)
    if url.startswith("sqlite"):
        return _sqlite_engine(url, sqlite_busy_timeout_s)
    connect_args: dict[str, Any] = {"timeout": connect_timeout_s, "command_timeout": command_timeout_s}
    return create_async_engine(
        url,
        json_serializer=jsoncodec.dumps,
        json_deserializer=jsoncodec.loads,
        connect_args=_without_url_overrides(url, connect_args),
        pool_pre_ping=True,
        pool_size=pool_size,
        max_overflow=max_overflow,
        pool_timeout=connect_timeout_s,
        hide_parameters=True,
    )


def _sqlite_engine(url: str, busy_timeout_s: float) -> AsyncEngine:
    path = sqlite_database_path(url)
    kwargs: dict[str, Any] = {
        "json_serializer": jsoncodec.dumps,
        "json_deserializer": jsoncodec.loads,
        "connect_args": {"timeout": busy_timeout_s},
        "hide_parameters": True,
    }
    if path is None:
        # One shared connection, or every pooled connection would see its own empty in-memory database.
        kwargs["poolclass"] = StaticPool
    else:
        _ensure_parent_dir(path)
    engine = create_async_engine(url, **kwargs)
    busy_ms = int(busy_timeout_s * 1000)

    def on_connect(dbapi_connection: Any, _record: Any) -> None:
        cursor = dbapi_connection.cursor()
        try:
            cursor.execute("PRAGMA journal_mode=WAL")
            cursor.execute("PRAGMA synchronous=NORMAL")
            cursor.execute(f"PRAGMA busy_timeout={busy_ms}")
        finally:
            cursor.close()

    event.listen(engine.sync_engine, "connect", on_connect)
    return engine


def _ensure_parent_dir(path: str) -> None:
    parent = Path(path).expanduser().parent
    try:
        parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        # Not fatal here: connecting will fail with SQLite's own error, which readiness reports.
        logger.warning(
            "cannot create the SQLite database directory",
            extra={"event": "storage.sqlite_dir_failed", "path": str(parent), "error": str(exc)},
        )


def _without_url_overrides(url: str, connect_args: dict[str, Any]) -> dict[str, Any]:
    """Drop defaults the URL's own query sets (``?timeout=...`` wins over tollway's default)."""
    query = make_url(url).query
    return {key: value for key, value in connect_args.items() if key not in query}

"""Schema migrations, run programmatically (no ``alembic.ini`` needed at runtime).

Two entry points with the same effect:

* :func:`upgrade` — synchronous. For ``tollway db upgrade`` and for ``tollway serve`` start-up *before* the
  event loop starts: it runs its own short-lived event loop (``asyncio.run``), so calling it from inside a
  running loop raises ``RuntimeError``; there, use :func:`upgrade_async`.
* :func:`upgrade_async` — for code already inside an event loop (tests, embedding).

Both open an async engine, take a migration lock (PostgreSQL: a transaction-scoped advisory lock;
SQLite: ``BEGIN IMMEDIATE``) so several gateway processes starting together migrate once and the
others wait and find the schema at head, then run Alembic on that connection via
``AsyncConnection.run_sync`` (Alembic is synchronous). The whole upgrade is one transaction. Running it
again on an up-to-date database does nothing.

Alembic's bookkeeping lives in ``tollway_alembic_version`` (not ``alembic_version``), so tollway can share
a database with another Alembic-managed application.

Start-up on a database already at head (the usual case) only reads that table: Alembic is imported only
when there is something to migrate (it stays resident otherwise: ~7 MB of RSS for nothing).
:data:`HEAD_REVISION` names the head; a test checks it against Alembic's own view of the scripts.
"""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import TYPE_CHECKING

from sqlalchemy import text
from sqlalchemy.engine import Connection
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncEngine

from tollway.storage.engine import create_engine
from tollway.storage.urls import normalise_database_url

if TYPE_CHECKING:
    from alembic.config import Config

MIGRATIONS_DIR = Path(__file__).resolve().parent / "migrations"
VERSION_TABLE = "tollway_alembic_version"
HEAD_REVISION = "0005"  # the newest migration (tests/storage: equals Alembic's head)
# pg_advisory_xact_lock key: any constant unique to tollway's migrations ("tollway" in ASCII).
_PG_LOCK_KEY = 0x746F6C6C776179


def alembic_config(database_url: str) -> Config:
    """An Alembic config built in code, ``script_location`` pointing into this package."""
    from alembic.config import Config

    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    # ConfigParser interpolation: a literal "%" (e.g. in an URL-encoded password) must be doubled.
    config.set_main_option("sqlalchemy.url", normalise_database_url(database_url).replace("%", "%%"))
    return config


def upgrade(database_url: str, revision: str = "head") -> None:
    """Migrate ``database_url`` to ``revision`` (synchronous; no event loop may be running)."""
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        asyncio.run(upgrade_async(database_url, revision))
        return
    raise RuntimeError("upgrade() cannot run inside a running event loop; use `await upgrade_async(...)`")


async def upgrade_async(database_url: str, revision: str = "head") -> None:
    """Migrate ``database_url`` to ``revision`` from inside a running event loop."""
    engine = create_engine(database_url)
    try:
        if revision == "head" and await _at_head(engine):
            return
        config = alembic_config(database_url)
        async with engine.begin() as connection:
            await connection.run_sync(_upgrade_on, config, revision)
    finally:
        await engine.dispose()


async def current_revision(database_url: str) -> str | None:
    """The revision the database is at (None: never migrated)."""
    engine = create_engine(database_url)
    try:
        async with engine.connect() as connection:
            return await connection.run_sync(_current_on)
    finally:
        await engine.dispose()


async def _at_head(engine: AsyncEngine) -> bool:
    """Whether the database is exactly at :data:`HEAD_REVISION` (read without Alembic). Any doubt — no
    version table, several rows, another revision — says no, and Alembic decides."""
    try:
        async with engine.connect() as connection:
            rows = (await connection.execute(text(f"SELECT version_num FROM {VERSION_TABLE}"))).all()
    except DBAPIError:  # no version table yet (a new database)
        return False
    return len(rows) == 1 and rows[0][0] == HEAD_REVISION


def _upgrade_on(connection: Connection, config: Config, revision: str) -> None:
    from alembic import command

    if connection.dialect.name == "postgresql":
        connection.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": _PG_LOCK_KEY})
    elif connection.dialect.name == "sqlite":
        connection.exec_driver_sql("BEGIN IMMEDIATE")
    config.attributes["connection"] = connection
    command.upgrade(config, revision)


def _current_on(connection: Connection) -> str | None:
    from alembic.runtime.migration import MigrationContext

    context = MigrationContext.configure(connection, opts={"version_table": VERSION_TABLE})
    return context.get_current_revision()

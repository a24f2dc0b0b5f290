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
"""

from __future__ import annotations

import asyncio
from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from sqlalchemy import text
from sqlalchemy.engine import Connection

from tollway.storage.engine import create_engine
from tollway.storage.urls import normalise_database_url

MIGRATIONS_DIR = Path(__file__).resolve().parent / "migrations"
VERSION_TABLE = "tollway_alembic_version"
# pg_advisory_xact_lock key: any constant unique to tollway's migrations ("tollway" in ASCII).
_PG_LOCK_KEY = 0x746F6C6C776179


def alembic_config(database_url: str) -> Config:
    """An Alembic config built in code, ``script_location`` pointing into this package."""
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
    config = alembic_config(database_url)
    engine = create_engine(database_url)
    try:
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


def _upgrade_on(connection: Connection, config: Config, revision: str) -> None:
    if connection.dialect.name == "postgresql":
        connection.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": _PG_LOCK_KEY})
    elif connection.dialect.name == "sqlite":
        connection.exec_driver_sql("BEGIN IMMEDIATE")
    config.attributes["connection"] = connection
    command.upgrade(config, revision)


def _current_on(connection: Connection) -> str | None:
    context = MigrationContext.configure(connection, opts={"version_table": VERSION_TABLE})
    return context.get_current_revision()

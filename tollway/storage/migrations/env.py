"""Alembic environment for tollway.

Normally run through :mod:`tollway.storage.migrate`, which opens an async connection, takes the
migration lock and hands the connection over in ``config.attributes["connection"]`` (Alembic itself is
synchronous; it runs inside ``AsyncConnection.run_sync``). Without a handed-over connection (the plain
``alembic`` CLI with a developer's own ini file) it builds an engine from ``sqlalchemy.url`` or
``DATABASE_URL``. Offline mode (``--sql``) renders the SQL without connecting.
"""

from __future__ import annotations

import asyncio
import os

from alembic import context
from sqlalchemy.engine import Connection

from tollway.storage.engine import create_engine
from tollway.storage.migrate import VERSION_TABLE
from tollway.storage.schema import Base
from tollway.storage.urls import normalise_database_url


def _database_url() -> str:
    return normalise_database_url(context.config.get_main_option("sqlalchemy.url") or os.environ.get("DATABASE_URL"))


def _run_on_connection(connection: Connection) -> None:
    context.configure(
        connection=connection,
        target_metadata=Base.metadata,
        version_table=VERSION_TABLE,
        render_as_batch=connection.dialect.name == "sqlite",
        compare_type=True,
    )
    with context.begin_transaction():
        context.run_migrations()


async def _run_with_own_engine(url: str) -> None:
    engine = create_engine(url)
    try:
        async with engine.begin() as connection:
            await connection.run_sync(_run_on_connection)
    finally:
        await engine.dispose()


def _run_offline() -> None:
    context.configure(
        url=_database_url(),
        target_metadata=Base.metadata,
        version_table=VERSION_TABLE,
        literal_binds=True,
    )
    with context.begin_transaction():
        context.run_migrations()


def _main() -> None:
    if context.is_offline_mode():
        _run_offline()
        return
    connection = context.config.attributes.get("connection")
    if isinstance(connection, Connection):
        _run_on_connection(connection)
    else:
        asyncio.run(_run_with_own_engine(_database_url()))


_main()

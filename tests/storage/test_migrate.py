from __future__ import annotations

import asyncio
import sqlite3
from pathlib import Path

import pytest
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import inspect
from sqlalchemy.engine import Connection

from tollway.storage.engine import create_engine
from tollway.storage.migrate import VERSION_TABLE, current_revision, upgrade, upgrade_async
from tollway.storage.schema import Base

HEAD = "0005"  # the single head once the ledger, tenancy and limits branches are merged

COLUMNS = {
    "id",
    "created_at",
    "model",
    "status",
    "previous_response_id",
    "input_items",
    "output_items",
    "resource",
}


def _schema(connection: Connection) -> tuple[set[str], set[str], set[str]]:
    inspector = inspect(connection)
    columns = {column["name"] for column in inspector.get_columns("stored_responses")}
    indexes = {index["name"] or "" for index in inspector.get_indexes("stored_responses")}
    return set(inspector.get_table_names()), columns, indexes


async def test_upgrade_empty_database_then_rerun(database_url: str) -> None:
    assert await current_revision(database_url) is None
    await upgrade_async(database_url)
    assert await current_revision(database_url) == HEAD
    engine = create_engine(database_url)
    try:
        async with engine.connect() as connection:
            tables, columns, indexes = await connection.run_sync(_schema)
    finally:
        await engine.dispose()
    assert {"stored_responses", VERSION_TABLE} <= tables
    assert "alembic_version" not in tables
    assert columns == COLUMNS
    assert {"ix_stored_responses_previous_response_id", "ix_stored_responses_created_at"} <= indexes
    # Idempotent: a second run (sync entry point, in a thread as `tollway db upgrade` would) is a no-op.
    await asyncio.to_thread(upgrade, database_url)
    assert await current_revision(database_url) == HEAD


async def test_concurrent_upgrades_migrate_once(database_url: str) -> None:
    await asyncio.gather(*(upgrade_async(database_url) for _ in range(3)))
    assert await current_revision(database_url) == HEAD


def _diff(connection: Connection) -> list[object]:
    context = MigrationContext.configure(connection, opts={"version_table": VERSION_TABLE, "compare_type": True})
    return list(compare_metadata(context, Base.metadata))


async def test_models_match_migrations(database_url: str) -> None:
    await upgrade_async(database_url)
    engine = create_engine(database_url)
    try:
        async with engine.connect() as connection:
            diff = await connection.run_sync(_diff)
    finally:
        await engine.dispose()
    assert diff == []


async def test_sync_upgrade_refuses_a_running_loop(tmp_path: Path) -> None:
    with pytest.raises(RuntimeError):
        upgrade(f"sqlite:///{tmp_path}/x.db")


def test_sync_upgrade_creates_sqlite_file_and_parent_dirs_with_wal(tmp_path: Path) -> None:
    path = tmp_path / "a" / "b" / "tollway.db"
    upgrade(f"sqlite:///{path}")
    assert path.is_file()
    with sqlite3.connect(path) as connection:
        assert connection.execute("PRAGMA journal_mode").fetchone() == ("wal",)
        (revision,) = connection.execute(f"SELECT version_num FROM {VERSION_TABLE}").fetchone()
    assert revision == HEAD


def test_head_constant_is_alembics_head() -> None:
    from alembic.script import ScriptDirectory

    from tollway.storage.migrate import HEAD_REVISION, alembic_config

    script = ScriptDirectory.from_config(alembic_config("sqlite+aiosqlite:///:memory:"))
    assert script.get_heads() == [HEAD_REVISION]


def test_start_up_on_a_database_at_head_does_not_load_alembic(tmp_path: Path) -> None:
    """Alembic is only imported when there is something to migrate (it would stay resident: RSS)."""
    import subprocess
    import sys

    url = f"sqlite+aiosqlite:///{tmp_path / 'db.sqlite'}"
    code = ("import sys; from tollway.storage.migrate import upgrade; upgrade(%r); "
            "print('alembic' in sys.modules)")
    first = subprocess.run([sys.executable, "-c", code % url], capture_output=True, text=True, check=True)
    again = subprocess.run([sys.executable, "-c", code % url], capture_output=True, text=True, check=True)
    assert (first.stdout.strip(), again.stdout.strip()) == ("True", "False")


async def test_a_database_behind_head_is_still_migrated(tmp_path: Path) -> None:
    url = f"sqlite+aiosqlite:///{tmp_path / 'old.sqlite'}"
    await upgrade_async(url, "0001")
    assert await current_revision(url) == "0001"
    await upgrade_async(url)
    assert await current_revision(url) == HEAD

"""Migration 0002_ledger: its own branch from 0001, matching the models, reversible."""

from __future__ import annotations

from typing import Any

from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import inspect
from sqlalchemy.engine import Connection

from tollway.metering.ledger.tables import UsageDailyRow, UsageLedgerRow
from tollway.storage.engine import create_engine
from tollway.storage.migrate import VERSION_TABLE, alembic_config
from tollway.storage.models import Base

MINE = {UsageLedgerRow.__tablename__, UsageDailyRow.__tablename__}


def _only_mine(obj: Any, name: str | None, type_: str, reflected: bool, compare_to: Any) -> bool:
    table = obj if type_ == "table" else getattr(obj, "table", None)
    return getattr(table, "name", None) in MINE


def _diff(connection: Connection) -> list[object]:
    context = MigrationContext.configure(connection, opts={
        "version_table": VERSION_TABLE, "compare_type": True, "include_object": _only_mine})
    return list(compare_metadata(context, Base.metadata))


def _tables(connection: Connection) -> set[str]:
    return set(inspect(connection).get_table_names())


def test_branch_shape() -> None:
    script = ScriptDirectory.from_config(alembic_config("sqlite:///x.db"))
    rev = script.get_revision("0002_ledger")
    assert rev is not None and rev.down_revision == "0001" and "ledger" in rev.branch_labels


async def test_tables_match_models_and_downgrade(db_url: str) -> None:
    engine = create_engine(db_url)
    try:
        async with engine.connect() as connection:
            assert await connection.run_sync(_tables) >= MINE
            assert await connection.run_sync(_diff) == []
        async with engine.begin() as connection:
            def down(sync: Connection) -> None:
                config = alembic_config(db_url)
                config.attributes["connection"] = sync
                command.downgrade(config, "ledger@0001")

            await connection.run_sync(down)
        async with engine.connect() as connection:
            tables = await connection.run_sync(_tables)
            assert not MINE & tables and "stored_responses" in tables
    finally:
        await engine.dispose()

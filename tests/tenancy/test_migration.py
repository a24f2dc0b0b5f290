"""0003_tenancy creates exactly what tollway.tenancy.models declares, on SQLite and PostgreSQL."""

from __future__ import annotations

from typing import Any

from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import MetaData, select
from sqlalchemy.engine import Connection

from tollway.storage.engine import create_engine
from tollway.storage.migrate import VERSION_TABLE
from tollway.storage.models import Base
from tollway.tenancy import models
from tollway.tenancy.models import TenancyRevision, table

TABLES = frozenset({"organizations", "teams", "projects", "end_users", "api_keys", "provider_credentials",
                    "price_overrides", "tenancy_revision"})


def _tables_of(diff: Any) -> set[str]:
    """The table names a (possibly nested) autogenerate diff entry touches."""
    if isinstance(diff, list):
        return set().union(*(_tables_of(d) for d in diff))
    names: set[str] = set()
    for part in diff:
        name = getattr(part, "name", None) if hasattr(part, "columns") or hasattr(part, "c") else None
        table_ = getattr(part, "table", None)
        if isinstance(part, str) and part in TABLES:
            names.add(part)
        elif table_ is not None and getattr(table_, "name", None):
            names.add(table_.name)
        elif name:
            names.add(name)
    return names


def _diff(connection: Connection) -> list[Any]:
    ours = MetaData(naming_convention=Base.metadata.naming_convention)
    for t in Base.metadata.tables.values():
        if t.name in TABLES:
            t.to_metadata(ours)
    context = MigrationContext.configure(connection, opts={"version_table": VERSION_TABLE, "compare_type": True})
    return [d for d in compare_metadata(context, ours) if _tables_of(d) & TABLES]


async def test_models_match_migration(migrated_url: str) -> None:
    assert {t for t in Base.metadata.tables if t in TABLES} == TABLES, models.__name__
    engine = create_engine(migrated_url)
    try:
        async with engine.connect() as connection:
            assert await connection.run_sync(_diff) == []
            revision = (await connection.execute(select(table(TenancyRevision)))).all()
    finally:
        await engine.dispose()
    assert [(r.id, r.revision) for r in revision] == [(1, 0)]

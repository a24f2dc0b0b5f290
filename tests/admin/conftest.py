"""Admin tests run on SQLite and on PostgreSQL (a fresh database per test, see tests/storage/conftest.py)."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
from sqlalchemy.ext.asyncio import AsyncEngine

from tests.storage.conftest import database_url, migrated_url  # noqa: F401  (fixtures)
from tollway.admin.store import AdminStore
from tollway.storage.engine import create_engine


@pytest.fixture
async def engine(migrated_url: str) -> AsyncIterator[AsyncEngine]:  # noqa: F811
    eng = create_engine(migrated_url)
    yield eng
    await eng.dispose()


@pytest.fixture
def store(engine: AsyncEngine) -> AdminStore:
    return AdminStore(engine)

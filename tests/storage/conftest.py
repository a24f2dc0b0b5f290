"""Fixtures for the storage tests: every store/migration test runs on SQLite (a file under tmp_path) and
on PostgreSQL (a uniquely named database created for the test and dropped afterwards, so concurrent test
runs against the same server never share tables)."""

from __future__ import annotations

import os
import uuid
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import asyncpg  # type: ignore[import-untyped]
import pytest

from tollway.storage.migrate import upgrade_async
from tollway.storage.responses import ResponseStore

PG_ADMIN_URLS = (
    [os.environ["TOLLWAY_TEST_PG"]]
    if os.environ.get("TOLLWAY_TEST_PG")
    else [
        "postgresql://postgres@127.0.0.1:5432/test",
        "postgresql://root@127.0.0.1:5432/test",
    ]
)

_admin_url: str | None = None
_unreachable_reason: str | None = None


async def _find_admin_url() -> str:
    """The first admin URL that connects (roles differ between machines: ``postgres`` or ``root``)."""
    global _admin_url, _unreachable_reason
    if _admin_url is not None:
        return _admin_url
    if _unreachable_reason is not None:
        pytest.skip(_unreachable_reason)
    errors: list[str] = []
    for url in PG_ADMIN_URLS:
        try:
            conn = await asyncpg.connect(url, timeout=3)
        except (OSError, TimeoutError) as exc:
            # The server itself is not there: no other role will do better.
            _unreachable_reason = f"PostgreSQL unreachable at {url}: {exc!r}"
            pytest.skip(_unreachable_reason)
        except asyncpg.PostgresError as exc:  # e.g. role does not exist: try the next one
            errors.append(f"{url}: {exc!r}")
            continue
        await conn.close()
        _admin_url = url
        return url
    _unreachable_reason = "no usable PostgreSQL role: " + "; ".join(errors)
    pytest.skip(_unreachable_reason)


def _with_database(url: str, name: str) -> str:
    return url.rsplit("/", 1)[0] + "/" + name


@pytest.fixture(params=["sqlite", "postgresql"])
async def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[str]:
    """An empty database (not migrated)."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path}/nested/dir/tollway.db"
        return
    admin_url = await _find_admin_url()
    name = f"tollway_test_{uuid.uuid4().hex[:12]}"
    admin = await asyncpg.connect(admin_url, timeout=3)
    try:
        await admin.execute(f'CREATE DATABASE "{name}"')
    finally:
        await admin.close()
    try:
        yield _with_database(admin_url, name)
    finally:
        admin = await asyncpg.connect(admin_url, timeout=3)
        try:
            await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        finally:
            await admin.close()


@pytest.fixture
async def migrated_url(database_url: str) -> str:
    await upgrade_async(database_url)
    return database_url


@pytest.fixture
async def make_store(migrated_url: str) -> AsyncIterator[Callable[..., ResponseStore]]:
    """Build started stores on the migrated test database (closed at teardown). Fast retry settings."""
    stores: list[ResponseStore] = []

    def make(url: str | None = None, **options: Any) -> ResponseStore:
        options.setdefault("retry_initial_s", 0.02)
        options.setdefault("retry_max_s", 0.2)
        store = ResponseStore(url or migrated_url, **options)
        stores.append(store)
        return store

    yield make
    for store in stores:
        await store.close(timeout=2.0)


@pytest.fixture
async def store(make_store: Callable[..., ResponseStore]) -> ResponseStore:
    s = make_store()
    await s.start()
    return s

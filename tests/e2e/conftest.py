from __future__ import annotations

import os
import tempfile
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.e2e.server import running_gateway, running_mock
from tollway.settings import Settings

PG_URL = os.environ.get("TOLLWAY_TEST_PG", "postgresql://postgres@127.0.0.1:5432/test")


@pytest.fixture(scope="session")
def mock_url() -> Iterator[str]:
    with running_mock() as url:
        yield url


def gateway_settings(mock_url: str, database_url: str, **extra: object) -> Settings:
    data: dict[str, object] = {
        "database_url": database_url,
        "providers": {
            "openai": {"api_key": "sk-test", "base_url": mock_url},
            "anthropic": {"api_key": "sk-ant-test", "base_url": mock_url},
            "compat": {"kind": "openai_chat", "api_key": "sk-compat", "base_url": mock_url},
            "dead": {"kind": "openai_chat", "api_key": "x", "base_url": "http://127.0.0.1:9/v1"},
        },
        "models": {"fast": "anthropic/claude-haiku-4-5", "chatty": "compat/gpt-4o-mini"},
        "mock": {"enabled": True},
        "timeouts": {"connect": 2, "read": 5, "total": 20},
        # keep each gateway's usage spool out of the working tree
        "ledger_spool_path": os.path.join(tempfile.mkdtemp(prefix="tollway-spool-"), "spool.db"),
    }
    data.update(extra)
    return Settings.model_validate(data)


@pytest.fixture(scope="session")
def gateway(mock_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    db: Path = tmp_path_factory.mktemp("db") / "tollway.db"
    with running_gateway(gateway_settings(mock_url, f"sqlite+aiosqlite:///{db}")) as url:
        yield url


def _pg_database() -> str | None:
    """A fresh PostgreSQL database for this session (dropped at the end), or None if unreachable."""
    import asyncio

    import asyncpg

    name = f"tollway_e2e_{uuid.uuid4().hex[:10]}"

    async def create() -> None:
        conn = await asyncpg.connect(PG_URL, timeout=3)
        try:
            await conn.execute(f'CREATE DATABASE "{name}"')
        finally:
            await conn.close()

    try:
        asyncio.run(create())
    except (OSError, asyncpg.PostgresError):
        return None
    return PG_URL.rsplit("/", 1)[0] + "/" + name


def _drop_pg(url: str) -> None:
    import asyncio

    import asyncpg

    name = url.rsplit("/", 1)[1]

    async def drop() -> None:
        conn = await asyncpg.connect(PG_URL, timeout=3)
        try:
            await conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        finally:
            await conn.close()

    asyncio.run(drop())


@pytest.fixture(scope="session")
def pg_gateway(mock_url: str) -> Iterator[str]:
    url = _pg_database()
    if url is None:
        if os.environ.get("CI"):
            pytest.fail(f"PostgreSQL at {PG_URL} is unreachable in CI")
        pytest.skip(f"PostgreSQL at {PG_URL} is unreachable")
    try:
        with running_gateway(gateway_settings(mock_url, url)) as gw:
            yield gw
    finally:
        _drop_pg(url)

from __future__ import annotations

from pathlib import Path

from sqlalchemy import text

from tollway.storage.engine import create_engine


async def test_sqlite_connections_use_wal_and_a_busy_timeout(tmp_path: Path) -> None:
    path = tmp_path / "deep" / "er" / "tollway.db"
    engine = create_engine(f"sqlite:///{path}", sqlite_busy_timeout_s=1.5)
    try:
        assert path.parent.is_dir()  # created before the first connection
        async with engine.connect() as connection:
            assert await connection.scalar(text("PRAGMA journal_mode")) == "wal"
            assert await connection.scalar(text("PRAGMA busy_timeout")) == 1500
            assert await connection.scalar(text("PRAGMA synchronous")) == 1  # NORMAL
    finally:
        await engine.dispose()
    assert path.is_file()


async def test_in_memory_sqlite_shares_one_database() -> None:
    engine = create_engine("sqlite+aiosqlite:///:memory:")
    try:
        async with engine.begin() as connection:
            await connection.execute(text("CREATE TABLE t (x INTEGER)"))
            await connection.execute(text("INSERT INTO t VALUES (1)"))
        async with engine.connect() as connection:
            assert await connection.scalar(text("SELECT count(*) FROM t")) == 1
    finally:
        await engine.dispose()


def test_postgres_urls_get_the_asyncpg_driver() -> None:
    engine = create_engine("postgres://u@db.invalid:5432/app")
    assert engine.dialect.name == "postgresql" and engine.dialect.driver == "asyncpg"
    assert engine.sync_engine.hide_parameters is True

from __future__ import annotations

import pytest

from tollway.storage.urls import DEFAULT_DATABASE_URL, normalise_database_url, sqlite_database_path


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        (None, DEFAULT_DATABASE_URL),
        ("", DEFAULT_DATABASE_URL),
        ("   ", DEFAULT_DATABASE_URL),
        ("postgres://u:pw@db.example:5432/app", "postgresql+asyncpg://u:pw@db.example:5432/app"),
        ("postgresql://postgres@127.0.0.1:5432/test", "postgresql+asyncpg://postgres@127.0.0.1:5432/test"),
        ("postgresql+asyncpg://h/db", "postgresql+asyncpg://h/db"),
        ("postgresql+psycopg2://h/db", "postgresql+asyncpg://h/db"),
        ("postgres://h/db?sslmode=require", "postgresql+asyncpg://h/db?ssl=require"),
        ("postgresql://h/db?connect_timeout=3", "postgresql+asyncpg://h/db?timeout=3"),
        ("postgres://u:p%40ss%25@h/db", "postgresql+asyncpg://u:p%40ss%25@h/db"),
        ("sqlite:///x.db", "sqlite+aiosqlite:///x.db"),
        ("sqlite:////var/lib/tollway/x.db", "sqlite+aiosqlite:////var/lib/tollway/x.db"),
        ("sqlite+pysqlite:///x.db", "sqlite+aiosqlite:///x.db"),
        ("sqlite+aiosqlite:///./tollway.db", "sqlite+aiosqlite:///./tollway.db"),
        ("sqlite://", "sqlite+aiosqlite://"),
        (" sqlite:///x.db\n", "sqlite+aiosqlite:///x.db"),
    ],
)
def test_normalise(raw: str | None, expected: str) -> None:
    assert normalise_database_url(raw) == expected


def test_normalise_is_idempotent() -> None:
    for raw in ("postgres://u:p%40ss@h:1/db?sslmode=verify-full", "sqlite:///a/b.db"):
        once = normalise_database_url(raw)
        assert normalise_database_url(once) == once


@pytest.mark.parametrize("raw", ["mysql://h/db", "mongodb://h/db", "not a url", "sqlite+pysqlcipher:///x.db"])
def test_unsupported_urls_are_rejected(raw: str) -> None:
    with pytest.raises(ValueError):
        normalise_database_url(raw)


@pytest.mark.parametrize(
    ("url", "path"),
    [
        ("sqlite+aiosqlite:///./tollway.db", "./tollway.db"),
        ("sqlite+aiosqlite:////abs/t.db", "/abs/t.db"),
        ("sqlite+aiosqlite:///:memory:", None),
        ("sqlite+aiosqlite://", None),
        ("postgresql+asyncpg://h/db", None),
    ],
)
def test_sqlite_database_path(url: str, path: str | None) -> None:
    assert sqlite_database_path(url) == path

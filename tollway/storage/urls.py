"""Database URL normalisation.

tollway talks to its database only through async drivers: ``aiosqlite`` for SQLite and ``asyncpg``
for PostgreSQL. Operators write URLs the way their platform hands them out (``postgres://...`` from
Heroku-style ``DATABASE_URL``, ``postgresql://...`` from libpq habits, ``sqlite:///x.db``), so every
URL goes through :func:`normalise_database_url` before an engine is built:

* empty / ``None`` → :data:`DEFAULT_DATABASE_URL` (a ``tollway.db`` file in the working directory);
* ``postgres://``, ``postgresql://`` and ``postgresql+<any sync driver>://`` → ``postgresql+asyncpg://``;
  the libpq query options asyncpg does not understand are translated (``sslmode`` → ``ssl``,
  ``connect_timeout`` → ``timeout``);
* ``sqlite://`` and ``sqlite+pysqlite://`` → ``sqlite+aiosqlite://``.

Any other scheme is a :class:`ValueError` (raised at start-up, never on the request path).
"""

from __future__ import annotations

from sqlalchemy.engine import URL, make_url
from sqlalchemy.exc import ArgumentError

DEFAULT_DATABASE_URL = "sqlite+aiosqlite:///./tollway.db"

_PG_SCHEMES = frozenset({"postgres", "postgresql"})
_LIBPQ_TO_ASYNCPG = {"sslmode": "ssl", "connect_timeout": "timeout"}


def normalise_database_url(url: str | None) -> str:
    """Return ``url`` rewritten for tollway's async drivers (see the module docstring)."""
    raw = (url or "").strip()
    if not raw:
        return DEFAULT_DATABASE_URL
    try:
        parsed = make_url(raw)
    except ArgumentError as exc:
        raise ValueError(f"invalid database URL: {exc}") from None
    backend, _, driver = parsed.drivername.partition("+")
    if backend in _PG_SCHEMES:
        return _render(_asyncpg_url(parsed))
    if backend == "sqlite":
        if driver not in ("", "pysqlite", "aiosqlite"):
            raise ValueError(f"unsupported SQLite driver {driver!r}: use sqlite:// or sqlite+aiosqlite://")
        return _render(parsed.set(drivername="sqlite+aiosqlite"))
    raise ValueError(
        f"unsupported database URL scheme {parsed.drivername!r}: use sqlite:///path.db or postgresql://..."
    )


def sqlite_database_path(url: str) -> str | None:
    """The file path of a (normalised) SQLite URL, or None for in-memory / non-SQLite URLs."""
    parsed = make_url(url)
    if not parsed.drivername.startswith("sqlite"):
        return None
    database = parsed.database
    if not database or database == ":memory:" or database.startswith("file:"):
        return None
    return database


def _asyncpg_url(parsed: URL) -> URL:
    query: dict[str, str | tuple[str, ...]] = {}
    for key, value in parsed.query.items():
        query[_LIBPQ_TO_ASYNCPG.get(key, key)] = value
    return parsed.set(drivername="postgresql+asyncpg", query=query)


def _render(url: URL) -> str:
    return url.render_as_string(hide_password=False)

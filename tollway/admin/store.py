"""The database side of administration, shared by the admin API and the CLI.

:class:`AdminStore` wraps the engine: :meth:`AdminStore.write` opens a transaction, lets the operation
change rows, bumps the tenancy revision in the same transaction and, after the commit, calls
``on_change(revision)`` (in a gateway: refresh this process's snapshot and wake the others). Database
failures become a 503 in the error envelope; a uniqueness race becomes a 409.

:class:`Caller` is who is asking: the master key (every org) or an admin-scoped virtual key (its own
org only; it cannot create orgs or change global settings such as prices).
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from tollway.core.errors import GatewayError
from tollway.storage.engine import DB_ERRORS
from tollway.storage.writer import describe
from tollway.tenancy.models import aware
from tollway.tenancy.revision import bump_revision

OnChange = Callable[[int], Awaitable[None]]


@dataclass(slots=True, frozen=True)
class Caller:
    org_id: str | None  # None: the master key, every org
    can_write: bool
    key_id: str | None = None

    @property
    def is_master(self) -> bool:
        return self.org_id is None


MASTER = Caller(org_id=None, can_write=True)


def not_found(kind: str, ident: str, param: str | None = None) -> GatewayError:
    return GatewayError(404, f"No {kind} with id {ident!r}.", type="not_found_error", code="not_found", param=param)


def conflict(message: str, param: str | None = None, code: str = "conflict") -> GatewayError:
    return GatewayError(409, message, type="invalid_request_error", code=code, param=param)


def bad_request(message: str, param: str | None = None, code: str = "invalid_value") -> GatewayError:
    return GatewayError(400, message, type="invalid_request_error", code=code, param=param)


def forbidden(message: str) -> GatewayError:
    return GatewayError(403, message, type="permission_error", code="insufficient_scope")


def iso(value: datetime | None) -> str | None:
    value = aware(value)
    return None if value is None else value.isoformat()


class AdminStore:
    def __init__(self, engine: AsyncEngine, on_change: OnChange | None = None, timeout_s: float = 15.0) -> None:
        self.engine = engine
        self.on_change = on_change
        self.timeout_s = timeout_s

    @asynccontextmanager
    async def read(self) -> AsyncIterator[AsyncConnection]:
        try:
            async with asyncio.timeout(self.timeout_s), self.engine.connect() as connection:
                yield connection
        except DB_ERRORS as exc:
            raise _unavailable(exc) from exc

    @asynccontextmanager
    async def write(self, conflict_message: str = "conflicts with an existing record",
                    conflict_param: str | None = None) -> AsyncIterator[AsyncConnection]:
        """One transaction that bumps the tenancy revision; ``on_change`` runs after the commit."""
        try:
            async with asyncio.timeout(self.timeout_s), self.engine.begin() as connection:
                yield connection
                revision = await bump_revision(connection)
        except IntegrityError as exc:
            raise conflict(conflict_message, conflict_param) from exc
        except DB_ERRORS as exc:
            raise _unavailable(exc) from exc
        if self.on_change is not None:
            await self.on_change(revision)


def _unavailable(exc: BaseException) -> GatewayError:
    return GatewayError(503, f"the database is unavailable ({describe(exc)})", type="server_error",
                        code="database_unavailable")


def row_dict(row: Any, fields: tuple[str, ...]) -> dict[str, Any]:
    """A row as JSON: the named columns, datetimes as ISO 8601."""
    out: dict[str, Any] = {}
    for name in fields:
        value = getattr(row, name)
        out[name] = iso(value) if isinstance(value, datetime) else value
    return out

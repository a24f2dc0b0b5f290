"""The tenancy revision: one counter row that every administrative write bumps in its own transaction.

Gateway processes poll :func:`read_revision` (a primary-key read of one row) and reload their snapshot
when the number changes; because the bump commits atomically with the change, a process that sees the new
number also sees the change.
"""

from __future__ import annotations

from typing import cast

from sqlalchemy import Table, select, update
from sqlalchemy.ext.asyncio import AsyncConnection

from tollway.tenancy.models import REVISION_ROW_ID, TenancyRevision

_T = cast(Table, TenancyRevision.__table__)
_READ = select(_T.c.revision).where(_T.c.id == REVISION_ROW_ID)
_BUMP = update(_T).where(_T.c.id == REVISION_ROW_ID).values(revision=_T.c.revision + 1).returning(_T.c.revision)


async def bump_revision(connection: AsyncConnection) -> int:
    """Increment the revision inside the caller's transaction; returns the new value."""
    value = (await connection.execute(_BUMP)).scalar_one()
    return int(value)


async def read_revision(connection: AsyncConnection) -> int:
    value = (await connection.execute(_READ)).scalar_one()
    return int(value)

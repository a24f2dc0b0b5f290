"""SQLAlchemy models. :class:`Base` is the declarative base every tollway table hangs off (later: tenancy,
ledger); its metadata is the autogenerate target of the Alembic migrations in
``tollway/storage/migrations``. Schema changes go through a new migration, never ``create_all``.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import JSON, BigInteger, MetaData, String
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column
from sqlalchemy.types import TypeEngine

# Plain JSON on SQLite (stored as text), JSONB on PostgreSQL.
JSONType: TypeEngine[Any] = JSON().with_variant(JSONB(), "postgresql")

# Deterministic constraint/index names, so migrations can address them on every backend.
NAMING_CONVENTION = {
    "ix": "ix_%(table_name)s_%(column_0_N_name)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_N_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING_CONVENTION)


class StoredResponseRow(Base):
    """One stored Open Responses response (``store: true``).

    ``input_items`` holds only the items sent with *this* turn (each with an ``id``); the context of a
    continuation is rebuilt by walking ``previous_response_id`` to the root. ``resource`` is the full
    ResponseResource body as returned to the client. Deleting a response deletes its row.
    """

    __tablename__ = "stored_responses"

    id: Mapped[str] = mapped_column(String(128), primary_key=True)
    created_at: Mapped[int] = mapped_column(BigInteger, index=True)
    model: Mapped[str] = mapped_column(String(255))
    status: Mapped[str] = mapped_column(String(32))
    previous_response_id: Mapped[str | None] = mapped_column(String(128), index=True)
    input_items: Mapped[list[dict[str, Any]]] = mapped_column(JSONType)
    output_items: Mapped[list[dict[str, Any]]] = mapped_column(JSONType)
    resource: Mapped[dict[str, Any]] = mapped_column(JSONType)

"""Tenancy tables: organizations → teams → projects, end users, virtual API keys, BYOK provider
credentials, per-model price overrides, and the ``tenancy_revision`` counter.

Every administrative write (admin API or CLI) increments ``tenancy_revision.revision`` in the same
transaction; each gateway process polls that single row and reloads its in-process snapshot when it
changes (see :mod:`tollway.tenancy.cache`). Writes that do not change what the request path decides
(a key's ``last_used_at``, an end user created on first sight) do not bump it.

Ids are short prefixed random strings (``org_…``, ``team_…``, ``proj_…``, ``cred_…``); a key's id is
its lookup id (the middle part of ``tw_live_<lookup id>_<secret>``). An end user's id is derived from
``(org id, external id)`` (:func:`end_user_id`), so every process computes the same id for a user it
sees first without asking the database.
"""

from __future__ import annotations

import hashlib
import secrets
from datetime import UTC, datetime
from typing import Any, cast

from sqlalchemy import (
    BigInteger,
    Boolean,
    DateTime,
    ForeignKey,
    Integer,
    LargeBinary,
    String,
    Table,
    UniqueConstraint,
)
from sqlalchemy.orm import Mapped, mapped_column

from tollway.storage.models import Base, JSONType

REVISION_ROW_ID = 1


def new_id(prefix: str) -> str:
    """``<prefix>_<20 hex chars>`` (80 random bits)."""
    return f"{prefix}_{secrets.token_hex(10)}"


def end_user_id(org_id: str, external_id: str) -> str:
    """The id of the end user ``external_id`` of ``org_id``: the same in every process, forever."""
    digest = hashlib.sha256(f"{org_id}\x00{external_id}".encode()).hexdigest()
    return f"eu_{digest[:24]}"


def table(model: type[Base]) -> Table:
    """The Core table of a model (for statements built once, at import)."""
    return cast(Table, model.__table__)


def utcnow() -> datetime:
    return datetime.now(UTC)


def aware(value: datetime | None) -> datetime | None:
    """SQLite hands back naive datetimes; everything tollway stores is UTC."""
    if value is None or value.tzinfo is not None:
        return value
    return value.replace(tzinfo=UTC)


class Organization(Base):
    __tablename__ = "organizations"

    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    slug: Mapped[str] = mapped_column(String(64), unique=True)
    name: Mapped[str] = mapped_column(String(255))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))


class Team(Base):
    __tablename__ = "teams"
    __table_args__ = (UniqueConstraint("org_id", "slug"),)

    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    org_id: Mapped[str] = mapped_column(ForeignKey("organizations.id"), index=True)
    slug: Mapped[str] = mapped_column(String(64))
    name: Mapped[str] = mapped_column(String(255))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))


class Project(Base):
    """A project belongs to an org and optionally to one of its teams."""

    __tablename__ = "projects"
    __table_args__ = (UniqueConstraint("org_id", "slug"),)

    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    org_id: Mapped[str] = mapped_column(ForeignKey("organizations.id"), index=True)
    team_id: Mapped[str | None] = mapped_column(ForeignKey("teams.id"), index=True)
    slug: Mapped[str] = mapped_column(String(64))
    name: Mapped[str] = mapped_column(String(255))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))


class EndUser(Base):
    """A caller's own user (``user`` / ``safety_identifier`` / ``x-tollway-end-user``), per org."""

    __tablename__ = "end_users"
    __table_args__ = (UniqueConstraint("org_id", "external_id"),)

    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    org_id: Mapped[str] = mapped_column(ForeignKey("organizations.id"), index=True)
    external_id: Mapped[str] = mapped_column(String(256))
    name: Mapped[str | None] = mapped_column(String(255))
    email: Mapped[str | None] = mapped_column(String(320))
    blocked: Mapped[bool] = mapped_column(Boolean, default=False)
    meta: Mapped[dict[str, Any]] = mapped_column("metadata", JSONType)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))


class ApiKey(Base):
    """A virtual key. Only ``key_hash`` (sha256 hex of the full key) is stored, never the key."""

    __tablename__ = "api_keys"

    id: Mapped[str] = mapped_column(String(32), primary_key=True)  # the lookup id
    name: Mapped[str] = mapped_column(String(255))
    environment: Mapped[str] = mapped_column(String(8))  # live | test
    key_hash: Mapped[str] = mapped_column(String(64))
    last4: Mapped[str] = mapped_column(String(4))
    org_id: Mapped[str] = mapped_column(ForeignKey("organizations.id"), index=True)
    team_id: Mapped[str | None] = mapped_column(ForeignKey("teams.id"), index=True)
    project_id: Mapped[str | None] = mapped_column(ForeignKey("projects.id"), index=True)
    end_user_id: Mapped[str | None] = mapped_column(String(32), index=True)
    scopes: Mapped[list[str]] = mapped_column(JSONType)
    allowed_models: Mapped[list[str]] = mapped_column(JSONType)
    status: Mapped[str] = mapped_column(String(16))  # active | revoked
    expires_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    last_used_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    revoked_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    rotated_from: Mapped[str | None] = mapped_column(String(32))


class ProviderCredential(Base):
    """A BYOK provider secret for an org (``project_id`` NULL) or one project, envelope-encrypted
    (:mod:`tollway.tenancy.crypto`): ``ciphertext`` under a per-credential data key, ``wrapped_key`` that
    data key under the master-key-derived key ``kid``. ``owner_id`` is the project id or the org id (the
    uniqueness of one credential per owner and provider)."""

    __tablename__ = "provider_credentials"
    __table_args__ = (UniqueConstraint("owner_id", "provider"),)

    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    org_id: Mapped[str] = mapped_column(ForeignKey("organizations.id"), index=True)
    project_id: Mapped[str | None] = mapped_column(ForeignKey("projects.id"), index=True)
    owner_id: Mapped[str] = mapped_column(String(32))
    provider: Mapped[str] = mapped_column(String(64))
    ciphertext: Mapped[bytes] = mapped_column(LargeBinary)
    wrapped_key: Mapped[bytes] = mapped_column(LargeBinary)
    kid: Mapped[str] = mapped_column(String(32))
    last4: Mapped[str] = mapped_column(String(4))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))


class PriceOverrideRow(Base):
    """A per-model price override set through the admin API (USD per 1M tokens), applied live on top
    of the config file's ``prices:``."""

    __tablename__ = "price_overrides"

    key: Mapped[str] = mapped_column(String(255), primary_key=True)  # <provider>/<model id>
    spec: Mapped[dict[str, Any]] = mapped_column(JSONType)
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))


class TenancyRevision(Base):
    """One row (id 1): bumped by every administrative write, polled by every gateway process."""

    __tablename__ = "tenancy_revision"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    revision: Mapped[int] = mapped_column(BigInteger)

"""The in-process picture of tenancy the request path decides from, loaded from the database in one go.

A :class:`Snapshot` is immutable once built and replaced as a whole (one attribute assignment), so a
request always sees one consistent revision. It holds what the hot path needs and nothing more: every key
(digest, principal, status, expiry), the ids of blocked end users, the sealed BYOK credentials (decrypted
by :mod:`tollway.tenancy.credentials`) and the admin price overrides.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, cast

from sqlalchemy import Table, select
from sqlalchemy.ext.asyncio import AsyncConnection

from tollway.core.context import Principal
from tollway.tenancy.models import (
    ApiKey,
    EndUser,
    Organization,
    PriceOverrideRow,
    Project,
    ProviderCredential,
    Team,
    aware,
)
from tollway.tenancy.revision import read_revision

_ORGS = cast(Table, Organization.__table__)
_TEAMS = cast(Table, Team.__table__)
_PROJECTS = cast(Table, Project.__table__)
_END_USERS = cast(Table, EndUser.__table__)
_KEYS = cast(Table, ApiKey.__table__)
_CREDENTIALS = cast(Table, ProviderCredential.__table__)
_PRICES = cast(Table, PriceOverrideRow.__table__)


@dataclass(slots=True, frozen=True)
class KeyEntry:
    digest: bytes  # sha256 of the full key
    principal: Principal
    revoked: bool
    expires_at: float | None  # epoch seconds


@dataclass(slots=True, frozen=True)
class SealedCredential:
    id: str
    org_id: str
    project_id: str | None
    owner_id: str
    provider: str
    ciphertext: bytes
    wrapped_key: bytes
    kid: str


@dataclass(slots=True, frozen=True)
class Snapshot:
    revision: int
    loaded: bool
    keys: dict[str, KeyEntry] = field(default_factory=dict)
    blocked_end_users: frozenset[str] = frozenset()
    credentials: tuple[SealedCredential, ...] = ()
    price_overrides: dict[str, dict[str, Any]] = field(default_factory=dict)


EMPTY = Snapshot(revision=-1, loaded=False)


async def load_snapshot(connection: AsyncConnection) -> Snapshot:
    """Read everything the request path needs. The revision is read first: data read after it is at least
    as new, and a change committed in between bumps the revision again, so it is picked up next poll."""
    revision = await read_revision(connection)
    orgs = {r.id: r.name for r in await connection.execute(select(_ORGS.c.id, _ORGS.c.name))}
    teams = {r.id: (r.org_id, r.name) for r in await connection.execute(select(_TEAMS.c.id, _TEAMS.c.org_id,
                                                                                  _TEAMS.c.name))}
    projects = {
        r.id: (r.org_id, r.team_id, r.name)
        for r in await connection.execute(select(_PROJECTS.c.id, _PROJECTS.c.org_id, _PROJECTS.c.team_id,
                                                 _PROJECTS.c.name))
    }
    bound = {
        r.id: r.external_id
        for r in await connection.execute(
            select(_END_USERS.c.id, _END_USERS.c.external_id).where(
                _END_USERS.c.id.in_(select(_KEYS.c.end_user_id).where(_KEYS.c.end_user_id.is_not(None)))
            )
        )
    }
    blocked = frozenset(
        r.id for r in await connection.execute(select(_END_USERS.c.id).where(_END_USERS.c.blocked.is_(True)))
    )
    keys: dict[str, KeyEntry] = {}
    for r in await connection.execute(select(_KEYS)):
        principal = _principal(r, orgs, teams, projects, bound)
        if principal is None:
            continue
        expires = aware(r.expires_at)
        keys[r.id] = KeyEntry(
            digest=bytes.fromhex(r.key_hash),
            principal=principal,
            revoked=r.status != "active",
            expires_at=None if expires is None else expires.timestamp(),
        )
    credentials = tuple(
        SealedCredential(r.id, r.org_id, r.project_id, r.owner_id, r.provider, bytes(r.ciphertext),
                         bytes(r.wrapped_key), r.kid)
        for r in await connection.execute(select(_CREDENTIALS))
    )
    prices = {r.key: dict(r.spec) for r in await connection.execute(select(_PRICES.c.key, _PRICES.c.spec))}
    return Snapshot(revision, True, keys, blocked, credentials, prices)


def _principal(
    r: Any,
    orgs: dict[str, str],
    teams: dict[str, tuple[str, str]],
    projects: dict[str, tuple[str, str | None, str]],
    bound: dict[str, str],
) -> Principal | None:
    """The key's place in the tree, or None when a link is gone (the key then does not authenticate)."""
    org_id, team_id, project_id = r.org_id, r.team_id, r.project_id
    project_name = None
    if project_id is not None:
        project = projects.get(project_id)
        if project is None:
            return None
        org_id, team_id, project_name = project
    team_name = None
    if team_id is not None:
        team = teams.get(team_id)
        if team is None:
            return None
        team_name = team[1]
    org_name = orgs.get(org_id)
    if org_name is None:
        return None
    end_user_external = None
    if r.end_user_id is not None:
        end_user_external = bound.get(r.end_user_id)
        if end_user_external is None:
            return None
    return Principal(
        key_id=r.id,
        key_name=r.name,
        org_id=org_id,
        org_name=org_name,
        team_id=team_id,
        team_name=team_name,
        project_id=project_id,
        project_name=project_name,
        scopes=frozenset(r.scopes),
        allowed_models=tuple(r.allowed_models),
        end_user_id=r.end_user_id,
        end_user_external_id=end_user_external,
    )

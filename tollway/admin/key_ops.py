"""Virtual keys: create (the secret is returned once), list, read, update, rotate, revoke, delete.

A key is scoped to an org, a team or a project (the most specific one given; the others, if given, must
agree), optionally bound to one end user of its org. Responses never contain the secret or its hash
after creation, only ``display`` (``tw_live_<id>_…<last 4>``).
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import delete, insert, select, update
from sqlalchemy.ext.asyncio import AsyncConnection

from tollway.admin.directory import END_USERS, KEYS, ORGS, PROJECTS, TEAMS, check_org
from tollway.admin.store import AdminStore, Caller, bad_request, conflict, not_found, row_dict
from tollway.tenancy import keys as keyfmt
from tollway.tenancy.keys import DEFAULT_SCOPES, SCOPES
from tollway.tenancy.models import aware, utcnow
from tollway.tenancy.models import end_user_id as derive_end_user_id

KEY_FIELDS = ("id", "name", "environment", "org_id", "team_id", "project_id", "end_user_id", "scopes",
              "allowed_models", "expires_at", "created_at", "last_used_at", "revoked_at", "rotated_from")


def key_json(row: Any) -> dict[str, Any]:
    out = row_dict(row, KEY_FIELDS)
    expires = aware(row.expires_at)
    if row.status != "active":
        out["status"] = row.status
    elif expires is not None and expires <= utcnow():
        out["status"] = "expired"
    else:
        out["status"] = "active"
    out["display"] = keyfmt.display(row.id, row.environment, row.last4)
    return out


def check_scopes(scopes: list[str]) -> list[str]:
    unknown = [s for s in scopes if s not in SCOPES]
    if unknown:
        raise bad_request(f"unknown scope(s) {', '.join(unknown)}; known: {', '.join(SCOPES)}", "scopes")
    return list(dict.fromkeys(scopes))


def check_models(models: list[str]) -> list[str]:
    for i, glob in enumerate(models):
        if not glob.strip() or len(glob) > 255:
            raise bad_request("a model glob must be 1-255 non-blank characters", f"allowed_models[{i}]")
    return list(dict.fromkeys(models))


def check_expiry(expires_at: datetime | None) -> datetime | None:
    if expires_at is None:
        return None
    if expires_at.tzinfo is None:
        raise bad_request("expires_at needs a timezone (e.g. 2026-01-31T00:00:00Z)", "expires_at")
    if expires_at <= utcnow():
        raise bad_request("expires_at must be in the future", "expires_at")
    return expires_at


async def _owner(conn: AsyncConnection, caller: Caller, org_id: str | None, team_id: str | None,
                 project_id: str | None) -> tuple[str, str | None, str | None]:
    """(org, team, project) of a new key from the most specific reference given."""
    resolved: tuple[str, str | None, str | None]
    if project_id is not None:
        project = (await conn.execute(select(PROJECTS).where(PROJECTS.c.id == project_id))).first()
        if project is None:
            raise not_found("project", project_id, "project_id")
        resolved = (project.org_id, project.team_id, project_id)
    elif team_id is not None:
        team = (await conn.execute(select(TEAMS).where(TEAMS.c.id == team_id))).first()
        if team is None:
            raise not_found("team", team_id, "team_id")
        resolved = (team.org_id, team_id, None)
    elif org_id is not None:
        if (await conn.execute(select(ORGS.c.id).where(ORGS.c.id == org_id))).first() is None:
            raise not_found("organization", org_id, "org_id")
        resolved = (org_id, None, None)
    else:
        raise bad_request("a key needs org_id, team_id or project_id", "project_id", "missing_required_parameter")
    check_org(caller, resolved[0])
    if org_id is not None and org_id != resolved[0]:
        raise bad_request(f"organization {org_id!r} does not contain the key's team/project", "org_id")
    if team_id is not None and project_id is not None and team_id != resolved[1]:
        raise bad_request(f"project {project_id!r} is not in team {team_id!r}", "team_id")
    return resolved


async def _bind_end_user(conn: AsyncConnection, org_id: str, eid: str | None, external_id: str | None) -> str | None:
    if eid is not None:
        row = (await conn.execute(select(END_USERS.c.org_id).where(END_USERS.c.id == eid))).first()
        if row is None or row.org_id != org_id:
            raise not_found("end user", eid, "end_user_id")
        return eid
    if external_id is None:
        return None
    eid = derive_end_user_id(org_id, external_id)
    if (await conn.execute(select(END_USERS.c.id).where(END_USERS.c.id == eid))).first() is None:
        await conn.execute(insert(END_USERS).values(id=eid, org_id=org_id, external_id=external_id, name=None,
                                                    email=None, blocked=False, metadata={}, created_at=utcnow()))
    return eid


async def create_key(
    store: AdminStore,
    caller: Caller,
    *,
    name: str,
    org_id: str | None = None,
    team_id: str | None = None,
    project_id: str | None = None,
    scopes: list[str] | None = None,
    allowed_models: list[str] | None = None,
    expires_at: datetime | None = None,
    environment: str = "live",
    end_user_id: str | None = None,
    end_user_external_id: str | None = None,
) -> dict[str, Any]:
    """Create a key; the returned dict carries the plain key under ``key`` (shown once)."""
    scope_list = check_scopes(list(DEFAULT_SCOPES) if scopes is None else scopes)
    models = check_models(allowed_models or [])
    expires_at = check_expiry(expires_at)
    new = keyfmt.generate(environment)
    async with store.write() as conn:
        org, team, project = await _owner(conn, caller, org_id, team_id, project_id)
        bound = await _bind_end_user(conn, org, end_user_id, end_user_external_id)
        await conn.execute(insert(KEYS).values(
            id=new.lookup_id, name=name, environment=environment, key_hash=new.digest_hex, last4=new.last4,
            org_id=org, team_id=team, project_id=project, end_user_id=bound, scopes=scope_list,
            allowed_models=models, status="active", expires_at=expires_at, created_at=utcnow()))
    out = await get_key(store, caller, new.lookup_id)
    out["key"] = new.plain
    return out


async def _row(conn: AsyncConnection, caller: Caller, key_id: str) -> Any:
    row = (await conn.execute(select(KEYS).where(KEYS.c.id == key_id))).first()
    if row is None:
        raise not_found("API key", key_id)
    check_org(caller, row.org_id, None, "API key", key_id)
    return row


async def get_key(store: AdminStore, caller: Caller, key_id: str) -> dict[str, Any]:
    async with store.read() as conn:
        return key_json(await _row(conn, caller, key_id))


async def list_keys(store: AdminStore, caller: Caller, *, org_id: str | None = None, team_id: str | None = None,
                    project_id: str | None = None, status: str | None = None) -> list[dict[str, Any]]:
    query = select(KEYS).order_by(KEYS.c.created_at, KEYS.c.id)
    for column, wanted in ((KEYS.c.org_id, org_id), (KEYS.c.org_id, caller.org_id), (KEYS.c.team_id, team_id),
                           (KEYS.c.project_id, project_id)):
        if wanted is not None:
            query = query.where(column == wanted)
    async with store.read() as conn:
        found = [key_json(r) for r in await conn.execute(query)]
    return [k for k in found if status is None or k["status"] == status]


async def update_key(store: AdminStore, caller: Caller, key_id: str, changes: dict[str, Any]) -> dict[str, Any]:
    if "scopes" in changes:
        changes["scopes"] = check_scopes(changes["scopes"])
    if "allowed_models" in changes:
        changes["allowed_models"] = check_models(changes["allowed_models"] or [])
    if changes.get("expires_at") is not None:
        changes["expires_at"] = check_expiry(changes["expires_at"])
    async with store.write() as conn:
        await _row(conn, caller, key_id)
        if changes:
            await conn.execute(update(KEYS).where(KEYS.c.id == key_id).values(changes))
    return await get_key(store, caller, key_id)


async def revoke_key(store: AdminStore, caller: Caller, key_id: str) -> dict[str, Any]:
    async with store.write() as conn:
        row = await _row(conn, caller, key_id)
        if row.status == "active":
            await conn.execute(update(KEYS).where(KEYS.c.id == key_id).values(status="revoked",
                                                                               revoked_at=utcnow()))
    return await get_key(store, caller, key_id)


async def rotate_key(store: AdminStore, caller: Caller, key_id: str) -> dict[str, Any]:
    """A new key with the old one's settings (returned with its secret, once); the old one is revoked in
    the same transaction."""
    new = None
    async with store.write() as conn:
        row = await _row(conn, caller, key_id)
        if row.status != "active":
            raise conflict(f"API key {key_id!r} is revoked; create a new key instead.", code="key_revoked")
        new = keyfmt.generate(row.environment)
        now = utcnow()
        await conn.execute(insert(KEYS).values(
            id=new.lookup_id, name=row.name, environment=row.environment, key_hash=new.digest_hex, last4=new.last4,
            org_id=row.org_id, team_id=row.team_id, project_id=row.project_id, end_user_id=row.end_user_id,
            scopes=row.scopes, allowed_models=row.allowed_models, status="active", expires_at=row.expires_at,
            created_at=now, rotated_from=key_id))
        await conn.execute(update(KEYS).where(KEYS.c.id == key_id).values(status="revoked", revoked_at=now))
    out = await get_key(store, caller, new.lookup_id)
    out["key"] = new.plain
    return out


async def delete_key(store: AdminStore, caller: Caller, key_id: str) -> None:
    async with store.write() as conn:
        await _row(conn, caller, key_id)
        await conn.execute(delete(KEYS).where(KEYS.c.id == key_id))

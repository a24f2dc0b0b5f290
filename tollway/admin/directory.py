"""Organizations, teams, projects and end users: create, read, update, delete (admin API and CLI).

Deleting something that still has children (a team with projects or keys, a project with keys or
credentials, an org with anything, an end user bound to keys) is a 409 unless ``cascade`` is set, which
deletes the children too. References accept an id or a slug path (``acme``, ``acme/search``) for the CLI.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import delete, func, insert, or_, select, update
from sqlalchemy.ext.asyncio import AsyncConnection

from tollway.admin.store import AdminStore, Caller, bad_request, conflict, forbidden, not_found, row_dict
from tollway.tenancy.models import (
    ApiKey,
    EndUser,
    Organization,
    Project,
    ProviderCredential,
    Team,
    end_user_id,
    new_id,
    table,
    utcnow,
)

ORGS, TEAMS, PROJECTS = table(Organization), table(Team), table(Project)
END_USERS, KEYS, CREDENTIALS = table(EndUser), table(ApiKey), table(ProviderCredential)

ORG_FIELDS = ("id", "slug", "name", "created_at")
TEAM_FIELDS = ("id", "org_id", "slug", "name", "created_at")
PROJECT_FIELDS = ("id", "org_id", "team_id", "slug", "name", "created_at")
END_USER_FIELDS = ("id", "org_id", "external_id", "name", "email", "blocked", "created_at")


def _end_user_json(row: Any) -> dict[str, Any]:
    out = row_dict(row, END_USER_FIELDS)
    out["metadata"] = row._mapping["metadata"]
    return out


def check_org(caller: Caller, org_id: str, param: str | None = "org_id", kind: str = "organization",
              ident: str | None = None) -> None:
    """A caller limited to one org sees nothing outside it (404, as if it did not exist)."""
    if caller.org_id is not None and caller.org_id != org_id:
        raise not_found(kind, ident or org_id, param)


async def _one(conn: AsyncConnection, tbl: Any, ident: str, kind: str, param: str | None = None) -> Any:
    row = (await conn.execute(select(tbl).where(tbl.c.id == ident))).first()
    if row is None:
        raise not_found(kind, ident, param)
    return row


async def _count(conn: AsyncConnection, tbl: Any, *where: Any) -> int:
    return int((await conn.execute(select(func.count()).select_from(tbl).where(*where))).scalar_one())


async def _slug_free(conn: AsyncConnection, tbl: Any, kind: str, slug: str, *where: Any) -> None:
    if await _count(conn, tbl, tbl.c.slug == slug, *where):
        raise conflict(f"A {kind} with slug {slug!r} already exists.", "slug", "duplicate_slug")


def _blockers(counts: dict[str, int]) -> str:
    return ", ".join(f"{n} {what}" for what, n in counts.items() if n)


# ---- references (CLI) ------------------------------------------------------------------------------


async def resolve_org(conn: AsyncConnection, ref: str) -> Any:
    row = (await conn.execute(select(ORGS).where(or_(ORGS.c.id == ref, ORGS.c.slug == ref)))).first()
    if row is None:
        raise not_found("organization", ref, "org")
    return row


async def _resolve_child(conn: AsyncConnection, tbl: Any, kind: str, ref: str) -> Any:
    if "/" in ref:
        org_ref, _, slug = ref.partition("/")
        org = await resolve_org(conn, org_ref)
        row = (await conn.execute(select(tbl).where(tbl.c.org_id == org.id, tbl.c.slug == slug))).first()
    else:
        row = (await conn.execute(select(tbl).where(tbl.c.id == ref))).first()
    if row is None:
        raise not_found(kind, ref, kind)
    return row


async def resolve_team(conn: AsyncConnection, ref: str) -> Any:
    return await _resolve_child(conn, TEAMS, "team", ref)


async def resolve_project(conn: AsyncConnection, ref: str) -> Any:
    return await _resolve_child(conn, PROJECTS, "project", ref)


# ---- organizations -----------------------------------------------------------------------------------


async def list_orgs(store: AdminStore, caller: Caller) -> list[dict[str, Any]]:
    query = select(ORGS).order_by(ORGS.c.created_at, ORGS.c.id)
    if caller.org_id is not None:
        query = query.where(ORGS.c.id == caller.org_id)
    async with store.read() as conn:
        return [row_dict(r, ORG_FIELDS) for r in await conn.execute(query)]


async def create_org(store: AdminStore, caller: Caller, slug: str, name: str) -> dict[str, Any]:
    if not caller.is_master:
        raise forbidden("Only the master key can create organizations.")
    org_id = new_id("org")
    async with store.write(f"An organization with slug {slug!r} already exists.", "slug") as conn:
        await _slug_free(conn, ORGS, "organization", slug)
        await conn.execute(insert(ORGS).values(id=org_id, slug=slug, name=name, created_at=utcnow()))
    return await get_org(store, caller, org_id)


async def get_org(store: AdminStore, caller: Caller, org_id: str) -> dict[str, Any]:
    check_org(caller, org_id, None, "organization", org_id)
    async with store.read() as conn:
        return row_dict(await _one(conn, ORGS, org_id, "organization"), ORG_FIELDS)


async def update_org(store: AdminStore, caller: Caller, org_id: str, changes: dict[str, Any]) -> dict[str, Any]:
    check_org(caller, org_id, None, "organization", org_id)
    async with store.write("An organization with that slug already exists.", "slug") as conn:
        await _one(conn, ORGS, org_id, "organization")
        if "slug" in changes:
            await _slug_free(conn, ORGS, "organization", changes["slug"], ORGS.c.id != org_id)
        if changes:
            await conn.execute(update(ORGS).where(ORGS.c.id == org_id).values(changes))
    return await get_org(store, caller, org_id)


async def delete_org(store: AdminStore, caller: Caller, org_id: str, cascade: bool) -> None:
    if not caller.is_master:
        raise forbidden("Only the master key can delete organizations.")
    async with store.write() as conn:
        await _one(conn, ORGS, org_id, "organization")
        counts = {what: await _count(conn, tbl, tbl.c.org_id == org_id) for what, tbl in (
            ("teams", TEAMS), ("projects", PROJECTS), ("keys", KEYS), ("end users", END_USERS),
            ("credentials", CREDENTIALS))}
        if any(counts.values()) and not cascade:
            raise conflict(f"The organization still has {_blockers(counts)}; delete them first or pass "
                           "?cascade=true.", code="has_children")
        for tbl in (KEYS, CREDENTIALS, END_USERS, PROJECTS, TEAMS):
            await conn.execute(delete(tbl).where(tbl.c.org_id == org_id))
        await conn.execute(delete(ORGS).where(ORGS.c.id == org_id))


# ---- teams -------------------------------------------------------------------------------------------


async def list_teams(store: AdminStore, caller: Caller, org_id: str | None = None) -> list[dict[str, Any]]:
    query = select(TEAMS).order_by(TEAMS.c.created_at, TEAMS.c.id)
    for wanted in (org_id, caller.org_id):
        if wanted is not None:
            query = query.where(TEAMS.c.org_id == wanted)
    async with store.read() as conn:
        return [row_dict(r, TEAM_FIELDS) for r in await conn.execute(query)]


async def create_team(store: AdminStore, caller: Caller, org_id: str, slug: str, name: str) -> dict[str, Any]:
    check_org(caller, org_id)
    team_id = new_id("team")
    async with store.write(f"A team with slug {slug!r} already exists in this organization.", "slug") as conn:
        await _one(conn, ORGS, org_id, "organization", "org_id")
        await _slug_free(conn, TEAMS, "team", slug, TEAMS.c.org_id == org_id)
        await conn.execute(insert(TEAMS).values(id=team_id, org_id=org_id, slug=slug, name=name, created_at=utcnow()))
    return await get_team(store, caller, team_id)


async def get_team(store: AdminStore, caller: Caller, team_id: str) -> dict[str, Any]:
    async with store.read() as conn:
        row = await _one(conn, TEAMS, team_id, "team")
    check_org(caller, row.org_id, None, "team", team_id)
    return row_dict(row, TEAM_FIELDS)


async def update_team(store: AdminStore, caller: Caller, team_id: str, changes: dict[str, Any]) -> dict[str, Any]:
    async with store.write("A team with that slug already exists in this organization.", "slug") as conn:
        row = await _one(conn, TEAMS, team_id, "team")
        check_org(caller, row.org_id, None, "team", team_id)
        if "slug" in changes:
            await _slug_free(conn, TEAMS, "team", changes["slug"], TEAMS.c.org_id == row.org_id,
                             TEAMS.c.id != team_id)
        if changes:
            await conn.execute(update(TEAMS).where(TEAMS.c.id == team_id).values(changes))
    return await get_team(store, caller, team_id)


async def delete_team(store: AdminStore, caller: Caller, team_id: str, cascade: bool) -> None:
    async with store.write() as conn:
        row = await _one(conn, TEAMS, team_id, "team")
        check_org(caller, row.org_id, None, "team", team_id)
        project_ids = select(PROJECTS.c.id).where(PROJECTS.c.team_id == team_id)
        team_keys = or_(KEYS.c.team_id == team_id, KEYS.c.project_id.in_(project_ids))
        counts = {"projects": await _count(conn, PROJECTS, PROJECTS.c.team_id == team_id),
                  "keys": await _count(conn, KEYS, team_keys)}
        if any(counts.values()) and not cascade:
            raise conflict(f"The team still has {_blockers(counts)}; delete them first or pass ?cascade=true.",
                           code="has_children")
        await conn.execute(delete(KEYS).where(team_keys))
        await conn.execute(delete(CREDENTIALS).where(CREDENTIALS.c.project_id.in_(project_ids)))
        await conn.execute(delete(PROJECTS).where(PROJECTS.c.team_id == team_id))
        await conn.execute(delete(TEAMS).where(TEAMS.c.id == team_id))


# ---- projects ----------------------------------------------------------------------------------------


async def list_projects(store: AdminStore, caller: Caller, org_id: str | None = None,
                        team_id: str | None = None) -> list[dict[str, Any]]:
    query = select(PROJECTS).order_by(PROJECTS.c.created_at, PROJECTS.c.id)
    for wanted in (org_id, caller.org_id):
        if wanted is not None:
            query = query.where(PROJECTS.c.org_id == wanted)
    if team_id is not None:
        query = query.where(PROJECTS.c.team_id == team_id)
    async with store.read() as conn:
        return [row_dict(r, PROJECT_FIELDS) for r in await conn.execute(query)]


async def _project_parent(conn: AsyncConnection, caller: Caller, org_id: str | None,
                          team_id: str | None) -> tuple[str, str | None]:
    if team_id is not None:
        team = await _one(conn, TEAMS, team_id, "team", "team_id")
        check_org(caller, team.org_id, "team_id")
        if org_id is not None and org_id != team.org_id:
            raise bad_request(f"team {team_id!r} belongs to organization {team.org_id!r}, not {org_id!r}",
                              "team_id")
        return team.org_id, team_id
    if org_id is None:
        raise bad_request("a project needs org_id or team_id", "org_id", "missing_required_parameter")
    check_org(caller, org_id)
    await _one(conn, ORGS, org_id, "organization", "org_id")
    return org_id, None


async def create_project(store: AdminStore, caller: Caller, slug: str, name: str, org_id: str | None = None,
                         team_id: str | None = None) -> dict[str, Any]:
    pid = new_id("proj")
    async with store.write(f"A project with slug {slug!r} already exists in this organization.", "slug") as conn:
        org_id, team_id = await _project_parent(conn, caller, org_id, team_id)
        await _slug_free(conn, PROJECTS, "project", slug, PROJECTS.c.org_id == org_id)
        await conn.execute(insert(PROJECTS).values(id=pid, org_id=org_id, team_id=team_id, slug=slug, name=name,
                                                   created_at=utcnow()))
    return await get_project(store, caller, pid)


async def get_project(store: AdminStore, caller: Caller, project_id: str) -> dict[str, Any]:
    async with store.read() as conn:
        row = await _one(conn, PROJECTS, project_id, "project")
    check_org(caller, row.org_id, None, "project", project_id)
    return row_dict(row, PROJECT_FIELDS)


async def update_project(store: AdminStore, caller: Caller, project_id: str,
                         changes: dict[str, Any]) -> dict[str, Any]:
    async with store.write("A project with that slug already exists in this organization.", "slug") as conn:
        row = await _one(conn, PROJECTS, project_id, "project")
        check_org(caller, row.org_id, None, "project", project_id)
        if "slug" in changes:
            await _slug_free(conn, PROJECTS, "project", changes["slug"], PROJECTS.c.org_id == row.org_id,
                             PROJECTS.c.id != project_id)
        if changes.get("team_id") is not None:
            await _project_parent(conn, caller, row.org_id, changes["team_id"])
        if changes:
            await conn.execute(update(PROJECTS).where(PROJECTS.c.id == project_id).values(changes))
            if "team_id" in changes:  # keys of the project follow it
                await conn.execute(update(KEYS).where(KEYS.c.project_id == project_id)
                                   .values(team_id=changes["team_id"]))
    return await get_project(store, caller, project_id)


async def delete_project(store: AdminStore, caller: Caller, project_id: str, cascade: bool) -> None:
    async with store.write() as conn:
        row = await _one(conn, PROJECTS, project_id, "project")
        check_org(caller, row.org_id, None, "project", project_id)
        counts = {"keys": await _count(conn, KEYS, KEYS.c.project_id == project_id),
                  "credentials": await _count(conn, CREDENTIALS, CREDENTIALS.c.project_id == project_id)}
        if any(counts.values()) and not cascade:
            raise conflict(f"The project still has {_blockers(counts)}; delete them first or pass "
                           "?cascade=true.", code="has_children")
        await conn.execute(delete(KEYS).where(KEYS.c.project_id == project_id))
        await conn.execute(delete(CREDENTIALS).where(CREDENTIALS.c.project_id == project_id))
        await conn.execute(delete(PROJECTS).where(PROJECTS.c.id == project_id))


# ---- end users ---------------------------------------------------------------------------------------


async def list_end_users(store: AdminStore, caller: Caller, org_id: str | None = None,
                         external_id: str | None = None, blocked: bool | None = None, limit: int = 100,
                         offset: int = 0) -> list[dict[str, Any]]:
    query = select(END_USERS).order_by(END_USERS.c.created_at, END_USERS.c.id).limit(limit).offset(offset)
    for wanted in (org_id, caller.org_id):
        if wanted is not None:
            query = query.where(END_USERS.c.org_id == wanted)
    if external_id is not None:
        query = query.where(END_USERS.c.external_id == external_id)
    if blocked is not None:
        query = query.where(END_USERS.c.blocked.is_(blocked))
    async with store.read() as conn:
        return [_end_user_json(r) for r in await conn.execute(query)]


async def create_end_user(store: AdminStore, caller: Caller, org_id: str, external_id: str, *,
                          name: str | None = None, email: str | None = None, blocked: bool = False,
                          metadata: dict[str, Any] | None = None) -> dict[str, Any]:
    check_org(caller, org_id)
    eid = end_user_id(org_id, external_id)
    message = f"End user {external_id!r} already exists in this organization (id {eid})."
    async with store.write(message, "external_id") as conn:
        await _one(conn, ORGS, org_id, "organization", "org_id")
        if await _count(conn, END_USERS, END_USERS.c.id == eid):
            raise conflict(message, "external_id", "duplicate_end_user")
        await conn.execute(insert(END_USERS).values(
            id=eid, org_id=org_id, external_id=external_id, name=name, email=email, blocked=blocked,
            metadata=metadata or {}, created_at=utcnow()))
    return await get_end_user(store, caller, eid)


async def get_end_user(store: AdminStore, caller: Caller, eid: str) -> dict[str, Any]:
    async with store.read() as conn:
        row = await _one(conn, END_USERS, eid, "end user")
    check_org(caller, row.org_id, None, "end user", eid)
    return _end_user_json(row)


async def update_end_user(store: AdminStore, caller: Caller, eid: str, changes: dict[str, Any]) -> dict[str, Any]:
    async with store.write() as conn:
        row = await _one(conn, END_USERS, eid, "end user")
        check_org(caller, row.org_id, None, "end user", eid)
        if changes:
            await conn.execute(update(END_USERS).where(END_USERS.c.id == eid).values(changes))
    return await get_end_user(store, caller, eid)


async def delete_end_user(store: AdminStore, caller: Caller, eid: str, cascade: bool) -> None:
    async with store.write() as conn:
        row = await _one(conn, END_USERS, eid, "end user")
        check_org(caller, row.org_id, None, "end user", eid)
        bound = await _count(conn, KEYS, KEYS.c.end_user_id == eid)
        if bound and not cascade:
            raise conflict(f"{bound} keys are bound to this end user; delete them first or pass ?cascade=true.",
                           code="has_children")
        await conn.execute(delete(KEYS).where(KEYS.c.end_user_id == eid))
        await conn.execute(delete(END_USERS).where(END_USERS.c.id == eid))

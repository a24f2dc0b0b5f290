"""Admin routes for the tenancy tree: organizations, teams, projects, end users."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Query, Response

from tollway.admin import directory as d
from tollway.admin import schemas as s
from tollway.admin.deps import Context, Reader, Writer

router = APIRouter()
Cascade = Query(default=False, description="Also delete everything underneath.")


def listing(data: list[dict[str, Any]]) -> dict[str, Any]:
    return {"object": "list", "data": data}


# ---- organizations ---------------------------------------------------------------------------------


@router.get("/orgs", response_model=s.ListOf[s.Org], tags=["organizations"])
async def list_orgs(ctx: Context, caller: Reader) -> dict[str, Any]:
    return listing(await d.list_orgs(ctx.store, caller))


@router.post("/orgs", response_model=s.Org, status_code=201, tags=["organizations"])
async def create_org(body: s.OrgCreate, ctx: Context, caller: Writer) -> dict[str, Any]:
    return await d.create_org(ctx.store, caller, body.slug, body.name)


@router.get("/orgs/{org_id}", response_model=s.Org, tags=["organizations"])
async def get_org(org_id: str, ctx: Context, caller: Reader) -> dict[str, Any]:
    return await d.get_org(ctx.store, caller, org_id)


@router.patch("/orgs/{org_id}", response_model=s.Org, tags=["organizations"])
async def update_org(org_id: str, body: s.OrgUpdate, ctx: Context, caller: Writer) -> dict[str, Any]:
    return await d.update_org(ctx.store, caller, org_id, s.changes(body))


@router.delete("/orgs/{org_id}", status_code=204, tags=["organizations"])
async def delete_org(org_id: str, ctx: Context, caller: Writer, cascade: bool = Cascade) -> Response:
    await d.delete_org(ctx.store, caller, org_id, cascade)
    return Response(status_code=204)


# ---- teams -----------------------------------------------------------------------------------------


@router.get("/teams", response_model=s.ListOf[s.Team], tags=["teams"])
async def list_teams(ctx: Context, caller: Reader, org_id: str | None = None) -> dict[str, Any]:
    return listing(await d.list_teams(ctx.store, caller, org_id))


@router.post("/teams", response_model=s.Team, status_code=201, tags=["teams"])
async def create_team(body: s.TeamCreate, ctx: Context, caller: Writer) -> dict[str, Any]:
    return await d.create_team(ctx.store, caller, body.org_id, body.slug, body.name)


@router.get("/teams/{team_id}", response_model=s.Team, tags=["teams"])
async def get_team(team_id: str, ctx: Context, caller: Reader) -> dict[str, Any]:
    return await d.get_team(ctx.store, caller, team_id)


@router.patch("/teams/{team_id}", response_model=s.Team, tags=["teams"])
async def update_team(team_id: str, body: s.TeamUpdate, ctx: Context, caller: Writer) -> dict[str, Any]:
    return await d.update_team(ctx.store, caller, team_id, s.changes(body))


@router.delete("/teams/{team_id}", status_code=204, tags=["teams"])
async def delete_team(team_id: str, ctx: Context, caller: Writer, cascade: bool = Cascade) -> Response:
    await d.delete_team(ctx.store, caller, team_id, cascade)
    return Response(status_code=204)


# ---- projects --------------------------------------------------------------------------------------


@router.get("/projects", response_model=s.ListOf[s.Project], tags=["projects"])
async def list_projects(ctx: Context, caller: Reader, org_id: str | None = None,
                        team_id: str | None = None) -> dict[str, Any]:
    return listing(await d.list_projects(ctx.store, caller, org_id, team_id))


@router.post("/projects", response_model=s.Project, status_code=201, tags=["projects"])
async def create_project(body: s.ProjectCreate, ctx: Context, caller: Writer) -> dict[str, Any]:
    return await d.create_project(ctx.store, caller, body.slug, body.name, body.org_id, body.team_id)


@router.get("/projects/{project_id}", response_model=s.Project, tags=["projects"])
async def get_project(project_id: str, ctx: Context, caller: Reader) -> dict[str, Any]:
    return await d.get_project(ctx.store, caller, project_id)


@router.patch("/projects/{project_id}", response_model=s.Project, tags=["projects"])
async def update_project(project_id: str, body: s.ProjectUpdate, ctx: Context, caller: Writer) -> dict[str, Any]:
    return await d.update_project(ctx.store, caller, project_id, s.changes(body, frozenset({"team_id"})))


@router.delete("/projects/{project_id}", status_code=204, tags=["projects"])
async def delete_project(project_id: str, ctx: Context, caller: Writer, cascade: bool = Cascade) -> Response:
    await d.delete_project(ctx.store, caller, project_id, cascade)
    return Response(status_code=204)


# ---- end users -------------------------------------------------------------------------------------


@router.get("/end-users", response_model=s.ListOf[s.EndUser], tags=["end users"])
async def list_end_users(ctx: Context, caller: Reader, org_id: str | None = None, external_id: str | None = None,
                         blocked: bool | None = None, limit: int = Query(default=100, ge=1, le=1000),
                         offset: int = Query(default=0, ge=0)) -> dict[str, Any]:
    return listing(await d.list_end_users(ctx.store, caller, org_id, external_id, blocked, limit, offset))


@router.post("/end-users", response_model=s.EndUser, status_code=201, tags=["end users"])
async def create_end_user(body: s.EndUserCreate, ctx: Context, caller: Writer) -> dict[str, Any]:
    return await d.create_end_user(ctx.store, caller, body.org_id, body.external_id, name=body.name,
                                   email=body.email, blocked=body.blocked, metadata=body.metadata)


@router.get("/end-users/{end_user_id}", response_model=s.EndUser, tags=["end users"])
async def get_end_user(end_user_id: str, ctx: Context, caller: Reader) -> dict[str, Any]:
    return await d.get_end_user(ctx.store, caller, end_user_id)


@router.patch("/end-users/{end_user_id}", response_model=s.EndUser, tags=["end users"])
async def update_end_user(end_user_id: str, body: s.EndUserUpdate, ctx: Context, caller: Writer) -> dict[str, Any]:
    return await d.update_end_user(ctx.store, caller, end_user_id, s.changes(body, frozenset({"name", "email"})))


@router.delete("/end-users/{end_user_id}", status_code=204, tags=["end users"])
async def delete_end_user(end_user_id: str, ctx: Context, caller: Writer, cascade: bool = Cascade) -> Response:
    await d.delete_end_user(ctx.store, caller, end_user_id, cascade)
    return Response(status_code=204)

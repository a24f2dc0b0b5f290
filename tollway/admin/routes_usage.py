"""Admin routes for usage: totals and cost from the ledger's daily rollups, grouped by any of org, team,
project, key, end user, model, provider and day; and the ledger's rows themselves. A virtual admin key
sees only its own organisation."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal
from typing import Annotated, Any

from fastapi import APIRouter, Query, Request

from tollway.admin.deps import Reader
from tollway.core.errors import GatewayError
from tollway.metering.ledger.query import UsageFilter, entries, usage

router = APIRouter(tags=["usage"])


def _ledger_engine(request: Request) -> Any:
    ledger = request.app.state.ledger
    if ledger is None:
        raise GatewayError(503, "the usage ledger is not running", type="server_error", code="ledger_unavailable")
    return ledger.engine


def _filters(caller_org: str | None, start: dt.date | None, end: dt.date | None, **dims: str | None) -> UsageFilter:
    if start is not None and end is not None and end < start:
        raise GatewayError(400, "'end' is before 'start'", param="end", code="invalid_value")
    org_id = dims.pop("org_id")
    if caller_org is not None:
        if org_id not in (None, caller_org):
            raise GatewayError(403, "an organisation's admin key sees only its own usage", type="permission_error",
                               param="org_id", code="insufficient_scope")
        org_id = caller_org
    return UsageFilter(start=start, end=end, org_id=org_id, **dims)


@router.get("/usage", summary="Usage totals (requests, tokens, cost) grouped by the given dimensions")
async def usage_report(
    request: Request,
    caller: Reader,
    group_by: Annotated[list[str] | None, Query(description="org, team, project, key, end_user, model, "
                                                            "provider, day; repeat or comma-separate")] = None,
    start: dt.date | None = None,
    end: dt.date | None = None,
    org_id: str | None = None,
    team_id: str | None = None,
    project_id: str | None = None,
    key_id: str | None = None,
    end_user_id: str | None = None,
    provider: str | None = None,
    model: str | None = None,
) -> Any:
    dims = [d.strip() for g in group_by or () for d in g.split(",") if d.strip()]
    filters = _filters(caller.org_id, start, end, org_id=org_id, team_id=team_id, project_id=project_id,
                       key_id=key_id, end_user_id=end_user_id, provider=provider, model=model)
    try:
        report = await usage(_ledger_engine(request), dims, filters)
    except ValueError as exc:
        raise GatewayError(400, str(exc), param="group_by", code="invalid_value") from exc
    return report.to_json()


@router.get("/usage/entries", summary="The ledger's rows, newest first")
async def usage_entries(
    request: Request,
    caller: Reader,
    start: dt.date | None = None,
    end: dt.date | None = None,
    org_id: str | None = None,
    team_id: str | None = None,
    project_id: str | None = None,
    key_id: str | None = None,
    end_user_id: str | None = None,
    provider: str | None = None,
    model: str | None = None,
    request_id: str | None = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
    before: str | None = None,
) -> Any:
    filters = _filters(caller.org_id, start, end, org_id=org_id, team_id=team_id, project_id=project_id,
                       key_id=key_id, end_user_id=end_user_id, provider=provider, model=model)
    try:
        rows = await entries(_ledger_engine(request), filters, request_id=request_id, limit=limit, before=before)
    except ValueError as exc:
        raise GatewayError(400, str(exc), param="before", code="invalid_value") from exc
    # money as exact decimal strings (JSON floats would round), times as ISO 8601
    data = [{k: format(v, "f") if isinstance(v, Decimal) else v.isoformat() if isinstance(v, dt.datetime) else v
             for k, v in row.items()} for row in rows]
    return {"object": "list", "data": data}

"""Admin API for budgets and rate limits (mounted under ``/admin/api`` by :func:`mount`).

* ``GET/POST /budgets``, ``GET/PATCH/DELETE /budgets/{id}``, ``GET /budgets/{id}/status?entity_id=``
* ``GET/POST /rate-limits``, ``GET/PATCH/DELETE /rate-limits/{id}``, ``GET /rate-limits/{id}/status``
* ``GET /limits/stats`` (counters of the guard, backend health); ``POST /limits/reconcile?horizon_s=``
  (reconcile spend with the ledger now)

Amounts are exact decimal strings (``"10.50"``; JSON numbers are accepted on input). A negative, malformed
or unknown field is a **400** whose ``param`` names the field. A rule's status (``spent``, ``reserved``,
``remaining``, ``resets_at``; requests / tokens / concurrent in the window) is included when the rule names
one entity; a ``*`` rule reports one entity at a time through ``/status?entity_id=``.

Authorization follows the rest of the admin API: the master key sees everything; a virtual key with the
``admin`` scope (``admin:read`` for GET) only rules on entities of its own organization, and never ``*``
or model rules.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

import orjson
from fastapi import APIRouter, FastAPI, Query, Request, Response
from sqlalchemy import select

from tollway.admin.deps import Context, Reader, Writer
from tollway.admin.store import Caller
from tollway.core.errors import GatewayError
from tollway.limits.backend import WINDOW_MS, BackendUnavailable
from tollway.limits.money import plain
from tollway.limits.reconcile import SETTLE_HORIZON_S
from tollway.limits.rules import (
    BUDGET_SCOPES,
    RATE_SCOPES,
    WILDCARD,
    BudgetRule,
    RateRule,
    RuleError,
    parse_budget,
    parse_rate,
    update_budget,
    update_rate,
)
from tollway.limits.store import Stored
from tollway.storage.engine import DB_ERRORS
from tollway.storage.writer import describe
from tollway.tenancy.models import ApiKey, EndUser, Organization, Project, Team, table

if TYPE_CHECKING:
    from tollway.admin.deps import AdminContext
    from tollway.limits.service import Limits

router = APIRouter()
_OWNERS = {"org": table(Organization), "team": table(Team), "project": table(Project), "key": table(ApiKey),
           "end_user": table(EndUser)}


def mount(app: FastAPI, limits: Limits | None, prefix: str) -> None:
    """Include the router in the admin app; ``limits`` None (no runtime) answers 503."""
    app.state.limits = limits
    app.include_router(router, prefix=prefix)


# ---- helpers -------------------------------------------------------------------------------------


def _service(request: Request) -> Limits:
    limits: Limits | None = getattr(request.app.state, "limits", None)
    if limits is None:
        raise GatewayError(503, "budgets and rate limits are not running", type="server_error",
                           code="limits_unavailable")
    return limits


def _bad(exc: RuleError) -> GatewayError:
    return GatewayError(400, f"Invalid {exc.field}: {exc.message}.", param=exc.field, code="invalid_value")


def _db_down(exc: BaseException) -> GatewayError:
    return GatewayError(503, f"the database is unavailable ({describe(exc)})", type="server_error",
                        code="database_unavailable")


def _not_found(kind: str, ident: str) -> GatewayError:
    return GatewayError(404, f"No {kind} with id {ident!r}.", type="not_found_error", code="not_found")


async def _body(request: Request) -> dict[str, Any]:
    raw = await request.body()
    try:
        data = orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        raise GatewayError(400, "Request body is not valid JSON.", code="invalid_json") from exc
    if not isinstance(data, dict):
        raise GatewayError(400, "Request body must be a JSON object.", code="invalid_json")
    return data


async def _check_entity(ctx: AdminContext, caller: Caller, scope: str, scope_id: str) -> None:
    """The entity exists and the caller may manage it (an org-bound key: only inside its org)."""
    if scope_id == WILDCARD or scope == "model":
        if not caller.is_master:
            raise GatewayError(403, f"Only the master key manages {'*' if scope_id == WILDCARD else 'model'} rules.",
                               type="permission_error", code="insufficient_scope", param="scope_id")
        return
    owners = _OWNERS[scope]
    column = owners.c.id if scope == "org" else owners.c.org_id
    async with ctx.store.read() as conn:
        row = (await conn.execute(select(column).where(owners.c.id == scope_id))).first()
    if row is None or (caller.org_id is not None and row[0] != caller.org_id):
        raise GatewayError(404, f"No {scope.replace('_', ' ')} with id {scope_id!r}.", type="not_found_error",
                           code="not_found", param="scope_id")


async def _visible(ctx: AdminContext, caller: Caller, rule: BudgetRule | RateRule) -> bool:
    if caller.is_master:
        return True
    try:
        await _check_entity(ctx, caller, rule.scope, rule.scope_id)
    except GatewayError:
        return False
    return True


def _budget_json(stored: Stored[BudgetRule]) -> dict[str, Any]:
    rule = stored.rule
    return {"id": rule.id, "object": "budget", "scope": rule.scope, "scope_id": rule.scope_id,
            "limit_usd": plain(rule.limit_usd), "period": rule.period,
            "alert_threshold": None if rule.alert_threshold is None else plain(rule.alert_threshold),
            "created_at": stored.created_at.isoformat(), "updated_at": stored.updated_at.isoformat()}


def _rate_json(stored: Stored[RateRule]) -> dict[str, Any]:
    rule = stored.rule
    return {"id": rule.id, "object": "rate_limit", "scope": rule.scope, "scope_id": rule.scope_id,
            "rpm": rule.rpm, "tpm": rule.tpm, "max_concurrent": rule.max_concurrent,
            "window_s": WINDOW_MS // 1000, "algorithm": "sliding_window_log",
            "created_at": stored.created_at.isoformat(), "updated_at": stored.updated_at.isoformat()}


def _scope_filter(scope: str | None, scopes: tuple[str, ...]) -> None:
    if scope is not None and scope not in scopes:
        raise GatewayError(400, f"Invalid scope: must be one of {', '.join(scopes)}.", param="scope",
                           code="invalid_value")


async def _status(limits: Limits, rule: BudgetRule | RateRule, entity_id: str | None) -> dict[str, Any] | None:
    entity = rule.scope_id if entity_id is None else entity_id
    if entity == WILDCARD:
        return None
    try:
        if isinstance(rule, BudgetRule):
            return await limits.guard.budget_status(rule, entity)
        return await limits.guard.rate_status(rule, entity)
    except BackendUnavailable as exc:
        raise GatewayError(503, f"limit counters are unavailable ({exc})", type="server_error",
                           code="limits_unavailable") from exc


async def _with_status(limits: Limits, rule: BudgetRule | RateRule, body: dict[str, Any]) -> dict[str, Any]:
    try:
        body["status"] = await _status(limits, rule, None)
    except GatewayError as err:
        body["status"] = None
        body["status_error"] = err.message
    return body


# ---- budgets -------------------------------------------------------------------------------------


@router.get("/budgets", tags=["budgets"])
async def list_budgets(request: Request, ctx: Context, caller: Reader, scope: str | None = None,
                       scope_id: str | None = None) -> dict[str, Any]:
    _scope_filter(scope, BUDGET_SCOPES)
    limits = _service(request)
    try:
        rows = await limits.store.budgets(scope, scope_id)
    except DB_ERRORS as exc:
        raise _db_down(exc) from exc
    return {"object": "list", "data": [_budget_json(r) for r in rows if await _visible(ctx, caller, r.rule)]}


@router.post("/budgets", status_code=201, tags=["budgets"])
async def create_budget(request: Request, ctx: Context, caller: Writer) -> dict[str, Any]:
    limits = _service(request)
    try:
        rule = parse_budget(await _body(request))
    except RuleError as exc:
        raise _bad(exc) from exc
    await _check_entity(ctx, caller, rule.scope, rule.scope_id)
    try:
        stored = await limits.store.create_budget(rule)
    except DB_ERRORS as exc:
        raise _db_down(exc) from exc
    await limits.adopt(stored.rule)  # before this process uses it: no settlement can race the first count
    await limits.changed()
    return await _with_status(limits, stored.rule, _budget_json(stored))


async def _budget(limits: Limits, ctx: AdminContext, caller: Caller, budget_id: str) -> Stored[BudgetRule]:
    try:
        stored = await limits.store.budget(budget_id)
    except DB_ERRORS as exc:
        raise _db_down(exc) from exc
    if stored is None or not await _visible(ctx, caller, stored.rule):
        raise _not_found("budget", budget_id)
    return stored


@router.get("/budgets/{budget_id}", tags=["budgets"])
async def get_budget(budget_id: str, request: Request, ctx: Context, caller: Reader) -> dict[str, Any]:
    limits = _service(request)
    stored = await _budget(limits, ctx, caller, budget_id)
    return await _with_status(limits, stored.rule, _budget_json(stored))


@router.get("/budgets/{budget_id}/status", tags=["budgets"])
async def budget_status(budget_id: str, request: Request, ctx: Context, caller: Reader,
                        entity_id: str | None = None) -> dict[str, Any]:
    limits = _service(request)
    stored = await _budget(limits, ctx, caller, budget_id)
    if stored.rule.scope_id == WILDCARD:
        if entity_id is None:
            raise GatewayError(400, "This budget applies to every entity of its scope: pass entity_id.",
                               param="entity_id", code="missing_required_parameter")
        if not caller.is_master:
            await _check_entity(ctx, caller, stored.rule.scope, entity_id)
    status = await _status(limits, stored.rule, entity_id if stored.rule.scope_id == WILDCARD else None)
    return {"object": "budget.status", "budget_id": budget_id, **(status or {})}


@router.patch("/budgets/{budget_id}", tags=["budgets"])
async def patch_budget(budget_id: str, request: Request, ctx: Context, caller: Writer) -> dict[str, Any]:
    limits = _service(request)
    stored = await _budget(limits, ctx, caller, budget_id)
    try:
        rule = update_budget(stored.rule, await _body(request))
    except RuleError as exc:
        raise _bad(exc) from exc
    try:
        if not await limits.store.update_budget(rule):
            raise _not_found("budget", budget_id)
    except DB_ERRORS as exc:
        raise _db_down(exc) from exc
    await limits.adopt(rule)
    await limits.changed()
    return await get_budget(budget_id, request, ctx, caller)


@router.delete("/budgets/{budget_id}", status_code=204, tags=["budgets"])
async def delete_budget(budget_id: str, request: Request, ctx: Context, caller: Writer) -> Response:
    limits = _service(request)
    await _budget(limits, ctx, caller, budget_id)
    try:
        await limits.store.delete_budget(budget_id)
    except DB_ERRORS as exc:
        raise _db_down(exc) from exc
    await limits.changed()
    return Response(status_code=204)


# ---- rate limits ---------------------------------------------------------------------------------


@router.get("/rate-limits", tags=["rate limits"])
async def list_rates(request: Request, ctx: Context, caller: Reader, scope: str | None = None,
                     scope_id: str | None = None) -> dict[str, Any]:
    _scope_filter(scope, RATE_SCOPES)
    limits = _service(request)
    try:
        rows = await limits.store.rates(scope, scope_id)
    except DB_ERRORS as exc:
        raise _db_down(exc) from exc
    return {"object": "list", "data": [_rate_json(r) for r in rows if await _visible(ctx, caller, r.rule)]}


@router.post("/rate-limits", status_code=201, tags=["rate limits"])
async def create_rate(request: Request, ctx: Context, caller: Writer) -> dict[str, Any]:
    limits = _service(request)
    try:
        rule = parse_rate(await _body(request))
    except RuleError as exc:
        raise _bad(exc) from exc
    await _check_entity(ctx, caller, rule.scope, rule.scope_id)
    try:
        stored = await limits.store.create_rate(rule)
    except DB_ERRORS as exc:
        raise _db_down(exc) from exc
    await limits.changed()
    return await _with_status(limits, stored.rule, _rate_json(stored))


async def _rate(limits: Limits, ctx: AdminContext, caller: Caller, rate_id: str) -> Stored[RateRule]:
    try:
        stored = await limits.store.rate(rate_id)
    except DB_ERRORS as exc:
        raise _db_down(exc) from exc
    if stored is None or not await _visible(ctx, caller, stored.rule):
        raise _not_found("rate limit", rate_id)
    return stored


@router.get("/rate-limits/{rate_id}", tags=["rate limits"])
async def get_rate(rate_id: str, request: Request, ctx: Context, caller: Reader) -> dict[str, Any]:
    limits = _service(request)
    stored = await _rate(limits, ctx, caller, rate_id)
    return await _with_status(limits, stored.rule, _rate_json(stored))


@router.get("/rate-limits/{rate_id}/status", tags=["rate limits"])
async def rate_status(rate_id: str, request: Request, ctx: Context, caller: Reader,
                      entity_id: str | None = None) -> dict[str, Any]:
    limits = _service(request)
    stored = await _rate(limits, ctx, caller, rate_id)
    if stored.rule.scope_id == WILDCARD and entity_id is None:
        raise GatewayError(400, "This rate limit applies to every entity of its scope: pass entity_id.",
                           param="entity_id", code="missing_required_parameter")
    status = await _status(limits, stored.rule, entity_id if stored.rule.scope_id == WILDCARD else None)
    return {"object": "rate_limit.status", "rate_limit_id": rate_id, **(status or {})}


@router.patch("/rate-limits/{rate_id}", tags=["rate limits"])
async def patch_rate(rate_id: str, request: Request, ctx: Context, caller: Writer) -> dict[str, Any]:
    limits = _service(request)
    stored = await _rate(limits, ctx, caller, rate_id)
    try:
        rule = update_rate(stored.rule, await _body(request))
    except RuleError as exc:
        raise _bad(exc) from exc
    try:
        if not await limits.store.update_rate(rule):
            raise _not_found("rate limit", rate_id)
    except DB_ERRORS as exc:
        raise _db_down(exc) from exc
    await limits.changed()
    return await get_rate(rate_id, request, ctx, caller)


@router.delete("/rate-limits/{rate_id}", status_code=204, tags=["rate limits"])
async def delete_rate(rate_id: str, request: Request, ctx: Context, caller: Writer) -> Response:
    limits = _service(request)
    await _rate(limits, ctx, caller, rate_id)
    try:
        await limits.store.delete_rate(rate_id)
    except DB_ERRORS as exc:
        raise _db_down(exc) from exc
    await limits.changed()
    return Response(status_code=204)


# ---- operations ----------------------------------------------------------------------------------


def _stats(limits: Limits) -> Mapping[str, Any]:
    backend = limits.backend
    out: dict[str, Any] = {"object": "limits.stats", "backend": backend.name,
                           "backend_down": bool(getattr(backend, "down", False)),
                           "backend_failures": int(getattr(backend, "failures", 0)),
                           "rules_revision": limits.rules.book.revision, "rules_loaded": limits.rules.book.loaded,
                           "in_flight": len(limits.guard.inflight), "reconcile_runs": limits.reconciler.runs,
                           "reconcile_raised": limits.reconciler.raised, **limits.guard.stats.to_json()}
    if limits.webhooks is not None:
        out["webhooks"] = {"delivered": limits.webhooks.delivered, "failed": limits.webhooks.failed,
                           "dropped": limits.webhooks.dropped}
    return out


@router.get("/limits/stats", tags=["budgets"])
async def stats(request: Request, ctx: Context, caller: Reader) -> Mapping[str, Any]:
    return _stats(_service(request))


@router.post("/limits/reconcile", tags=["budgets"])
async def reconcile(request: Request, ctx: Context, caller: Writer,
                    horizon_s: float = Query(default=SETTLE_HORIZON_S, ge=0, le=86400, description=(
                        "Leave out ledger rows younger than this (their settlement may still be in flight)."))
                    ) -> dict[str, Any]:
    if not caller.is_master:
        raise GatewayError(403, "Only the master key runs a reconciliation.", type="permission_error",
                           code="insufficient_scope")
    limits = _service(request)
    try:
        drifts = await limits.reconciler.run(horizon_s=horizon_s)
    except DB_ERRORS as exc:
        raise _db_down(exc) from exc
    except BackendUnavailable as exc:
        raise GatewayError(503, f"limit counters are unavailable ({exc})", type="server_error",
                           code="limits_unavailable") from exc
    return {"object": "limits.reconciliation", "raised": [
        {"budget_id": d.budget_id, "entity_id": d.entity_id, "spent_before_usd": plain(d.spent_before),
         "ledger_usd": plain(d.ledger)} for d in drifts]}

"""The admin API: a FastAPI app under ``/admin/api/`` (OpenAPI at ``/admin/api/openapi.json``, docs at
``/admin/api/docs``), built once at start-up and reached by the gateway for paths under ``/admin/``.

Every error uses the gateway's envelope ``{"error": {"message", "type", "param", "code"}}``: validation
errors are 422 (400 for malformed JSON) naming the field in ``param`` — and never echo the submitted
value, which may be a secret.
"""

from __future__ import annotations

import hashlib
from typing import TYPE_CHECKING, Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException

from tollway import __version__
from tollway.admin import routes_keys, routes_pricing, routes_tree, routes_usage
from tollway.admin.deps import AdminContext
from tollway.admin.store import AdminStore
from tollway.core.errors import GatewayError
from tollway.limits import admin as limits_admin

if TYPE_CHECKING:
    from tollway.runtime import Runtime

PREFIX = "/admin/api"
_LOCATIONS = ("body", "query", "path", "header")


def _envelope(err: GatewayError) -> JSONResponse:
    return JSONResponse(err.to_json(), status_code=err.status, headers=err.headers or None)


async def _gateway_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, GatewayError)
    return _envelope(exc)


async def _validation_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RequestValidationError)
    errors = list(exc.errors())
    if any(e.get("type") == "json_invalid" for e in errors):
        return _envelope(GatewayError(400, "Request body is not valid JSON.", code="invalid_json"))
    parts: list[str] = []
    first_param: str | None = None
    missing = False
    for e in errors:
        loc = [str(p) for p in e.get("loc", ()) if p not in _LOCATIONS]
        param = ".".join(loc) or None
        first_param = first_param or param
        missing = missing or e.get("type") == "missing"
        parts.append(f"{param or 'body'}: {e.get('msg', 'invalid')}")
    code = "missing_required_parameter" if missing else "invalid_value"
    return _envelope(GatewayError(422, "Invalid request: " + "; ".join(parts), param=first_param, code=code))


async def _http_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, HTTPException)
    code = {404: "not_found", 405: "method_not_allowed"}.get(exc.status_code, "http_error")
    kind = "not_found_error" if exc.status_code == 404 else "invalid_request_error"
    message = f"{request.method} {request.url.path} is not a route of the admin API" if exc.status_code in (
        404, 405) else str(exc.detail)
    return _envelope(GatewayError(exc.status_code, message, type=kind, code=code))


async def _internal_error(request: Request, exc: Exception) -> JSONResponse:
    request_id = request.scope.get("tollway.request_id", "")
    return _envelope(GatewayError(500, f"internal error in the admin API; see logs for request id {request_id}",
                                  type="server_error", code="internal_error"))


def admin_context(rt: Runtime) -> AdminContext | None:
    tenancy = rt.tenancy
    if tenancy is None:
        return None
    master = rt.settings.master_key
    return AdminContext(
        store=AdminStore(tenancy.engine, tenancy.cache.notify),
        tenancy=tenancy,
        prices=rt.pipeline.prices,
        configured_prices=tenancy.price_overrides.configured,
        providers=frozenset([*rt.settings.providers, *(["mock"] if rt.settings.mock_enabled else [])]),
        master_digest=None if master is None else hashlib.sha256(master.get_secret_value().encode()).digest(),
    )


def create_admin_app(rt: Runtime) -> FastAPI:
    app = FastAPI(
        title="tollway admin API",
        version=__version__,
        description="Tenancy (organizations, teams, projects, end users), virtual keys, BYOK provider "
        "credentials and prices. Authenticate with `Authorization: Bearer <TOLLWAY_MASTER_KEY>` or a key "
        "with the `admin` scope (`admin:read` for GET).",
        openapi_url=f"{PREFIX}/openapi.json",
        docs_url=f"{PREFIX}/docs",
        redoc_url=None,
    )
    app.state.admin = admin_context(rt)
    app.state.ledger = rt.ledger
    for router in (routes_tree.router, routes_keys.router, routes_pricing.router, routes_usage.router):
        app.include_router(router, prefix=PREFIX)
    limits_admin.mount(app, rt.limits, PREFIX)  # budgets and rate limits
    app.add_exception_handler(GatewayError, _gateway_error)
    app.add_exception_handler(RequestValidationError, _validation_error)
    app.add_exception_handler(HTTPException, _http_error)
    app.add_exception_handler(500, _internal_error)  # Starlette still logs the traceback
    return app


def extra_routes(app: FastAPI, router: Any) -> None:
    """Mount another component's router (e.g. usage queries) under the admin prefix."""
    app.include_router(router, prefix=PREFIX)

"""``GET /v1/models`` and the health probes."""

from __future__ import annotations

import time
from typing import Any

from tollway.api.http import Request, send_json
from tollway.runtime import Runtime

_BOOT = int(time.time())


async def list_models(rt: Runtime, req: Request) -> None:
    catalog = rt.resolver.model_catalog()
    principal = req.ctx.principal if req.ctx is not None else None
    if rt.tenancy is not None and principal is not None and principal.allowed_models:
        guard = rt.tenancy.model_guard  # a key sees only the models it may call
        catalog = [(mid, owner) for mid, owner in catalog if guard.allows(principal, mid, rt.resolver.resolve(mid))]
    data = [{"id": mid, "object": "model", "created": _BOOT, "owned_by": owner} for mid, owner in catalog]
    await send_json(req.send, 200, {"object": "list", "data": data})


async def live(rt: Runtime, req: Request) -> None:
    await send_json(req.send, 200, {"status": "ok"})


async def ready(rt: Runtime, req: Request) -> None:
    """200 while this worker serves and accounts for requests — also with the database down: usage rows
    are then spooled on disk and shipped when it returns (``status: degraded``, said in ``detail``).
    503 when the usage ledger's spool cannot take rows (full or unwritable)."""
    store_ok = await rt.store.ping()
    checks = {"store": "ok" if store_ok else "unreachable"}
    body: dict[str, Any] = {"status": "ok", "checks": checks}
    db_ok, spool_ok = store_ok, True
    if rt.ledger is not None:
        stats = rt.ledger.stats()
        spool_ok = stats.spool_ok
        db_ok = db_ok and stats.database_ok
        if not spool_ok:
            checks["ledger"] = "spool_full" if stats.spool_full else "spool_unwritable"
        else:
            checks["ledger"] = "ok" if stats.database_ok else "spooling"
        body["ledger"] = stats.to_json()
    if not spool_ok:
        body["status"] = "unavailable"
        body["detail"] = "the usage ledger spool cannot take rows; requests would go unaccounted"
    elif not db_ok:
        body["status"] = "degraded"
        body["detail"] = ("database unreachable: still serving; usage is spooled on disk and shipped when the "
                          "database returns")
    await send_json(req.send, 200 if spool_ok else 503, body)

"""``GET /v1/models`` and the health probes."""

from __future__ import annotations

import time

from tollway.api.http import Request, send_json
from tollway.runtime import Runtime

_BOOT = int(time.time())


async def list_models(rt: Runtime, req: Request) -> None:
    data = [{"id": mid, "object": "model", "created": _BOOT, "owned_by": owner}
            for mid, owner in rt.resolver.model_catalog()]
    await send_json(req.send, 200, {"object": "list", "data": data})


async def live(rt: Runtime, req: Request) -> None:
    await send_json(req.send, 200, {"status": "ok"})


async def ready(rt: Runtime, req: Request) -> None:
    store_ok = await rt.store.ping()
    status = 200 if store_ok else 503
    await send_json(req.send, status, {"status": "ok" if store_ok else "unavailable",
                                       "checks": {"store": "ok" if store_ok else "unreachable"}})

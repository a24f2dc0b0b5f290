"""A whole gateway in the test's event loop: the ASGI app driven through its lifespan, reached over httpx's
ASGI transport (no socket), with helpers for the admin API and /v1 calls."""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import httpx

from tollway.app import Gateway
from tollway.middleware.request_id import RequestIdMiddleware
from tollway.runtime import Runtime
from tollway.settings import Settings

MASTER = "test-master-key-0123456789abcdef"
_spools = itertools.count()


def settings_for(database_url: str, tmp_path: Path, **extra: Any) -> Settings:
    data: dict[str, Any] = {
        "database_url": database_url,
        "mock": {"enabled": True},
        "ledger_spool_path": str(tmp_path / f"spool-{next(_spools)}.db"),
        "tenancy_poll_s": 0.05,
    }
    data.update(extra)
    return Settings.model_validate(data)


class Harness:
    def __init__(self, client: httpx.AsyncClient, gateway: Gateway) -> None:
        self.client = client
        self.gateway = gateway

    @property
    def runtime(self) -> Runtime:
        assert self.gateway.runtime is not None
        return self.gateway.runtime

    async def admin(self, method: str, path: str, json: Any = None, *, key: str | None = MASTER,
                    params: dict[str, Any] | None = None) -> httpx.Response:
        headers = {"authorization": f"Bearer {key}"} if key is not None else {}
        return await self.client.request(method, "/admin/api" + path, json=json, headers=headers, params=params)

    async def ok(self, method: str, path: str, json: Any = None, status: int = 200) -> Any:
        r = await self.admin(method, path, json)
        assert r.status_code == status, r.text
        return r.json() if r.content else None

    async def respond(self, key: str | None, body: dict[str, Any] | None = None,
                      headers: dict[str, str] | None = None) -> httpx.Response:
        h = dict(headers or {})
        if key is not None:
            h["authorization"] = f"Bearer {key}"
        return await self.client.post("/v1/responses", json=body or {"model": "mock", "input": "hi"}, headers=h)


@asynccontextmanager
async def running(settings: Settings) -> AsyncIterator[Harness]:
    gateway = Gateway(settings)
    inbox: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
    outbox: asyncio.Queue[dict[str, Any]] = asyncio.Queue()

    async def send(message: Any) -> None:
        await outbox.put(dict(message))

    lifespan = asyncio.get_running_loop().create_task(gateway({"type": "lifespan"}, inbox.get, send))
    await inbox.put({"type": "lifespan.startup"})
    started = await outbox.get()
    if started["type"] != "lifespan.startup.complete":
        await lifespan
        raise RuntimeError(f"gateway did not start: {started}")
    try:
        transport = httpx.ASGITransport(app=RequestIdMiddleware(gateway))
        async with httpx.AsyncClient(transport=transport, base_url="http://gateway") as client:
            yield Harness(client, gateway)
    finally:
        await inbox.put({"type": "lifespan.shutdown"})
        await outbox.get()
        await lifespan


async def tree(h: Harness, slug: str = "acme") -> dict[str, Any]:
    """An org with a team and a project in it; returns their JSON by kind."""
    org = await h.ok("POST", "/orgs", {"slug": slug, "name": slug.title()}, 201)
    team = await h.ok("POST", "/teams", {"org_id": org["id"], "slug": "search", "name": "Search"}, 201)
    project = await h.ok("POST", "/projects", {"team_id": team["id"], "slug": "rerank", "name": "Rerank"}, 201)
    return {"org": org, "team": team, "project": project}

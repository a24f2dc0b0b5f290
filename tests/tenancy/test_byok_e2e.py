"""BYOK end to end: the upstream (a recording proxy in front of the mock) sees the project's key, else the
org's, else the gateway's; the secrets show up nowhere else (responses, admin API, logs)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp import web

from tests.e2e.server import running_mock
from tests.tenancy.harness import MASTER, running, settings_for, tree

GATEWAY_KEY = "sk-ant-gateway-own-key-0000"
ORG_KEY = "sk-ant-org-acme-secret-1111"
PROJECT_KEY = "sk-ant-project-rerank-secret-2222"


class Recorder:
    """Forwards every request to the mock upstream and remembers the headers it was sent."""

    def __init__(self, upstream: str) -> None:
        self.upstream = upstream  # http://127.0.0.1:port
        self.seen: list[dict[str, str]] = []
        self.session: aiohttp.ClientSession | None = None

    async def handle(self, request: web.Request) -> web.Response:
        self.seen.append({k.lower(): v for k, v in request.headers.items()})
        assert self.session is not None
        headers = {k: v for k, v in request.headers.items() if k.lower() not in ("host", "content-length")}
        async with self.session.request(request.method, self.upstream + request.path_qs, headers=headers,
                                        data=await request.read()) as r:
            body = await r.read()
            return web.Response(status=r.status, body=body, content_type=r.content_type)


@pytest.fixture
async def recorder() -> AsyncIterator[tuple[Recorder, str]]:
    with running_mock() as mock_url:
        rec = Recorder(mock_url.removesuffix("/v1"))
        app = web.Application()
        app.router.add_route("*", "/{tail:.*}", rec.handle)
        runner = web.AppRunner(app)
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        port = runner.addresses[0][1]
        async with aiohttp.ClientSession() as session:
            rec.session = session
            yield rec, f"http://127.0.0.1:{port}/v1"
        await runner.cleanup()


async def test_byok_selection_end_to_end(recorder: tuple[Recorder, str], migrated_url: str, tmp_path: Path,
                                         caplog: pytest.LogCaptureFixture) -> None:
    rec, url = recorder
    caplog.set_level("DEBUG")
    settings = settings_for(migrated_url, tmp_path, master_key=MASTER, mock={"enabled": False},
                            providers={"anthropic": {"api_key": GATEWAY_KEY, "base_url": url}})
    async with running(settings) as h:
        acme = await tree(h, "acme")
        other = await tree(h, "other")
        loose = await h.ok("POST", "/projects", {"org_id": acme["org"]["id"], "slug": "loose", "name": "L"}, 201)
        admin_out = [
            await h.ok("PUT", "/credentials", {"org_id": acme["org"]["id"], "provider": "anthropic",
                                               "secret": ORG_KEY}),
            await h.ok("PUT", "/credentials", {"project_id": acme["project"]["id"], "provider": "anthropic",
                                               "secret": PROJECT_KEY}),
            await h.ok("GET", "/credentials"),
        ]
        keys = {name: (await h.ok("POST", "/keys", body, 201))["key"] for name, body in (
            ("project", {"name": "p", "project_id": acme["project"]["id"]}),
            ("org-project", {"name": "o", "project_id": loose["id"]}),
            ("org", {"name": "org", "org_id": acme["org"]["id"]}),
            ("elsewhere", {"name": "e", "org_id": other["org"]["id"]}),
        )}
        expected = {"project": PROJECT_KEY, "org-project": ORG_KEY, "org": ORG_KEY, "elsewhere": GATEWAY_KEY}
        bodies: list[str] = []
        for name, key in keys.items():
            for stream in (False, True):
                rec.seen.clear()
                r = await h.respond(key, {"model": "anthropic/claude-haiku-4-5", "input": "hi", "stream": stream})
                assert r.status_code == 200, r.text
                bodies.append(r.text)
                assert [s.get("x-api-key") for s in rec.seen] == [expected[name]], name
    everything: list[Any] = [*bodies, *(str(x) for x in admin_out), *(r.getMessage() for r in caplog.records),
                             *(str(r.__dict__) for r in caplog.records)]
    for secret in (ORG_KEY, PROJECT_KEY):
        assert not any(secret in text for text in everything), secret

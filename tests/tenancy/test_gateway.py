"""Tenancy through the whole gateway (ASGI app + runtime, in process): open mode, 401/403 on /v1,
end-user attribution and enrichment, live price overrides."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from tests.tenancy.harness import MASTER, running, settings_for, tree
from tollway.tenancy.service import OPEN_MODE_MESSAGE


async def test_open_mode(migrated_url: str, tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level("INFO")
    async with running(settings_for(migrated_url, tmp_path)) as h:
        assert h.runtime.tenancy is None and h.runtime.auth is None
        assert any(r.getMessage() == OPEN_MODE_MESSAGE for r in caplog.records)
        r = await h.respond(None)
        assert r.status_code == 200 and "tenant" not in r.json()["tollway"]
        r = await h.admin("GET", "/orgs")
        assert r.status_code == 401 and r.json()["error"]["code"] == "admin_disabled"


async def test_keys_in_the_database_turn_authentication_on(migrated_url: str, tmp_path: Path) -> None:
    async with running(settings_for(migrated_url, tmp_path, master_key=MASTER)) as h:
        t = await tree(h)
        key = await h.ok("POST", "/keys", {"name": "k", "project_id": t["project"]["id"]}, 201)
    async with running(settings_for(migrated_url, tmp_path)) as h:  # no master key now, but a key exists
        assert h.runtime.auth is not None
        assert (await h.respond(None)).status_code == 401
        assert (await h.respond(key["key"])).status_code == 200
        r = await h.admin("GET", "/orgs")
        assert r.status_code == 401 and r.json()["error"]["code"] == "invalid_api_key"


async def test_v1_auth_errors(migrated_url: str, tmp_path: Path) -> None:
    async with running(settings_for(migrated_url, tmp_path, master_key=MASTER)) as h:
        t = await tree(h)
        pid = t["project"]["id"]
        r = await h.respond(None)
        assert r.status_code == 401 and r.json()["error"] == {
            "message": r.json()["error"]["message"], "type": "authentication_error", "param": None,
            "code": "missing_api_key"}
        assert (await h.respond(MASTER)).json()["error"]["code"] == "invalid_api_key"  # not a virtual key
        chat_only = await h.ok("POST", "/keys", {"name": "c", "project_id": pid, "scopes": ["chat"]}, 201)
        r = await h.respond(chat_only["key"])
        assert r.status_code == 403 and r.json()["error"]["code"] == "insufficient_scope"
        r = await h.client.post("/v1/chat/completions", json={"model": "mock", "messages": [
            {"role": "user", "content": "hi"}]}, headers={"authorization": f"Bearer {chat_only['key']}"})
        assert r.status_code == 200
        r = await h.client.get("/v1/models", headers={"x-api-key": chat_only["key"]})
        assert r.status_code == 403
        limited = await h.ok("POST", "/keys", {"name": "m", "project_id": pid, "allowed_models": ["gpt-*"]}, 201)
        r = await h.respond(limited["key"])
        assert r.status_code == 403 and r.json()["error"]["code"] == "model_not_allowed"
        assert r.json()["error"]["param"] == "model"
        mock_ok = await h.ok("POST", "/keys", {"name": "m2", "project_id": pid, "allowed_models": ["mock/*"]}, 201)
        assert (await h.respond(mock_ok["key"])).status_code == 200
        await h.ok("POST", f"/keys/{mock_ok['id']}/revoke")
        r = await h.respond(mock_ok["key"])
        assert r.status_code == 401 and r.json()["error"]["code"] == "key_revoked"
        assert (await h.client.get("/health/live")).status_code == 200  # probes need no key


async def test_expired_key_on_v1(migrated_url: str, tmp_path: Path) -> None:
    async with running(settings_for(migrated_url, tmp_path, master_key=MASTER)) as h:
        t = await tree(h)
        soon = datetime.now(UTC) + timedelta(seconds=1)
        key = await h.ok("POST", "/keys", {"name": "k", "project_id": t["project"]["id"],
                                           "expires_at": soon.isoformat()}, 201)
        assert (await h.respond(key["key"])).status_code == 200
        await asyncio.sleep(max(0.0, (soon - datetime.now(UTC)).total_seconds()) + 0.05)
        r = await h.respond(key["key"])
        assert r.status_code == 401 and r.json()["error"]["code"] == "key_expired"
        assert (await h.ok("GET", f"/keys/{key['id']}"))["status"] == "expired"


async def test_end_user_attribution_and_enrichment(migrated_url: str, tmp_path: Path) -> None:
    async with running(settings_for(migrated_url, tmp_path, master_key=MASTER)) as h:
        t = await tree(h)
        key = await h.ok("POST", "/keys", {"name": "web", "project_id": t["project"]["id"]}, 201)
        r = await h.respond(key["key"], {"model": "mock", "input": "hi", "user": "u-42"})
        assert r.status_code == 200
        block = r.json()["tollway"]
        assert block["tenant"] == {
            "org": {"id": t["org"]["id"], "name": "Acme"},
            "team": {"id": t["team"]["id"], "name": "Search"},
            "project": {"id": t["project"]["id"], "name": "Rerank"},
            "key_id": key["id"],
        }
        eu = block["end_user"]
        assert eu["external_id"] == "u-42" and eu["id"].startswith("eu_") and set(eu) == {"id", "external_id"}
        await h.runtime.tenancy.end_users.flush(5)  # type: ignore[union-attr]
        users = (await h.ok("GET", f"/end-users?org_id={t['org']['id']}"))["data"]
        assert [(u["id"], u["external_id"]) for u in users] == [(eu["id"], "u-42")]
        # Give the user an email: it never reaches enrichment. The header beats the body's `user`.
        await h.ok("PATCH", f"/end-users/{eu['id']}", {"email": "u42@example.com", "name": "U"})
        r = await h.respond(key["key"], {"model": "mock", "input": "hi", "user": "other"},
                            headers={"x-tollway-end-user": "u-42"})
        assert r.json()["tollway"]["end_user"] == eu and "u42@example.com" not in r.text
        chat = await h.client.post("/v1/chat/completions", json={
            "model": "mock", "messages": [{"role": "user", "content": "hi"}], "user": "u-42"},
            headers={"authorization": f"Bearer {key['key']}"})
        assert chat.json()["tollway"]["end_user"] == eu
        await h.ok("PATCH", f"/end-users/{eu['id']}", {"blocked": True})
        r = await h.respond(key["key"], {"model": "mock", "input": "hi", "user": "u-42"})
        assert r.status_code == 403 and r.json()["error"]["code"] == "end_user_blocked"
        assert (await h.respond(key["key"], {"model": "mock", "input": "hi", "user": "u-43"})).status_code == 200


async def test_price_override_applies_live(migrated_url: str, tmp_path: Path) -> None:
    async with running(settings_for(migrated_url, tmp_path, master_key=MASTER)) as h:
        t = await tree(h)
        key = await h.ok("POST", "/keys", {"name": "k", "project_id": t["project"]["id"]}, 201)
        assert (await h.respond(key["key"])).json()["tollway"]["cost"]["status"] == "unpriced"
        before = (await h.ok("GET", "/pricing"))["version"]
        out = await h.ok("PUT", "/pricing/overrides/mock/mock", {"input": "1000000", "output": "2000000"})
        assert out["version"] != before and "+local." in out["version"]
        cost = (await h.respond(key["key"])).json()["tollway"]["cost"]
        assert cost["status"] != "unpriced" and cost["price_table_version"] == out["version"]
        assert cost["total_usd"] is not None and float(cost["total_usd"]) > 0
        view = await h.ok("GET", "/pricing?provider=mock&model=mock")
        assert view["lookup"]["price"]["input"] == "1000000"
        await h.ok("DELETE", "/pricing/overrides/mock/mock", status=204)
        assert (await h.respond(key["key"])).json()["tollway"]["cost"]["status"] == "unpriced"


async def test_a_too_short_master_key_stops_start_up(migrated_url: str, tmp_path: Path) -> None:
    with pytest.raises(RuntimeError, match="at least 16 characters"):
        async with running(settings_for(migrated_url, tmp_path, master_key="short")):
            pass


async def test_models_list_shows_only_what_the_key_may_call(migrated_url: str, tmp_path: Path) -> None:
    settings = settings_for(migrated_url, tmp_path, master_key=MASTER,
                            models={"fast": "mock/mock", "other": "mock/mock-other"})
    async with running(settings) as h:
        t = await tree(h)
        narrow = await h.ok("POST", "/keys", {"name": "n", "project_id": t["project"]["id"],
                                              "allowed_models": ["fast"]}, 201)
        wide = await h.ok("POST", "/keys", {"name": "w", "project_id": t["project"]["id"]}, 201)

        async def ids(key: str) -> set[str]:
            r = await h.client.get("/v1/models", headers={"authorization": f"Bearer {key}"})
            assert r.status_code == 200, r.text
            return {m["id"] for m in r.json()["data"]}

        assert await ids(narrow["key"]) == {"fast"}
        assert await ids(wide["key"]) == {"fast", "other", "mock"}

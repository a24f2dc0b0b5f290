"""The admin API: authentication, CRUD, validation (400/422 naming the field), 409, 404, the error
envelope, secrets never echoed, OpenAPI."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from tests.tenancy.harness import MASTER, Harness, running, settings_for, tree


@pytest.fixture
async def h(migrated_url: str, tmp_path: Path) -> AsyncIterator[Harness]:
    async with running(settings_for(migrated_url, tmp_path, master_key=MASTER)) as harness:
        yield harness


def error(r: Any, status: int, code: str | None = None, param: str | None = None) -> dict[str, Any]:
    assert r.status_code == status, r.text
    body = r.json()
    assert set(body) == {"error"} and set(body["error"]) == {"message", "type", "param", "code"}
    if code is not None:
        assert body["error"]["code"] == code, body
    if param is not None:
        assert body["error"]["param"] == param, body
    err: dict[str, Any] = body["error"]
    return err


async def test_authentication(h: Harness) -> None:
    error(await h.admin("GET", "/orgs", key=None), 401, "missing_api_key")
    err = error(await h.admin("GET", "/orgs", key="not-the-master-key"), 401, "invalid_api_key")
    assert err["type"] == "authentication_error"
    error(await h.admin("GET", "/orgs", key=MASTER + "x"), 401, "invalid_api_key")
    r = await h.client.get("/admin/api/orgs", headers={"x-api-key": MASTER})
    assert r.status_code == 200


async def test_admin_scoped_keys(h: Harness) -> None:
    acme = await tree(h, "acme")
    other = await tree(h, "other")
    reader = await h.ok("POST", "/keys", {"name": "r", "org_id": acme["org"]["id"], "scopes": ["admin:read"]}, 201)
    admin = await h.ok("POST", "/keys", {"name": "a", "org_id": acme["org"]["id"], "scopes": ["admin"]}, 201)
    plain = await h.ok("POST", "/keys", {"name": "p", "org_id": acme["org"]["id"]}, 201)
    error(await h.admin("GET", "/orgs", key=plain["key"]), 403, "insufficient_scope")
    orgs = (await h.admin("GET", "/orgs", key=reader["key"])).json()["data"]
    assert [o["id"] for o in orgs] == [acme["org"]["id"]]  # only its own org
    error(await h.admin("POST", "/teams", {"org_id": acme["org"]["id"], "slug": "x", "name": "X"},
                        key=reader["key"]), 403, "insufficient_scope")
    r = await h.admin("POST", "/teams", {"org_id": acme["org"]["id"], "slug": "x", "name": "X"}, key=admin["key"])
    assert r.status_code == 201
    error(await h.admin("GET", f"/projects/{other['project']['id']}", key=admin["key"]), 404, "not_found")
    error(await h.admin("POST", "/teams", {"org_id": other["org"]["id"], "slug": "x", "name": "X"},
                        key=admin["key"]), 404, "not_found")
    error(await h.admin("POST", "/orgs", {"slug": "new", "name": "N"}, key=admin["key"]), 403)
    error(await h.admin("PUT", "/pricing/overrides/mock/mock", {"input": 1, "output": 1}, key=admin["key"]), 403)
    assert len((await h.admin("GET", "/keys", key=admin["key"])).json()["data"]) == 3
    await h.ok("POST", f"/keys/{admin['id']}/revoke")
    error(await h.admin("GET", "/orgs", key=admin["key"]), 401, "key_revoked")


async def test_crud_lifecycle(h: Harness) -> None:
    t = await tree(h)
    org_id, team_id, project_id = t["org"]["id"], t["team"]["id"], t["project"]["id"]
    assert (await h.ok("GET", f"/orgs/{org_id}"))["slug"] == "acme"
    assert (await h.ok("PATCH", f"/orgs/{org_id}", {"name": "Acme Inc"}))["name"] == "Acme Inc"
    assert [x["id"] for x in (await h.ok("GET", f"/teams?org_id={org_id}"))["data"]] == [team_id]
    assert (await h.ok("PATCH", f"/teams/{team_id}", {"slug": "find"}))["slug"] == "find"
    assert [x["id"] for x in (await h.ok("GET", f"/projects?team_id={team_id}"))["data"]] == [project_id]
    loose = await h.ok("POST", "/projects", {"org_id": org_id, "slug": "loose", "name": "Loose"}, 201)
    assert loose["team_id"] is None
    moved = await h.ok("PATCH", f"/projects/{loose['id']}", {"team_id": team_id})
    assert moved["team_id"] == team_id
    eu = await h.ok("POST", "/end-users", {"org_id": org_id, "external_id": "u1", "email": "u1@example.com",
                                           "metadata": {"plan": "pro"}}, 201)
    assert eu["metadata"] == {"plan": "pro"} and eu["blocked"] is False
    assert (await h.ok("PATCH", f"/end-users/{eu['id']}", {"blocked": True}))["blocked"] is True
    assert (await h.ok("GET", f"/end-users?org_id={org_id}&blocked=true"))["data"][0]["id"] == eu["id"]
    await h.ok("DELETE", f"/end-users/{eu['id']}", status=204)
    error(await h.admin("GET", f"/end-users/{eu['id']}"), 404, "not_found")
    await h.ok("DELETE", f"/projects/{loose['id']}", status=204)
    await h.ok("DELETE", f"/teams/{team_id}?cascade=true", status=204)
    await h.ok("DELETE", f"/orgs/{org_id}", status=204)
    assert (await h.ok("GET", "/orgs"))["data"] == []


async def test_key_lifecycle(h: Harness) -> None:
    t = await tree(h)
    created = await h.ok("POST", "/keys", {"name": "ci", "project_id": t["project"]["id"],
                                           "allowed_models": ["mock*"], "environment": "test"}, 201)
    assert created["key"].startswith(f"tw_test_{created['id']}_") and created["status"] == "active"
    assert (created["org_id"], created["team_id"]) == (t["org"]["id"], t["team"]["id"])
    listed = (await h.ok("GET", f"/keys?project_id={t['project']['id']}"))["data"]
    assert len(listed) == 1 and "key" not in listed[0] and created["key"] not in str(listed)
    assert "key_hash" not in listed[0]
    assert (await h.respond(created["key"])).status_code == 200
    assert (await h.ok("GET", f"/keys/{created['id']}"))["last_used_at"] is None  # flushed later, off-path
    rotated = await h.ok("POST", f"/keys/{created['id']}/rotate")
    assert rotated["key"] != created["key"] and rotated["rotated_from"] == created["id"]
    assert rotated["allowed_models"] == ["mock*"] and rotated["environment"] == "test"
    assert (await h.ok("GET", f"/keys/{created['id']}"))["status"] == "revoked"
    assert error(await h.respond(created["key"]), 401)["code"] == "key_revoked"
    assert (await h.respond(rotated["key"])).status_code == 200
    error(await h.admin("POST", f"/keys/{created['id']}/rotate"), 409, "key_revoked")
    updated = await h.ok("PATCH", f"/keys/{rotated['id']}", {"scopes": ["chat"], "name": "renamed"})
    assert updated["scopes"] == ["chat"] and updated["name"] == "renamed"
    assert error(await h.respond(rotated["key"]), 403)["code"] == "insufficient_scope"
    assert [k["id"] for k in (await h.ok("GET", "/keys?status=revoked"))["data"]] == [created["id"]]
    await h.ok("DELETE", f"/keys/{rotated['id']}", status=204)
    assert error(await h.respond(rotated["key"]), 401)["code"] == "invalid_api_key"


@pytest.mark.parametrize(("path", "body", "param"), [
    ("/orgs", {"slug": "Bad Slug", "name": "x"}, "slug"),
    ("/orgs", {"name": "x"}, "slug"),
    ("/orgs", {"slug": "ok", "name": ""}, "name"),
    ("/orgs", {"slug": "ok", "name": "x", "extra": 1}, "extra"),
    ("/teams", {"slug": "ok", "name": "x"}, "org_id"),
    ("/keys", {"name": "k", "org_id": "o", "scopes": ["everything"]}, "scopes.0"),
    ("/keys", {"name": "k", "org_id": "o", "expires_at": "tomorrow"}, "expires_at"),
    ("/keys", {"name": "k", "org_id": "o", "expires_at": "2030-01-01T00:00:00"}, "expires_at"),
    ("/keys", {"name": "k", "org_id": "o", "allowed_models": [""]}, "allowed_models.0"),
    ("/end-users", {"org_id": "o", "external_id": "x", "email": "not-an-email"}, "email"),
])
async def test_validation_422_names_the_field(h: Harness, path: str, body: dict[str, Any], param: str) -> None:
    error(await h.admin("POST", path, body), 422, param=param)


async def test_semantic_errors_400(h: Harness) -> None:
    t = await tree(h)
    error(await h.admin("POST", "/keys", {"name": "k"}), 400, "missing_required_parameter", "project_id")
    error(await h.admin("POST", "/keys", {"name": "k", "org_id": t["org"]["id"],
                                          "expires_at": "2001-01-01T00:00:00Z"}), 400, param="expires_at")
    error(await h.admin("POST", "/projects", {"slug": "x", "name": "x"}), 400, param="org_id")
    error(await h.admin("PATCH", f"/orgs/{t['org']['id']}", {"name": None}), 400, param="name")
    other = await h.ok("POST", "/orgs", {"slug": "other", "name": "O"}, 201)
    error(await h.admin("POST", "/projects", {"org_id": other["id"], "team_id": t["team"]["id"], "slug": "x",
                                              "name": "x"}), 400, param="team_id")
    r = await h.client.post("/admin/api/orgs", content=b"{nope", headers={"authorization": f"Bearer {MASTER}",
                                                                          "content-type": "application/json"})
    error(r, 400, "invalid_json")
    error(await h.admin("PUT", "/pricing/overrides/mock/mock", {"input": "1"}), 400, param="output")
    error(await h.admin("PUT", "/pricing/overrides/mock/mock", {"input": -1, "output": 1}), 422, param="input")


async def test_conflicts_409(h: Harness) -> None:
    t = await tree(h)
    error(await h.admin("POST", "/orgs", {"slug": "acme", "name": "again"}), 409, "duplicate_slug", "slug")
    error(await h.admin("POST", "/teams", {"org_id": t["org"]["id"], "slug": "search", "name": "x"}), 409,
          "duplicate_slug")
    error(await h.admin("POST", "/projects", {"org_id": t["org"]["id"], "slug": "rerank", "name": "x"}), 409)
    other = await h.ok("POST", "/orgs", {"slug": "other", "name": "O"}, 201)
    await h.ok("POST", "/teams", {"org_id": other["id"], "slug": "search", "name": "x"}, 201)  # per-org slugs
    error(await h.admin("PATCH", f"/orgs/{other['id']}", {"slug": "acme"}), 409, "duplicate_slug")
    err = error(await h.admin("DELETE", f"/teams/{t['team']['id']}"), 409, "has_children")
    assert "1 projects" in err["message"] and "cascade" in err["message"]
    error(await h.admin("DELETE", f"/orgs/{t['org']['id']}"), 409, "has_children")
    key = await h.ok("POST", "/keys", {"name": "k", "project_id": t["project"]["id"]}, 201)
    error(await h.admin("DELETE", f"/projects/{t['project']['id']}"), 409, "has_children")
    await h.ok("POST", "/end-users", {"org_id": t["org"]["id"], "external_id": "u"}, 201)
    error(await h.admin("POST", "/end-users", {"org_id": t["org"]["id"], "external_id": "u"}), 409)
    await h.ok("DELETE", f"/teams/{t['team']['id']}?cascade=true", status=204)
    error(await h.admin("GET", f"/projects/{t['project']['id']}"), 404)
    error(await h.admin("GET", f"/keys/{key['id']}"), 404)
    assert error(await h.respond(key["key"]), 401)["code"] == "invalid_api_key"
    await h.ok("DELETE", f"/orgs/{t['org']['id']}?cascade=true", status=204)


@pytest.mark.parametrize("path", ["/orgs/org_nope", "/teams/team_nope", "/projects/p", "/end-users/e", "/keys/k",
                                  "/credentials/c"])
async def test_unknown_ids_404(h: Harness, path: str) -> None:
    err = error(await h.admin("GET", path), 404, "not_found")
    assert err["type"] == "not_found_error"
    error(await h.admin("DELETE", path), 404, "not_found")


async def test_unknown_routes_and_methods(h: Harness) -> None:
    error(await h.admin("GET", "/nope"), 404, "not_found")
    error(await h.admin("PUT", "/orgs"), 405, "method_not_allowed")


async def test_credentials_are_write_only(h: Harness) -> None:
    t = await tree(h)
    secret = "sk-ant-api03-write-only-secret-9f8e"
    cred = await h.ok("PUT", "/credentials", {"org_id": t["org"]["id"], "provider": "mock", "secret": secret})
    assert cred["scope"] == "org" and cred["last4"] == "9f8e" and cred["kid"].startswith("k")
    assert secret not in str(cred) and secret[:-4] not in str(cred)
    again = await h.ok("PUT", "/credentials", {"project_id": t["project"]["id"], "provider": "mock",
                                               "secret": secret + "2"})
    assert again["scope"] == "project" and again["org_id"] == t["org"]["id"]
    listed = await h.ok("GET", "/credentials")
    assert len(listed["data"]) == 2 and secret[:-4] not in str(listed)
    replaced = await h.ok("PUT", "/credentials", {"org_id": t["org"]["id"], "provider": "mock", "secret": "sk-new1"})
    assert replaced["id"] == cred["id"] and replaced["last4"] == "new1"
    # A validation error must not echo the secret back.
    r = await h.admin("PUT", "/credentials", {"org_id": t["org"]["id"], "provider": "mock", "secret": secret,
                                              "bogus": True})
    error(r, 422, param="bogus")
    assert secret not in r.text
    error(await h.admin("PUT", "/credentials", {"org_id": t["org"]["id"], "provider": "nowhere", "secret": "x"}),
          400, param="provider")
    await h.ok("DELETE", f"/credentials/{cred['id']}", status=204)
    assert len((await h.ok("GET", "/credentials"))["data"]) == 1


async def test_openapi(h: Harness) -> None:
    spec = (await h.client.get("/admin/api/openapi.json")).json()
    paths = spec["paths"]
    for path in ("/admin/api/orgs", "/admin/api/teams/{team_id}", "/admin/api/keys/{key_id}/rotate",
                 "/admin/api/keys/{key_id}/revoke", "/admin/api/credentials", "/admin/api/pricing",
                 "/admin/api/pricing/overrides/{provider}/{model}", "/admin/api/end-users"):
        assert path in paths, path
    assert "KeyWithSecret" in spec["components"]["schemas"]
    assert (await h.client.get("/admin/api/docs")).status_code == 200


async def test_unexpected_errors_use_the_envelope(h: Harness, monkeypatch: pytest.MonkeyPatch) -> None:
    from tollway.admin import directory

    async def boom(*args: Any) -> Any:
        raise RuntimeError("bug")

    monkeypatch.setattr(directory, "list_orgs", boom)
    transport = h.client._transport
    transport.raise_app_exceptions = False  # type: ignore[attr-defined]
    err = error(await h.admin("GET", "/orgs"), 500, "internal_error")
    assert "request id req_" in err["message"]

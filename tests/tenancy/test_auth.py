"""KeyAuthenticator, ModelGuard and end-user resolution against a snapshot loaded from a real database."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncEngine

from tollway.admin import directory, key_ops
from tollway.admin.store import MASTER, AdminStore
from tollway.core.context import RequestContext
from tollway.core.errors import GatewayError
from tollway.core.routing import Route
from tollway.core.types import CanonicalRequest
from tollway.providers.base import ProviderSettings
from tollway.providers.registry import adapter_for
from tollway.tenancy.auth import KeyAuthenticator, ModelGuard
from tollway.tenancy.cache import TenancyCache
from tollway.tenancy.end_users import EndUserRegistry
from tollway.tenancy.models import ApiKey, EndUser, end_user_id, table


@dataclass
class World:
    auth: KeyAuthenticator
    cache: TenancyCache
    store: AdminStore
    project: dict[str, Any]


@pytest.fixture
async def world(engine: AsyncEngine) -> AsyncIterator[World]:
    cache = TenancyCache(engine, poll_interval_s=60)
    await cache.start()
    end_users = EndUserRegistry(engine, retry_initial_s=0.01, retry_max_s=0.05)
    end_users.start()
    store = AdminStore(engine, cache.notify)
    org = await directory.create_org(store, MASTER, "acme", "Acme")
    project = await directory.create_project(store, MASTER, "web", "Web", org_id=org["id"])
    yield World(KeyAuthenticator(cache, end_users), cache, store, project)
    await end_users.close()
    await cache.stop()


def ctx() -> RequestContext:
    return RequestContext(request_id="req_1", started=time.perf_counter())


async def refused(auth: KeyAuthenticator, header: bytes | None, scope: str = "responses") -> GatewayError:
    with pytest.raises(GatewayError) as info:
        await auth.authenticate(ctx(), header, scope)
    return info.value


async def test_valid_key_sets_the_principal(world: World) -> None:
    key = await key_ops.create_key(world.store, MASTER, name="ci", project_id=world.project["id"])
    for header in (f"Bearer {key['key']}".encode(), key["key"].encode()):
        c = ctx()
        await world.auth.authenticate(c, header, "chat")
        assert c.principal is not None and c.principal.key_id == key["id"]
        assert c.principal.project_name == "Web" and c.principal.org_name == "Acme"


async def test_missing_invalid_wrong_secret(world: World) -> None:
    key = await key_ops.create_key(world.store, MASTER, name="ci", project_id=world.project["id"])
    err = await refused(world.auth, None)
    assert (err.status, err.type, err.code) == (401, "authentication_error", "missing_api_key")
    assert (await refused(world.auth, b"Bearer sk-not-ours")).code == "invalid_api_key"
    assert (await refused(world.auth, b"Bearer tw_live_AAAAAAAAAAAA_" + b"a" * 32)).code == "invalid_api_key"
    wrong = key["key"][:-1] + ("x" if key["key"][-1] != "x" else "y")
    err = await refused(world.auth, wrong.encode())
    assert (err.status, err.code) == (401, "invalid_api_key")


async def test_revoked_and_expired(world: World, engine: AsyncEngine) -> None:
    key = await key_ops.create_key(world.store, MASTER, name="ci", project_id=world.project["id"])
    soon = await key_ops.create_key(world.store, MASTER, name="short", project_id=world.project["id"],
                                    expires_at=datetime.now(UTC) + timedelta(seconds=30))
    await world.auth.authenticate(ctx(), soon["key"].encode(), "responses")
    await key_ops.revoke_key(world.store, MASTER, key["id"])
    err = await refused(world.auth, key["key"].encode())
    assert (err.status, err.type, err.code) == (401, "authentication_error", "key_revoked")
    async with world.store.write() as conn:  # time passes: the expiry is now in the past
        await conn.execute(update(table(ApiKey)).where(table(ApiKey).c.id == soon["id"])
                           .values(expires_at=datetime.now(UTC) - timedelta(seconds=1)))
    await world.cache.refresh()
    err = await refused(world.auth, soon["key"].encode())
    assert (err.status, err.code) == (401, "key_expired")
    assert (await key_ops.get_key(world.store, MASTER, soon["id"]))["status"] == "expired"


async def test_expiry_needs_no_reload(world: World, monkeypatch: pytest.MonkeyPatch) -> None:
    key = await key_ops.create_key(world.store, MASTER, name="short", project_id=world.project["id"],
                                   expires_at=datetime.now(UTC) + timedelta(seconds=60))
    reloads = world.cache.reloads
    monkeypatch.setattr(time, "time", lambda: datetime.now(UTC).timestamp() + 61)
    assert (await refused(world.auth, key["key"].encode())).code == "key_expired"
    assert world.cache.reloads == reloads


async def test_scope_check(world: World) -> None:
    key = await key_ops.create_key(world.store, MASTER, name="chat-only", project_id=world.project["id"],
                                   scopes=["chat"])
    await world.auth.authenticate(ctx(), key["key"].encode(), "chat")
    err = await refused(world.auth, key["key"].encode(), "responses")
    assert (err.status, err.type, err.code) == (403, "permission_error", "insufficient_scope")


def _route(provider: str, model: str) -> Route:
    settings = ProviderSettings(name=provider, kind="anthropic", base_url="http://x")
    return Route(settings, adapter_for("anthropic"), model)


async def test_model_guard_globs(world: World) -> None:
    key = await key_ops.create_key(world.store, MASTER, name="limited", project_id=world.project["id"],
                                   allowed_models=["anthropic/claude-haiku-*", "fast"])
    c = ctx()
    await world.auth.authenticate(c, key["key"].encode(), "responses")
    guard = ModelGuard()
    await guard.admit(c, CanonicalRequest(model="claude-haiku-4-5", input=[]), _route("anthropic", "claude-haiku-4-5"))
    await guard.admit(c, CanonicalRequest(model="fast", input=[]), _route("anthropic", "claude-sonnet-4-5"))
    with pytest.raises(GatewayError) as info:
        await guard.admit(c, CanonicalRequest(model="claude-opus-4-1", input=[]),
                          _route("anthropic", "claude-opus-4-1"))
    assert (info.value.status, info.value.code, info.value.param) == (403, "model_not_allowed", "model")
    unrestricted = ctx()
    await world.auth.authenticate(unrestricted, (await key_ops.create_key(
        world.store, MASTER, name="all", project_id=world.project["id"]))["key"].encode(), "responses")
    await guard.admit(unrestricted, CanonicalRequest(model="x", input=[]), _route("anthropic", "x"))


async def test_end_user_first_sight_and_block(world: World, engine: AsyncEngine) -> None:
    key = await key_ops.create_key(world.store, MASTER, name="k", project_id=world.project["id"])
    c = ctx()
    await world.auth.authenticate(c, key["key"].encode(), "responses")
    c.end_user_external_id = "alice@example"
    t0 = time.perf_counter()
    await world.auth.resolve_end_user(c)
    assert time.perf_counter() - t0 < 0.01  # no database round trip
    expected = end_user_id(world.project["org_id"], "alice@example")
    assert c.end_user_id == expected
    await world.auth.end_users.flush(5)
    async with engine.connect() as conn:
        rows = (await conn.execute(select(table(EndUser)))).all()
    assert [(r.id, r.external_id, r.org_id) for r in rows] == [(expected, "alice@example", world.project["org_id"])]
    # Seen again (and by a "second process" with an empty map): same id, still one row.
    again = EndUserRegistry(engine)
    again.start()
    assert again.resolve(world.project["org_id"], "alice@example") == expected
    await again.flush(5)
    await again.close()
    async with engine.connect() as conn:
        assert len((await conn.execute(select(table(EndUser)))).all()) == 1
    await directory.update_end_user(world.store, MASTER, expected, {"blocked": True})
    c2 = ctx()
    await world.auth.authenticate(c2, key["key"].encode(), "responses")
    c2.end_user_external_id = "alice@example"
    with pytest.raises(GatewayError) as info:
        await world.auth.resolve_end_user(c2)
    assert (info.value.status, info.value.code) == (403, "end_user_blocked")


async def test_key_bound_to_an_end_user_forces_it(world: World) -> None:
    key = await key_ops.create_key(world.store, MASTER, name="bound", project_id=world.project["id"],
                                   end_user_external_id="kiosk-7")
    c = ctx()
    await world.auth.authenticate(c, key["key"].encode(), "responses")
    c.end_user_external_id = "someone-else"
    await world.auth.resolve_end_user(c)
    assert (c.end_user_id, c.end_user_external_id) == (key["end_user_id"], "kiosk-7")


async def test_snapshot_not_loaded_is_503(engine: AsyncEngine) -> None:
    auth = KeyAuthenticator(TenancyCache(engine), EndUserRegistry(engine))
    err = await refused(auth, b"Bearer tw_live_AAAAAAAAAAAA_" + b"a" * 32)
    assert (err.status, err.code) == (503, "auth_unavailable")


async def test_parsed_header_cache_changes_no_decision_and_stays_bounded(
    world: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    from tollway.tenancy import auth as auth_module

    key = await key_ops.create_key(world.store, MASTER, name="hot", project_id=world.project["id"])
    header = f"Bearer {key['key']}".encode()
    for _ in range(3):  # served from the parse cache after the first
        await world.auth.authenticate(ctx(), header, "chat")
    await key_ops.revoke_key(world.store, MASTER, key["id"])
    assert (await refused(world.auth, header)).code == "key_revoked"  # revocation still applies at once
    wrong = header[:-1] + (b"x" if header[-1:] != b"x" else b"y")
    for _ in range(2):
        assert (await refused(world.auth, wrong)).code == "invalid_api_key"
    monkeypatch.setattr(auth_module, "PARSE_CACHE_SIZE", 8)
    for i in range(50):
        await refused(world.auth, f"Bearer tw_live_{i:012d}_{'a' * 32}".encode())
    assert len(world.auth._parsed) <= 8

"""The snapshot cache: reload on revision change, poller bound, listeners, last-used flush, DB outage."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import pytest
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncEngine

from tollway.admin import directory, key_ops
from tollway.admin.store import MASTER, AdminStore
from tollway.storage.engine import create_engine
from tollway.tenancy.cache import TenancyCache
from tollway.tenancy.models import ApiKey, table
from tollway.tenancy.snapshot import Snapshot


async def _project(store: AdminStore) -> dict[str, Any]:
    org = await directory.create_org(store, MASTER, "acme", "Acme")
    team = await directory.create_team(store, MASTER, org["id"], "search", "Search")
    return await directory.create_project(store, MASTER, "rerank", "Rerank", team_id=team["id"])


async def test_snapshot_builds_principals(engine: AsyncEngine, store: AdminStore) -> None:
    project = await _project(store)
    key = await key_ops.create_key(store, MASTER, name="ci", project_id=project["id"], scopes=["responses"],
                                   allowed_models=["anthropic/*"], end_user_external_id="bob")
    org_key = await key_ops.create_key(store, MASTER, name="org-wide", org_id=project["org_id"])
    cache = TenancyCache(engine)
    assert await cache.refresh() is True
    assert await cache.refresh() is False  # same revision: nothing reloaded
    p = cache.snapshot.keys[key["id"]].principal
    assert (p.org_name, p.team_name, p.project_name, p.key_name) == ("Acme", "Search", "Rerank", "ci")
    assert p.project_id == project["id"] and p.team_id == project["team_id"]
    assert p.scopes == frozenset({"responses"}) and p.allowed_models == ("anthropic/*",)
    assert p.end_user_external_id == "bob" and p.end_user_id == key["end_user_id"]
    q = cache.snapshot.keys[org_key["id"]].principal
    assert q.team_id is None and q.project_id is None and q.scopes == frozenset({"responses", "chat", "models"})


async def test_poller_sees_changes_within_its_interval(engine: AsyncEngine, store: AdminStore) -> None:
    project = await _project(store)
    key = await key_ops.create_key(store, MASTER, name="k", project_id=project["id"])
    cache = TenancyCache(engine, poll_interval_s=0.1)
    seen: list[int] = []
    cache.subscribe(lambda s: seen.append(s.revision))
    await cache.start()
    try:
        assert not cache.snapshot.keys[key["id"]].revoked
        other = AdminStore(engine)  # another "process": no on_change hook into this cache
        await key_ops.revoke_key(other, MASTER, key["id"])
        t0 = time.monotonic()
        while not cache.snapshot.keys[key["id"]].revoked:
            assert time.monotonic() - t0 < 1.0, "revocation not picked up within 1 s"
            await asyncio.sleep(0.005)
        assert seen == sorted(seen) and len(seen) == 2
    finally:
        await cache.stop()


async def test_notify_refreshes_at_once(engine: AsyncEngine) -> None:
    cache = TenancyCache(engine, poll_interval_s=60)
    await cache.start()
    try:
        store = AdminStore(engine, cache.notify)
        await _project(store)
        org = (await directory.list_orgs(store, MASTER))[0]
        key = await key_ops.create_key(store, MASTER, name="k", org_id=org["id"])
        assert key["id"] in cache.snapshot.keys  # read-your-writes without waiting for a poll
    finally:
        await cache.stop()


async def test_last_used_is_flushed_without_a_revision_bump(engine: AsyncEngine, store: AdminStore) -> None:
    project = await _project(store)
    key = await key_ops.create_key(store, MASTER, name="k", project_id=project["id"])
    cache = TenancyCache(engine, poll_interval_s=0.02, last_used_flush_s=0.05)
    await cache.start()
    try:
        revision = cache.snapshot.revision
        cache.touch(key["id"])
        for _ in range(200):
            if (await key_ops.get_key(store, MASTER, key["id"]))["last_used_at"] is not None:
                break
            await asyncio.sleep(0.02)
        assert (await key_ops.get_key(store, MASTER, key["id"]))["last_used_at"] is not None
        assert cache.snapshot.revision == revision
    finally:
        await cache.stop()
    async with engine.connect() as conn:
        assert (await conn.execute(select(table(ApiKey).c.last_used_at))).scalar_one() is not None


async def test_unreachable_database_keeps_the_last_snapshot(engine: AsyncEngine, store: AdminStore,
                                                            caplog: pytest.LogCaptureFixture) -> None:
    project = await _project(store)
    key = await key_ops.create_key(store, MASTER, name="k", project_id=project["id"])
    cache = TenancyCache(engine, poll_interval_s=0.02, timeout_s=0.5)
    await cache.start()
    snapshot: Snapshot = cache.snapshot
    dead = create_engine("postgresql://nobody@127.0.0.1:9/none", connect_timeout_s=0.2)
    cache.engine = dead
    try:
        await asyncio.sleep(0.3)
        assert cache.snapshot is snapshot and key["id"] in cache.snapshot.keys
        assert any(getattr(r, "event", None) == "tenancy.poll_failed" for r in caplog.records)
        cache.engine = engine
        await key_ops.revoke_key(store, MASTER, key["id"])
        for _ in range(100):
            if cache.snapshot.keys[key["id"]].revoked:
                break
            await asyncio.sleep(0.02)
        assert cache.snapshot.keys[key["id"]].revoked
    finally:
        await cache.stop()
        await dead.dispose()


async def test_start_without_database_then_recovers(engine: AsyncEngine, store: AdminStore) -> None:
    dead = create_engine("postgresql://nobody@127.0.0.1:9/none", connect_timeout_s=0.2)
    cache = TenancyCache(dead, poll_interval_s=0.02, timeout_s=0.5)
    await cache.start()
    try:
        assert not cache.snapshot.loaded
        cache.engine = engine
        for _ in range(100):
            if cache.snapshot.loaded:
                break
            await asyncio.sleep(0.02)
        assert cache.snapshot.loaded
    finally:
        await cache.stop()
        await dead.dispose()


async def test_redis_wakes_other_processes(engine: AsyncEngine, store: AdminStore) -> None:
    redis_url = "redis://127.0.0.1:6379/0"
    from redis.asyncio import Redis
    from redis.exceptions import RedisError

    probe = Redis.from_url(redis_url)
    try:
        await probe.ping()
    except (OSError, RedisError):
        pytest.skip("no Redis at 127.0.0.1:6379")
    finally:
        await probe.aclose()
    project = await _project(store)
    key = await key_ops.create_key(store, MASTER, name="k", project_id=project["id"])
    writer = TenancyCache(engine, poll_interval_s=60, redis_url=redis_url)
    reader = TenancyCache(engine, poll_interval_s=60, redis_url=redis_url)  # polls far too rarely on its own
    await writer.start()
    await reader.start()
    try:
        for _ in range(100):  # both subscribed
            if writer._redis is not None and reader._redis is not None:
                break
            await asyncio.sleep(0.02)
        await asyncio.sleep(0.1)
        await key_ops.revoke_key(AdminStore(engine, writer.notify), MASTER, key["id"])
        t0 = time.monotonic()
        while not reader.snapshot.keys[key["id"]].revoked:
            assert time.monotonic() - t0 < 1.0
            await asyncio.sleep(0.005)
    finally:
        await writer.stop()
        await reader.stop()


async def test_a_crashed_poller_restarts(engine: AsyncEngine, store: AdminStore, caplog: pytest.LogCaptureFixture,
                                         monkeypatch: pytest.MonkeyPatch) -> None:
    project = await _project(store)
    key = await key_ops.create_key(store, MASTER, name="k", project_id=project["id"])
    cache = TenancyCache(engine, poll_interval_s=0.02)
    await cache.start()
    try:
        calls = {"n": 0}
        real = cache.refresh

        async def flaky() -> bool:
            calls["n"] += 1
            if calls["n"] == 1:
                raise KeyError("a bug")
            return await real()

        monkeypatch.setattr(cache, "refresh", flaky)
        await key_ops.revoke_key(store, MASTER, key["id"])
        for _ in range(200):
            if cache.snapshot.keys[key["id"]].revoked:
                break
            await asyncio.sleep(0.01)
        assert cache.snapshot.keys[key["id"]].revoked
        assert any(getattr(r, "event", None) == "tenancy.poller_crashed" for r in caplog.records)
    finally:
        await cache.stop()

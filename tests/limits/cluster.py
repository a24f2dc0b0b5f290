"""Gateway processes for the limits tests: ``tollway serve`` subprocesses started from one config,
sharing Redis and a database (PostgreSQL, else SQLite), against the mock upstream; plus the helpers the
tests use to provision tenants and rules, call /v1 and read the ledger."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from decimal import Decimal
from pathlib import Path
from typing import Any

import aiohttp
import asyncpg  # type: ignore[import-untyped]
import yaml
from sqlalchemy import select

from tests.e2e.server import free_port
from tollway.metering.ledger.rollups import LEDGER
from tollway.storage.engine import create_engine
from tollway.storage.migrate import upgrade

REPO = Path(__file__).resolve().parents[2]
MASTER = "test-master-key-0123456789abcdef"
PG_ADMIN_URL = os.environ.get("TOLLWAY_TEST_PG", "postgresql://postgres@127.0.0.1:5432/test")
D = Decimal
SLOW = "[mock:delay_ms=300]"


@asynccontextmanager
async def fresh_database(tmp_path: Path) -> AsyncIterator[str]:
    """A fresh PostgreSQL database (SQLite when PostgreSQL is unreachable), migrated."""
    name = f"tollway_limits_{uuid.uuid4().hex[:12]}"
    try:
        admin = await asyncpg.connect(PG_ADMIN_URL, timeout=3)
    except (OSError, asyncpg.PostgresError):
        url = f"sqlite+aiosqlite:///{tmp_path}/gw.db"
        await asyncio.to_thread(upgrade, url)
        yield url
        return
    try:
        await admin.execute(f'CREATE DATABASE "{name}"')
    finally:
        await admin.close()
    url = PG_ADMIN_URL.rsplit("/", 1)[0] + "/" + name
    await asyncio.to_thread(upgrade, url)
    try:
        yield url
    finally:
        admin = await asyncpg.connect(PG_ADMIN_URL, timeout=3)
        try:
            await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        finally:
            await admin.close()


class Cluster:
    """Gateway processes started from one config; stopped (then killed) at teardown."""

    def __init__(self, tmp_path: Path, config: dict[str, Any]) -> None:
        self.tmp_path = tmp_path
        self.config_path = tmp_path / "tollway.yaml"
        self.config_path.write_text(yaml.safe_dump(config))
        self.procs: list[subprocess.Popen[bytes]] = []
        self.ports: list[int] = []

    def url(self, i: int) -> str:
        return f"http://127.0.0.1:{self.ports[i]}"

    async def start(self, n: int) -> None:
        env = {k: v for k, v in os.environ.items()
               if k not in ("REDIS_URL", "DATABASE_URL", "TOLLWAY_MASTER_KEY", "TOLLWAY_CONFIG")}
        for _ in range(n):
            port = free_port()
            log = (self.tmp_path / f"gateway-{len(self.procs)}.log").open("wb")
            proc = subprocess.Popen([sys.executable, "-m", "tollway.cli", "serve", "--config", str(self.config_path),
                                     "--port", str(port)], cwd=REPO, env=env, stdout=log, stderr=log,
                                    start_new_session=True)
            self.procs.append(proc)
            self.ports.append(port)
        await asyncio.gather(*(self._live(i) for i in range(len(self.procs) - n, len(self.procs))))

    async def _live(self, i: int) -> None:
        deadline = time.monotonic() + 60
        async with aiohttp.ClientSession() as s:
            while True:
                if self.procs[i].poll() is not None:
                    raise AssertionError(f"gateway {i} exited:\n{self.log(i)}")
                try:
                    async with s.get(f"{self.url(i)}/health/live") as r:
                        if r.status == 200:
                            return
                except aiohttp.ClientError:
                    pass
                if time.monotonic() > deadline:
                    raise AssertionError(f"gateway {i} did not start:\n{self.log(i)}")
                await asyncio.sleep(0.1)

    def log(self, i: int) -> str:
        return (self.tmp_path / f"gateway-{i}.log").read_text(errors="replace")[-4000:]

    def kill(self, i: int) -> None:
        os.killpg(self.procs[i].pid, signal.SIGKILL)
        self.procs[i].wait(10)

    def alive(self, i: int) -> bool:
        return self.procs[i].poll() is None

    def stop(self) -> None:
        for proc in self.procs:
            if proc.poll() is None:
                os.killpg(proc.pid, signal.SIGTERM)
        for proc in self.procs:
            try:
                proc.wait(15)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()


def gateway_config(tmp_path: Path, database: str, redis: str | None, mock_url: str, **limits: Any) -> dict[str, Any]:
    return {
        "database_url": database,
        "ledger_spool_path": str(tmp_path / "spool.db"),
        "master_key": MASTER,
        "redis_url": redis,
        "tenancy_poll_s": 0.05,
        "log_level": "warning",
        "providers": {"openai": {"api_key": "sk-test", "base_url": mock_url},
                      "anthropic": {"api_key": "sk-ant-test", "base_url": mock_url}},
        "mock": {"enabled": False},
        "prices": {"openai/gpt-4o-mini": {"input": "1000", "output": "1000"}},  # $0.001 a token
        "timeouts": {"connect": 2, "read": 20, "total": 60},
        "limits": {"rules_poll_s": 0.1, "lease_s": 3, "reconcile_s": 3600, **limits},
    }


async def admin(s: aiohttp.ClientSession, base: str, method: str, path: str, body: Any = None,
                status: int = 200) -> Any:
    async with s.request(method, f"{base}/admin/api{path}", json=body,
                         headers={"authorization": f"Bearer {MASTER}"}) as r:
        data = await r.json() if r.status != 204 else None
        assert r.status == status, (r.status, data)
        return data


async def provision(c: Cluster, rule_path: str, rule: dict[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
    """An org, a project and a key (through process 0) and one rule on the project; returns once every
    process knows the key and the rule."""
    async with aiohttp.ClientSession() as s:
        base = c.url(0)
        org = await admin(s, base, "POST", "/orgs", {"slug": "acme", "name": "Acme"}, 201)
        project = await admin(s, base, "POST", "/projects", {"org_id": org["id"], "slug": "rerank",
                                                             "name": "Rerank"}, 201)
        key = await admin(s, base, "POST", "/keys", {"name": "ci", "project_id": project["id"]}, 201)
        created = await admin(s, base, "POST", rule_path, {**rule, "scope_id": project["id"]}, 201)
        revision = (await admin(s, base, "GET", "/limits/stats"))["rules_revision"]
        deadline = time.monotonic() + 30
        for i in range(len(c.procs)):
            while True:
                stats = await admin(s, c.url(i), "GET", "/limits/stats")
                async with s.get(f"{c.url(i)}/v1/models", headers={"authorization": f"Bearer {key['key']}"}) as r:
                    known = r.status == 200
                if known and stats["rules_revision"] >= revision:
                    break
                assert time.monotonic() < deadline, "a process did not pick up the key and the rule"
                await asyncio.sleep(0.05)
        return key, created


async def respond(s: aiohttp.ClientSession, base: str, key: str, text: str, max_output: int = 16,
                  model: str = "gpt-4o-mini") -> tuple[int, dict[str, str], dict[str, Any]]:
    body = {"model": model, "input": text, "max_output_tokens": max_output, "store": False}
    async with s.post(f"{base}/v1/responses", json=body, headers={"authorization": f"Bearer {key}"}) as r:
        return r.status, {k.lower(): v for k, v in r.headers.items()}, json.loads(await r.read(), parse_float=Decimal)


async def ledger(database: str, key_id: str, n: int, timeout: float = 60.0) -> tuple[int, Decimal]:
    """(rows, Σ total_usd) of the key once the ledger holds at least ``n`` rows for it."""
    engine = create_engine(database)
    deadline = time.monotonic() + timeout
    try:
        while True:
            async with engine.connect() as conn:
                rows = (await conn.execute(select(LEDGER.c.total_usd).where(LEDGER.c.key_id == key_id))).all()
            if len(rows) >= n or time.monotonic() > deadline:
                return len(rows), sum((D(str(r[0])) for r in rows if r[0] is not None), D(0))
            await asyncio.sleep(0.2)
    finally:
        await engine.dispose()


def figures(name: str, **values: Any) -> None:
    print(f"\n[limits figures] {name}: " + ", ".join(f"{k}={v}" for k, v in values.items()))

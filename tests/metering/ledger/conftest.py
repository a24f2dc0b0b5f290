"""Fixtures for the ledger tests: a database on SQLite (a tmp file) and on PostgreSQL (a fresh database per
test, dropped afterwards), migrated; an ExchangeRecord factory; a TCP proxy to cut the database."""

from __future__ import annotations

import asyncio
import os
import threading
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from decimal import Decimal
from pathlib import Path
from typing import Any

import asyncpg  # type: ignore[import-untyped]
import pytest

from tollway.core.context import ExchangeRecord, Principal
from tollway.core.types import Usage
from tollway.metering.cost import CostBreakdown
from tollway.storage.migrate import upgrade_async

PG_ADMIN_URL = os.environ.get("TOLLWAY_TEST_PG", "postgresql://postgres@127.0.0.1:5432/test")


async def create_pg_database() -> str:
    name = f"tollway_ledger_{uuid.uuid4().hex[:12]}"
    try:
        admin = await asyncpg.connect(PG_ADMIN_URL, timeout=3)
    except (OSError, asyncpg.PostgresError) as exc:
        if os.environ.get("CI"):
            pytest.fail(f"PostgreSQL unreachable at {PG_ADMIN_URL}: {exc!r}")
        pytest.skip(f"PostgreSQL unreachable at {PG_ADMIN_URL}: {exc!r}")
    try:
        await admin.execute(f'CREATE DATABASE "{name}"')
    finally:
        await admin.close()
    return PG_ADMIN_URL.rsplit("/", 1)[0] + "/" + name


async def drop_pg_database(url: str) -> None:
    name = url.rsplit("/", 1)[1]
    admin = await asyncpg.connect(PG_ADMIN_URL, timeout=3)
    try:
        await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    finally:
        await admin.close()


@pytest.fixture(params=["sqlite", "postgresql"])
async def db_url(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[str]:
    """A migrated, empty database."""
    if request.param == "sqlite":
        url = f"sqlite+aiosqlite:///{tmp_path}/tollway.db"
        await upgrade_async(url)
        yield url
        return
    url = await create_pg_database()
    try:
        await upgrade_async(url)
        yield url
    finally:
        await drop_pg_database(url)


PRINCIPAL = Principal(key_id="key_1", key_name="ci", org_id="org_1", org_name="Acme", team_id="team_1",
                      team_name="Core", project_id="proj_1", project_name="Gateway")


def make_record(
    n: int = 0,
    *,
    principal: Principal | None = PRINCIPAL,
    status: str = "completed",
    cost: Decimal | None = Decimal("0.000123"),
    created_at: float | None = None,
    model: str = "gpt-4o-mini",
    **extra: Any,
) -> ExchangeRecord:
    breakdown = None
    if cost is not None:
        breakdown = CostBreakdown(status="priced", price_table_version="2025-01", input_usd=cost,
                                  cached_input_usd=Decimal(0), cache_write_usd=Decimal(0), output_usd=Decimal(0),
                                  total_usd=cost)
    fields: dict[str, Any] = {
        "request_id": f"req_{n}",
        "created_at": time.time() if created_at is None else created_at,
        "principal": principal,
        "end_user_id": None,
        "end_user_external_id": None,
        "door": "responses",
        "model": model,
        "provider": "openai",
        "upstream_model": model,
        "streaming": False,
        "status": status,
        "http_status": 200 if status == "completed" else 500,
        "error_code": None if status == "completed" else "server_error",
        "usage": Usage(input_tokens=10 + n, output_tokens=5, cached_tokens=2, reasoning_tokens=1),
        "cost": breakdown,
        "latency_ms": 12.5,
        "overhead_ms": 0.4,
        "tags": {"n": str(n)},
    }
    fields.update(extra)
    return ExchangeRecord(**fields)


class TcpProxy:
    """A TCP forwarder on 127.0.0.1 in its own thread; :meth:`cut` refuses and drops every connection
    (the database looks dead), :meth:`restore` forwards again on the same port."""

    def __init__(self, target_host: str, target_port: int) -> None:
        self.target = (target_host, target_port)
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.server: asyncio.Server | None = None
        self.writers: set[asyncio.StreamWriter] = set()
        self.port = 0

    def __enter__(self) -> TcpProxy:
        self.thread.start()
        self._call(self._listen())
        return self

    def __exit__(self, *exc: object) -> None:
        self._call(self._close())
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(5)

    def cut(self) -> None:
        self._call(self._close())

    def restore(self) -> None:
        self._call(self._listen())

    def _call(self, coro: Any) -> Any:
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(10)

    async def _listen(self) -> None:
        self.server = await asyncio.start_server(self._handle, "127.0.0.1", self.port, reuse_address=True)
        self.port = self.server.sockets[0].getsockname()[1]

    async def _close(self) -> None:
        if self.server is not None:
            self.server.close()
            await self.server.wait_closed()
            self.server = None
        for w in list(self.writers):
            w.transport.abort()
        self.writers.clear()

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            up_reader, up_writer = await asyncio.open_connection(*self.target)
        except OSError:
            writer.transport.abort()
            return
        if self.server is None:  # cut while this connection was being set up
            writer.transport.abort()
            up_writer.transport.abort()
            return
        self.writers.update((writer, up_writer))

        async def pipe(src: asyncio.StreamReader, dst: asyncio.StreamWriter) -> None:
            try:
                while data := await src.read(65536):
                    dst.write(data)
                    await dst.drain()
            except (OSError, asyncio.IncompleteReadError):
                pass
            finally:
                dst.transport.abort()
                self.writers.discard(dst)

        await asyncio.gather(pipe(reader, up_writer), pipe(up_reader, writer))


@pytest.fixture
def pg_proxy_url() -> Iterator[tuple[TcpProxy, str]]:
    """A fresh (unmigrated) PostgreSQL database reached through a :class:`TcpProxy`: (proxy, url)."""
    url = asyncio.run(create_pg_database())
    host_port = url.split("@", 1)[1].split("/", 1)[0]
    host, _, port = host_port.partition(":")
    try:
        with TcpProxy(host, int(port or 5432)) as proxy:
            yield proxy, url.replace(host_port, f"127.0.0.1:{proxy.port}")
    finally:
        asyncio.run(drop_pg_database(url))

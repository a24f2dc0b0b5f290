"""The ledger end to end through a running gateway (uvicorn + the mock upstream), on SQLite and PostgreSQL:
every request is exactly one row with the cost the client saw; a database outage mid-load loses and
duplicates nothing; a spool that fills stays bounded; a SIGKILLed gateway's rows are shipped by the next.

The outage figures are printed (run with ``-s`` to see them)."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path
from typing import Any

import aiohttp
import pytest
import yaml
from sqlalchemy import func, select

from tests.e2e.server import free_port, running_gateway, running_mock
from tests.metering.ledger.conftest import TcpProxy, create_pg_database, drop_pg_database
from tollway.metering.ledger import rollups
from tollway.metering.ledger.rollups import LEDGER
from tollway.settings import Settings
from tollway.storage.engine import create_engine
from tollway.storage.migrate import upgrade

REPO = Path(__file__).resolve().parents[3]
KINDS = ("resp", "resp_stream", "chat", "chat_stream", "fault", "stream_fault", "disconnect", "invalid", "abandon")


@pytest.fixture(scope="module")
def mock_url() -> Iterator[str]:
    with running_mock() as url:
        yield url


def settings(mock_url: str, database_url: str, spool: Path, **extra: Any) -> Settings:
    data: dict[str, Any] = {
        "database_url": database_url,
        "ledger_spool_path": str(spool),
        "providers": {
            "openai": {"api_key": "sk-test", "base_url": mock_url},
            "anthropic": {"api_key": "sk-ant-test", "base_url": mock_url},
            "compat": {"kind": "openai_chat", "api_key": "sk-compat", "base_url": mock_url},
        },
        "models": {"chatty": "compat/gpt-4o-mini"},
        "mock": {"enabled": False},
        "timeouts": {"connect": 2, "read": 5, "total": 20},
        **extra,
    }
    return Settings.model_validate(data)


@pytest.fixture(params=["sqlite", "postgresql"])
async def database(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[str]:
    """An empty database; the gateway migrates it."""
    if request.param == "sqlite":
        yield f"sqlite+aiosqlite:///{tmp_path}/gw.db"
        return
    url = await create_pg_database()
    try:
        yield url
    finally:
        await drop_pg_database(url)


@dataclass
class Expect:
    request_id: str
    kind: str
    status: str
    http_status: int
    error_code: str | None = None
    cost: Decimal | None = None  # total_usd the client saw
    check_cost: bool = True
    tags: dict[str, str] = field(default_factory=dict)
    end_user: str | None = None
    seen_at: float = 0.0


def _frames(raw: bytes) -> list[Any]:
    out = []
    for block in raw.decode().split("\n\n"):
        for line in block.splitlines():
            if line.startswith("data: ") and line != "data: [DONE]":
                out.append(json.loads(line[6:], parse_float=Decimal))
    return out


def _total(tollway_block: dict[str, Any]) -> Decimal | None:
    value = tollway_block["cost"]["total_usd"]
    return None if value is None else Decimal(value)


async def fire(s: aiohttp.ClientSession, gw: str, n: int, kind: str, prefix: str = "e2e") -> Expect:
    rid = f"{prefix}-{n}"
    tags = {"a": "1", "b": str(n)}
    headers = {"x-request-id": rid, "x-tollway-tags": f"a=1,b={n}", "x-tollway-end-user": f"user{n % 3}"}
    msgs = [{"role": "user", "content": f"hello {n}"}]
    e = Expect(rid, kind, "completed", 200, tags=tags, end_user=f"user{n % 3}")
    if kind in ("resp", "chat", "fault", "invalid"):
        url, body = {
            "resp": ("/v1/responses", {"model": "gpt-4o-mini", "input": f"hello {n}", "store": False}),
            "chat": ("/v1/chat/completions", {"model": "chatty", "messages": msgs}),
            "fault": ("/v1/chat/completions", {"model": "gpt-4o-mini", "messages": [
                {"role": "user", "content": "[mock:fault=500] boom"}]}),
            "invalid": ("/v1/responses", {"model": "gpt-4o-mini"}),
        }[kind]
        async with s.post(gw + url, json=body, headers=headers) as r:
            data = json.loads(await r.read(), parse_float=Decimal)
            e.http_status = r.status
        if r.status == 200:
            e.cost = _total(data["tollway"])
        else:
            e.status, e.error_code = "error", data["error"]["code"] or data["error"]["type"]
    elif kind in ("resp_stream", "stream_fault"):
        text = f"hello {n}" if kind == "resp_stream" else "[mock:fault=stream_error] x"
        async with s.post(gw + "/v1/responses", json={"model": "gpt-4o-mini", "input": text, "stream": True,
                                                      "store": False}, headers=headers) as r:
            frames = _frames(await r.read())
        final = frames[-1]
        if kind == "resp_stream":
            assert final["type"] == "response.completed"
            e.cost = _total(final["response"]["tollway"])
        else:
            failed = next(f for f in frames if f.get("type") == "response.failed")
            e.status, e.error_code = "failed", failed["response"]["error"]["code"]
            e.check_cost = False
    elif kind == "chat_stream":
        async with s.post(gw + "/v1/chat/completions", json={
                "model": "claude-haiku-4-5", "messages": msgs, "stream": True,
                "stream_options": {"include_usage": True}}, headers=headers) as r:
            frames = _frames(await r.read())
        e.cost = _total(frames[-1]["tollway"])
    elif kind == "disconnect":
        r = await s.post(gw + "/v1/chat/completions", json={
            "model": "claude-haiku-4-5", "stream": True,
            "messages": [{"role": "user", "content": "[mock:chunks=40,delay_ms=25] long answer"}]}, headers=headers)
        await r.content.readline()
        r.close()
        e.status, e.http_status, e.error_code, e.check_cost = "client_disconnected", 499, "client_disconnected", False
    elif kind == "abandon":  # the client gives up on a slow non-streaming answer: the upstream call is still billed
        # the answer takes ~3 s; the client waits 1 s, long enough for a loaded gateway to have accepted the
        # request (a connection closed before the server even read the request is not a request it served)
        body = {"model": "gpt-4o-mini", "input": f"[mock:delay_ms=1500] hello {n}", "store": False}
        try:  # own connection: the request is sent at once, not queued behind the shared pool
            async with aiohttp.ClientSession() as own, own.post(
                    gw + "/v1/responses", json=body, headers=headers, timeout=aiohttp.ClientTimeout(total=1.0)) as r:
                raise AssertionError(f"answered before the client gave up: {r.status}")
        except TimeoutError:
            e.check_cost = False
    e.seen_at = time.monotonic()
    return e


async def load(gw: str, ns: range, kinds: tuple[str, ...] = KINDS, prefix: str = "e2e") -> list[Expect]:
    connector = aiohttp.TCPConnector(limit=100)
    async with aiohttp.ClientSession(connector=connector) as s:
        return list(await asyncio.gather(*(fire(s, gw, n, kinds[n % len(kinds)], prefix) for n in ns)))


async def ledger_rows(url: str) -> dict[str, dict[str, Any]]:
    engine = create_engine(url)
    try:
        async with engine.connect() as conn:
            rows = (await conn.execute(select(LEDGER))).mappings().all()
            return {r["request_id"]: dict(r) for r in rows}
    finally:
        await engine.dispose()


async def row_counts(url: str) -> tuple[int, int]:
    engine = create_engine(url)
    try:
        async with engine.connect() as conn:
            total = (await conn.execute(select(func.count()).select_from(LEDGER))).scalar_one()
            distinct = (await conn.execute(select(func.count(LEDGER.c.request_id.distinct())))).scalar_one()
            return int(total), int(distinct)
    finally:
        await engine.dispose()


async def assert_rollups_match(url: str) -> None:
    engine = create_engine(url)
    try:
        async with engine.connect() as conn:
            assert await rollups.stored(conn) == await rollups.from_rows(conn)
    finally:
        await engine.dispose()


async def wait_rows(url: str, n: int, timeout: float = 60.0) -> float:
    started = time.monotonic()
    while (await row_counts(url))[0] < n:
        if time.monotonic() - started > timeout:
            raise AssertionError(f"ledger has {(await row_counts(url))[0]} rows, expected {n}")
        await asyncio.sleep(0.1)
    return time.monotonic() - started


async def ready(gw: str) -> tuple[int, dict[str, Any]]:
    async with aiohttp.ClientSession() as s, s.get(f"{gw}/health/ready") as r:
        return r.status, await r.json()


def check_rows(expected: list[Expect], rows: dict[str, dict[str, Any]]) -> None:
    for e in expected:
        row = rows[e.request_id]
        assert (row["status"], row["http_status"], row["error_code"]) == (e.status, e.http_status, e.error_code), e
        assert row["streaming"] == (e.kind in ("resp_stream", "chat_stream", "stream_fault", "disconnect")), e
        assert row["tags"] == e.tags and row["end_user_external_id"] == e.end_user, e
        total = row["total_usd"]
        if e.check_cost:
            assert (None if total is None else Decimal(total)) == e.cost, (e, total)
        if e.kind == "disconnect":  # tokens seen so far: Anthropic reports the input at message start
            assert row["input_tokens"] > 0 and row["cost_status"] == "priced", row
        if e.status == "completed":
            priced = e.kind != "chat"  # "chatty" is an alias to a provider without prices
            assert row["cost_status"] == ("priced" if priced else "unpriced"), row
            assert (total is not None and Decimal(total) > 0) == priced, row
            assert row["input_tokens"] > 0 and row["output_tokens"] > 0, row
            assert row["model"] == ("chatty" if e.kind == "chat" else row["upstream_model"]), row


async def test_every_request_is_one_row_with_its_cost(mock_url: str, database: str, tmp_path: Path) -> None:
    n = 200
    with running_gateway(settings(mock_url, database, tmp_path / "spool.db")) as gw:
        expected = await load(gw, range(n))
        try:
            await wait_rows(database, n, timeout=20)
        except AssertionError:
            rows = await ledger_rows(database)
            missing = sorted({(e.kind, e.http_status) for e in expected if e.request_id not in rows})
            raise AssertionError(f"requests without a ledger row: {missing}") from None
        status, body = await ready(gw)
        assert status == 200 and body["checks"]["ledger"] in ("ok", "spooling")
    assert await row_counts(database) == (n, n)
    rows = await ledger_rows(database)
    check_rows(expected, rows)
    kinds = {e.kind for e in expected}
    assert kinds == set(KINDS)
    await assert_rollups_match(database)


async def test_database_killed_mid_load_loses_and_duplicates_nothing(
        mock_url: str, pg_proxy_url: tuple[TcpProxy, str], tmp_path: Path) -> None:
    proxy, url = pg_proxy_url
    direct = url.replace(f"127.0.0.1:{proxy.port}", os.environ.get("TOLLWAY_TEST_PG_HOSTPORT", "127.0.0.1:5432"))
    kinds = ("resp", "resp_stream", "chat", "chat_stream", "fault", "stream_fault", "invalid", "disconnect")
    figures: dict[str, Any] = {}
    with running_gateway(settings(mock_url, url, tmp_path / "spool.db")) as gw:
        before = await load(gw, range(0, 100), kinds)
        await wait_rows(direct, 100)
        proxy.cut()
        t0 = time.monotonic()
        during: list[Expect] = []
        peak_rows = peak_bytes = 0
        for wave in range(6):  # 600 requests in waves over a few seconds while the database is unreachable
            during += await load(gw, range(100 + wave * 100, 200 + wave * 100), kinds)
            await asyncio.sleep(0.5)
            status, body = await ready(gw)
            assert status == 200 and body["status"] == "degraded" and body["checks"]["ledger"] == "spooling"
            assert "spooled" in body["detail"] and body["ledger"]["last_error"]
            peak_rows = max(peak_rows, body["ledger"]["spool_rows"])
            peak_bytes = max(peak_bytes, body["ledger"]["spool_bytes"])
        figures["outage_s"] = round(time.monotonic() - t0, 2)
        status, body = await ready(gw)
        figures["lag_s_at_restore"] = body["ledger"]["lag_s"]
        served = [e for e in during if e.http_status in (200, 499)]  # the rest: the mock's 500 and invalid input
        assert len(served) == len([e for e in during if e.kind not in ("fault", "invalid")])
        assert all(e.http_status == {"fault": 502, "invalid": 400}[e.kind] for e in during if e not in served)
        for _ in range(100):  # the last disconnects get recorded and committed
            status, body = await ready(gw)
            spooled = body["ledger"]["spool_rows"]
            if spooled >= len(during):
                break
            await asyncio.sleep(0.05)
        assert spooled == len(during) and body["ledger"]["shipped"] == 100 and body["ledger"]["dropped"] == 0
        proxy.restore()
        t1 = time.monotonic()
        await wait_rows(direct, 100 + len(during))
        figures["recovery_s"] = round(time.monotonic() - t1, 2)
        after = await load(gw, range(700, 750), kinds)
        await wait_rows(direct, 750)
        status, body = await ready(gw)
        assert status == 200 and body["status"] == "ok" and body["ledger"]["database_ok"]
        figures["shipper_duplicates"] = body["ledger"]["duplicates"]
    total, distinct = await row_counts(direct)
    figures.update(requests_during_outage=len(during), served_during_outage=len(served),
                   spool_rows_peak=max(peak_rows, spooled), spool_bytes_peak=peak_bytes, rows_recovered=spooled,
                   ledger_rows=total, distinct_request_ids=distinct, duplicates=total - distinct, lost=750 - distinct)
    print("\nLEDGER OUTAGE FIGURES", json.dumps(figures))
    assert (total, distinct) == (750, 750)
    check_rows(before + during + after, await ledger_rows(direct))
    await assert_rollups_match(direct)


async def test_spool_stays_bounded_while_the_database_stays_down(
        mock_url: str, pg_proxy_url: tuple[TcpProxy, str], tmp_path: Path) -> None:
    proxy, url = pg_proxy_url
    direct = url.replace(f"127.0.0.1:{proxy.port}", "127.0.0.1:5432")
    with running_gateway(settings(mock_url, url, tmp_path / "spool.db", ledger_spool_max_rows=120)) as gw:
        proxy.cut()
        expected = await load(gw, range(200), ("resp", "chat"))
        assert all(e.http_status == 200 for e in expected)  # admitted requests are still served
        for _ in range(100):  # the last group commit may still be on its way to disk
            status, body = await ready(gw)
            ledger = body["ledger"]
            if ledger["spool_rows"] + ledger["dropped"] == 200:
                break
            await asyncio.sleep(0.05)
        assert status == 503 and body["checks"]["ledger"] == "spool_full" and body["status"] == "unavailable"
        assert ledger["spool_rows"] == 120 and ledger["dropped"] == 80 and ledger["queued"] == 0
        assert ledger["spool_bytes"] < 2 * 1024 * 1024  # rows are on disk, a few hundred bytes each
        proxy.restore()
        await wait_rows(direct, 120)
        for _ in range(100):
            status, body = await ready(gw)
            if status == 200:
                break
            await asyncio.sleep(0.05)
        assert status == 200 and body["ledger"]["spool_rows"] == 0
    assert await row_counts(direct) == (120, 120)


def _serve(config: Path, port: int) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [sys.executable, "-m", "tollway.cli", "serve", "--config", str(config), "--port", str(port)],
        cwd=REPO, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, start_new_session=True)


async def _wait_live(port: int, proc: subprocess.Popen[bytes]) -> None:
    deadline = time.monotonic() + 60
    async with aiohttp.ClientSession() as s:
        while True:
            if proc.poll() is not None:
                raise AssertionError(f"gateway exited: {proc.stderr.read().decode() if proc.stderr else ''}")
            try:
                async with s.get(f"http://127.0.0.1:{port}/health/live") as r:
                    if r.status == 200:
                        return
            except aiohttp.ClientError:
                pass
            if time.monotonic() > deadline:
                raise AssertionError("gateway did not start")
            await asyncio.sleep(0.1)


async def test_sigkilled_gateway_rows_are_shipped_by_the_next_process(
        mock_url: str, pg_proxy_url: tuple[TcpProxy, str], tmp_path: Path) -> None:
    proxy, url = pg_proxy_url
    direct = url.replace(f"127.0.0.1:{proxy.port}", "127.0.0.1:5432")
    config = tmp_path / "tollway.yaml"
    config.write_text(yaml.safe_dump(settings(mock_url, url, tmp_path / "spool.db").model_dump(
        mode="json", exclude_none=True, include={"database_url", "ledger_spool_path", "providers", "models",
                                                 "mock", "timeouts"})))
    await asyncio.to_thread(upgrade, url)
    procs: list[subprocess.Popen[bytes]] = []
    try:
        port = free_port()
        first = _serve(config, port)
        procs.append(first)
        await _wait_live(port, first)
        proxy.cut()
        gw = f"http://127.0.0.1:{port}"
        expected = await load(gw, range(60), ("resp", "resp_stream", "chat", "fault"), prefix="kill")
        for _ in range(100):
            _, body = await ready(gw)
            if body["ledger"]["spool_rows"] == 60:
                break
            await asyncio.sleep(0.05)
        assert body["ledger"]["spool_rows"] == 60 and body["ledger"]["shipped"] == 0
        os.killpg(first.pid, signal.SIGKILL)  # no shutdown hook runs: the rows are only in the spool file
        first.wait(10)
        proxy.restore()
        assert await row_counts(direct) == (0, 0)
        port = free_port()
        second = _serve(config, port)
        procs.append(second)
        await _wait_live(port, second)
        await wait_rows(direct, 60, timeout=30)
        _, body = await ready(f"http://127.0.0.1:{port}")
        assert body["ledger"]["spool_path"].endswith("spool.0.db")
    finally:
        for proc in procs:
            if proc.poll() is None:
                os.killpg(proc.pid, signal.SIGTERM)
                try:
                    proc.wait(15)
                except subprocess.TimeoutExpired:
                    os.killpg(proc.pid, signal.SIGKILL)
                    proc.wait()
    assert await row_counts(direct) == (60, 60)
    check_rows(expected, await ledger_rows(direct))
    await assert_rollups_match(direct)

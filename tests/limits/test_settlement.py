"""Settlement through a real gateway process over real sockets: on completion (JSON and streamed), on an
upstream error and on a client disconnect mid-stream (with the tokens seen so far), the reservation is
released, the concurrency slot freed, TPM corrected, and the budget's spend equals the ledger's."""

from __future__ import annotations

import asyncio
import time
from decimal import Decimal
from pathlib import Path
from typing import Any

import aiohttp
from sqlalchemy import select

from tests.limits.cluster import Cluster, admin, figures, gateway_config, provision, respond
from tollway.metering.ledger.rollups import LEDGER
from tollway.storage.engine import create_engine

D = Decimal


async def ledger_rows(database: str, key_id: str, n: int) -> dict[str, tuple[str, Decimal | None]]:
    """request id -> (status, total_usd), once the key has ``n`` rows."""
    engine = create_engine(database)
    deadline = time.monotonic() + 30
    try:
        while True:
            async with engine.connect() as conn:
                rows = (await conn.execute(select(LEDGER.c.request_id, LEDGER.c.status, LEDGER.c.total_usd)
                                           .where(LEDGER.c.key_id == key_id))).all()
            if len(rows) >= n:
                return {r[0]: (r[1], None if r[2] is None else D(str(r[2]))) for r in rows}
            assert time.monotonic() < deadline, f"{len(rows)} ledger rows, expected {n}"
            await asyncio.sleep(0.1)
    finally:
        await engine.dispose()


async def test_settlement_on_every_outcome(mock_url: str, database: str, redis_url: str, tmp_path: Path,
                                           cluster_factory: list[Cluster]) -> None:
    config = gateway_config(tmp_path, database, redis_url, mock_url)
    config["prices"]["anthropic/claude-sonnet-4-5"] = {"input": "1000", "output": "1000"}
    c = Cluster(tmp_path, config)
    cluster_factory.append(c)
    await c.start(1)
    key, budget = await provision(c, "/budgets", {"scope": "project", "limit_usd": "5", "period": "daily"})
    gw = c.url(0)
    auth = {"authorization": f"Bearer {key['key']}"}
    async with aiohttp.ClientSession() as s:
        rate = await admin(s, gw, "POST", "/rate-limits", {"scope": "key", "scope_id": key["id"], "tpm": 100_000,
                                                           "max_concurrent": 1}, 201)

        async def state() -> tuple[dict[str, Any], dict[str, Any]]:
            for _ in range(100):  # settlements land just after the response
                b = await admin(s, gw, "GET", f"/budgets/{budget['id']}/status")
                r = await admin(s, gw, "GET", f"/rate-limits/{rate['id']}/status")
                if D(b["reserved_usd"]) == 0 and r["concurrent"]["used"] == 0:
                    return b, r
                await asyncio.sleep(0.05)
            raise AssertionError(f"not settled: {b} {r}")

        spent = D(0)
        # 1. completed (JSON)
        status, _, body = await respond(s, gw, key["key"], "one two three four")
        assert status == 200
        spent += D(str(body["tollway"]["cost"]["total_usd"]))
        b, r = await state()
        assert D(b["spent_usd"]) == spent > 0
        assert r["tokens"]["used"] == body["usage"]["total_tokens"]  # TPM corrected from the reservation
        # 2. completed (streamed)
        async with s.post(f"{gw}/v1/responses", headers={**auth, "x-request-id": "lim-stream"}, json={
                "model": "gpt-4o-mini", "input": "stream me please", "stream": True, "max_output_tokens": 16}) as resp:
            raw = await resp.read()
        assert b"response.completed" in raw
        # 3. upstream error before any output
        status, _, body = await respond(s, gw, key["key"], "[mock:fault=500] boom")
        assert status == 502
        await state()  # its settlement frees the single concurrency slot before the next request
        # 4. client disconnect mid-stream (Anthropic reports the input tokens at message_start)
        async with s.post(f"{gw}/v1/responses", headers={**auth, "x-request-id": "lim-cut"}, json={
                "model": "claude-sonnet-4-5", "stream": True, "max_output_tokens": 200,
                "input": "[mock:delay_ms=300] " + "word " * 40}) as resp:
            assert resp.status == 200, await resp.read()
            async for line in resp.content:
                if b"response.output_text.delta" in line:
                    break
            resp.close()
        b, r = await state()
        rows = await ledger_rows(database, key["id"], 4)
    assert rows["lim-stream"][0] == "completed" and rows["lim-cut"][0] == "client_disconnected"
    cut = rows["lim-cut"][1]
    assert cut is not None and cut > 0  # charged for what was consumed before the disconnect
    ledger_total = sum((v for _, v in rows.values() if v is not None), D(0))
    assert D(b["spent_usd"]) == ledger_total
    assert r["concurrent"]["used"] == 0
    figures("settlement on every outcome", spent_usd=b["spent_usd"], ledger_usd=ledger_total,
            disconnect_charged_usd=cut, reserved_after_usd=b["reserved_usd"])

"""Budgets and rate limits across real gateway processes (``tollway serve`` subprocesses) sharing Redis and
a database (PostgreSQL, else SQLite), against the mock upstream:

* 200 concurrent requests on a $1 budget through two processes, slow upstream → admitted spend within the
  bound (fit: <= $1; cross: <= $1 + one reservation), and budget spend == Σ response costs == the ledger;
* two processes at 100 RPM → exactly 100 admitted, the rest 429 with correct headers;
* a process killed mid-request → its reservation and concurrency slot expire with the lease;
* Redis stopped mid-run → the configured policy holds (open: served unchecked; closed: 503), no crash, and
  after Redis returns empty, reconciliation restores the spend from the ledger.

Measured figures are printed (``pytest -s``)."""

from __future__ import annotations

import asyncio
import time
from decimal import Decimal
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from tests.limits.cluster import SLOW, Cluster, admin, figures, gateway_config, ledger, provision, respond
from tests.limits.conftest import PrivateRedis
from tollway.core.types import CanonicalRequest
from tollway.limits.tokens import TokenCounter

D = Decimal


@pytest.mark.parametrize("mode", ["fit", "cross"])
async def test_two_processes_hold_a_one_dollar_budget(mode: str, mock_url: str, database: str, redis_url: str,
                                                       tmp_path: Path, cluster_factory: list[Cluster]) -> None:
    c = Cluster(tmp_path, gateway_config(tmp_path, database, redis_url, mock_url, budget_admission=mode))
    cluster_factory.append(c)
    await c.start(2)
    key, budget = await provision(c, "/budgets", {"scope": "project", "limit_usd": "1", "period": "monthly"})
    outcomes: list[tuple[int, Decimal | None, str]] = []
    reservations: list[Decimal] = []
    retries: list[int] = []
    started = time.monotonic()

    async def client(i: int, s: aiohttp.ClientSession) -> None:
        base = c.url(i % 2)
        while True:
            status, _, body = await respond(s, base, key["key"], f"request {i} please answer {SLOW}")
            if status == 429 and body["error"]["code"] == "budget_reserved":
                retries.append(i)
                await asyncio.sleep(0.25)  # only reservations in flight stand in the way: try again
                continue
            cost = D(str(body["tollway"]["cost"]["total_usd"])) if status == 200 else None
            outcomes.append((status, cost, "" if status == 200 else body["error"]["code"]))
            return

    counter = TokenCounter()
    for i in range(200):  # the worst-case reservation of each request: tiktoken input + 16 output tokens
        req = CanonicalRequest(model="gpt-4o-mini", max_output_tokens=16, input=[
            {"type": "message", "role": "user", "content": f"request {i} please answer {SLOW}"}])
        reservations.append((await counter.input_tokens(req, "gpt-4o-mini") + 16) * D("0.001"))

    connector = aiohttp.TCPConnector(limit=0)
    async with aiohttp.ClientSession(connector=connector, timeout=aiohttp.ClientTimeout(total=120)) as s:
        await asyncio.gather(*(client(i, s) for i in range(200)))
        elapsed = time.monotonic() - started
        await asyncio.sleep(0.3)  # the last settlements land
        status = await admin(s, c.url(1), "GET", f"/budgets/{budget['id']}/status")
    admitted = [cost for st, cost, _ in outcomes if st == 200]
    refused = [code for st, _, code in outcomes if st != 200]
    spend = sum((x for x in admitted if x is not None), D(0))
    assert len(outcomes) == 200 and set(refused) <= {"budget_exceeded"}, set(refused)
    assert admitted and refused, "the budget must be exhausted by the run"
    reservation = max(reservations)
    assert D(status["reserved_usd"]) == 0
    assert D(status["spent_usd"]) == spend  # the budget counted exactly what was served
    if mode == "fit":
        assert spend <= D(1)
    else:
        assert spend <= D(1) + reservation
    rows, ledger_total = await ledger(database, key["id"], len(outcomes))
    assert rows >= len(outcomes) and ledger_total == spend
    figures(f"$1 budget, 2 processes, 200 concurrent clients, {mode}", admitted=len(admitted),
            refused_402=len(refused), spend_usd=spend, worst_case_reservation_usd=reservation,
            overspend_usd=max(spend - 1, D(0)), budget_spent_usd=status["spent_usd"], ledger_usd=ledger_total,
            retried_429_budget_reserved=len(retries), seconds=round(elapsed, 2))


async def test_two_processes_at_100_rpm(mock_url: str, database: str, redis_url: str, tmp_path: Path,
                                        cluster_factory: list[Cluster]) -> None:
    c = Cluster(tmp_path, gateway_config(tmp_path, database, redis_url, mock_url))
    cluster_factory.append(c)
    await c.start(2)
    key, rule = await provision(c, "/rate-limits", {"scope": "project", "rpm": 100})
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0)) as s:
        results = await asyncio.gather(*(respond(s, c.url(i % 2), key["key"], f"hi {i}") for i in range(160)))
        later = await respond(s, c.url(0), key["key"], "still limited")
    ok = [h for st, h, _ in results if st == 200]
    limited = [(h, b) for st, h, b in results if st == 429]
    assert len(ok) == 100 and len(limited) == 60 and later[0] == 429
    assert sorted(int(h["x-ratelimit-remaining-requests"]) for h in ok) == list(range(100))  # each slot once
    assert {h["x-ratelimit-limit-requests"] for h in ok} == {"100"}
    retry_after = []
    for h, body in limited:
        assert h["x-ratelimit-limit-requests"] == "100" and h["x-ratelimit-remaining-requests"] == "0", h
        assert h["x-ratelimit-reset-requests"] == "1m0s" and h["x-tollway-rate-limit-rule"] == rule["id"]
        assert 1 <= int(h["retry-after"]) <= 60 and 0 < int(h["retry-after-ms"]) <= 60_000
        assert body["error"]["code"] == "rate_limit_exceeded"
        assert body["error"]["message"].startswith(f"Rate limit reached for project Rerank (rule {rule['id']}) on "
                                                   "requests per min (RPM): Limit 100, Used 100, Requested 1.")
        retry_after.append(int(h["retry-after"]))
    figures("100 RPM, 2 processes, 160 concurrent requests", admitted=len(ok), limited=len(limited),
            retry_after_s=f"{min(retry_after)}..{max(retry_after)}")


async def test_a_killed_process_releases_its_reservation(mock_url: str, database: str, redis_url: str,
                                                         tmp_path: Path, cluster_factory: list[Cluster]) -> None:
    c = Cluster(tmp_path, gateway_config(tmp_path, database, redis_url, mock_url))
    cluster_factory.append(c)
    await c.start(2)
    key, budget = await provision(c, "/budgets", {"scope": "project", "limit_usd": "5", "period": "daily"})
    async with aiohttp.ClientSession() as s:
        concurrency = await admin(s, c.url(0), "POST", "/rate-limits", {
            "scope": "key", "scope_id": key["id"], "max_concurrent": 1}, 201)
        await asyncio.sleep(0.5)  # both processes load the new rule
        doomed = asyncio.ensure_future(respond(s, c.url(0), key["key"], "[mock:delay_ms=20000] slow"))
        deadline = time.monotonic() + 10
        while D((await admin(s, c.url(1), "GET", f"/budgets/{budget['id']}/status"))["reserved_usd"]) == 0:
            assert time.monotonic() < deadline
            await asyncio.sleep(0.05)
        held = await admin(s, c.url(1), "GET", f"/budgets/{budget['id']}/status")
        blocked = await respond(s, c.url(1), key["key"], "second")
        assert blocked[0] == 429 and "Concurrency limit" in blocked[2]["error"]["message"]
        killed_at = time.monotonic()
        c.kill(0)  # SIGKILL: no settlement, no shutdown hook
        with pytest.raises(aiohttp.ClientError):
            await doomed
        while D((await admin(s, c.url(1), "GET", f"/budgets/{budget['id']}/status"))["reserved_usd"]) != 0:
            assert time.monotonic() - killed_at < 10, "the reservation did not expire"
            await asyncio.sleep(0.1)
        released = time.monotonic() - killed_at
        slot = await admin(s, c.url(1), "GET", f"/rate-limits/{concurrency['id']}/status")
        assert slot["concurrent"]["used"] == 0
        after = await respond(s, c.url(1), key["key"], "after")
        assert after[0] == 200
        status = await admin(s, c.url(1), "GET", f"/budgets/{budget['id']}/status")
        assert D(status["reserved_usd"]) == 0
    figures("killed process", reserved_before_kill=held["reserved_usd"], released_after_s=round(released, 2),
            lease_s=3)


@pytest.mark.parametrize("policy", ["open", "closed"])
async def test_redis_stopped_mid_run(policy: str, mock_url: str, database: str, tmp_path: Path,
                                     private_redis: PrivateRedis, cluster_factory: list[Cluster]) -> None:
    c = Cluster(tmp_path, gateway_config(tmp_path, database, private_redis.url, mock_url,
                                         redis_failure_policy=policy, redis_timeout_s=0.2))
    cluster_factory.append(c)
    await c.start(2)
    key, budget = await provision(c, "/budgets", {"scope": "project", "limit_usd": "5", "period": "daily"})
    async with aiohttp.ClientSession() as s:
        before = [await respond(s, c.url(i % 2), key["key"], f"before {i}") for i in range(4)]
        assert [r[0] for r in before] == [200] * 4
        private_redis.stop()
        during = await asyncio.gather(*(respond(s, c.url(i % 2), key["key"], f"during {i}") for i in range(20)))
        expected = 200 if policy == "open" else 503
        assert [r[0] for r in during] == [expected] * 20, [r[2] for r in during if r[0] != expected][:2]
        if policy == "closed":
            assert {r[2]["error"]["code"] for r in during} == {"limits_unavailable"}
            assert {r[1]["retry-after"] for r in during} == {"1"}
        assert c.alive(0) and c.alive(1)
        stats = [await admin(s, c.url(i), "GET", "/limits/stats") for i in range(2)]
        assert all(st["backend_down"] for st in stats)
        counted = sum(st["admitted_unchecked" if policy == "open" else "refused_unavailable"] for st in stats)
        assert counted == 20
        private_redis.start()  # back, and empty (no persistence)
        deadline = time.monotonic() + 15
        after: list[tuple[int, dict[str, str], dict[str, Any]]] = []
        while True:
            after.append(await respond(s, c.url(0), key["key"], "after"))
            if after[-1][0] == 200 and not (await admin(s, c.url(0), "GET", "/limits/stats"))["backend_down"]:
                break
            assert time.monotonic() < deadline, after[-1]
            await asyncio.sleep(0.2)
        served = [r for r in (*before, *during, *after) if r[0] == 200]
        spend = sum((D(str(r[2]["tollway"]["cost"]["total_usd"])) for r in served), D(0))
        await ledger(database, key["id"], 4 + 20 + len(after))
        await asyncio.sleep(0.2)
        raised = await admin(s, c.url(1), "POST", "/limits/reconcile?horizon_s=0")
        status = await admin(s, c.url(1), "GET", f"/budgets/{budget['id']}/status")
    assert [r["budget_id"] for r in raised["raised"]] == [budget["id"]]
    assert D(status["spent_usd"]) == spend  # Redis lost everything; the ledger brought the spend back
    figures(f"redis stopped mid-run, policy {policy}", served_during_outage=sum(r[0] == 200 for r in during),
            refused_during_outage=sum(r[0] == 503 for r in during), spend_restored_usd=status["spent_usd"])


async def test_one_process_without_redis_is_exact(mock_url: str, database: str, tmp_path: Path,
                                                  cluster_factory: list[Cluster]) -> None:
    """No REDIS_URL: the process's memory holds the counters, exactly: 200 clients (retrying while only
    reservations in flight refuse them) against a $0.5 budget and 40 RPM → exactly 40 admitted."""
    c = Cluster(tmp_path, gateway_config(tmp_path, database, None, mock_url))
    cluster_factory.append(c)
    await c.start(1)
    key, budget = await provision(c, "/budgets", {"scope": "project", "limit_usd": "0.5", "period": "weekly"})
    results: list[tuple[int, dict[str, str], dict[str, Any]]] = []

    async def client(i: int, s: aiohttp.ClientSession) -> None:
        while True:
            result = await respond(s, c.url(0), key["key"], f"request {i} please answer {SLOW}")
            if result[0] == 429 and result[2]["error"]["code"] == "budget_reserved":
                await asyncio.sleep(0.25)
                continue
            results.append(result)
            return

    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0)) as s:
        stats = await admin(s, c.url(0), "GET", "/limits/stats")
        assert stats["backend"] == "memory"
        await admin(s, c.url(0), "POST", "/rate-limits", {"scope": "key", "scope_id": key["id"], "rpm": 40}, 201)
        await asyncio.gather(*(client(i, s) for i in range(200)))
        await asyncio.sleep(0.3)
        status = await admin(s, c.url(0), "GET", f"/budgets/{budget['id']}/status")
    admitted = [b for st, _, b in results if st == 200]
    codes = sorted({b["error"]["code"] for st, _, b in results if st != 200})
    spend = sum((D(str(b["tollway"]["cost"]["total_usd"])) for b in admitted), D(0))
    assert len(admitted) == 40 and codes == ["rate_limit_exceeded"]
    assert spend <= D("0.5") and D(status["spent_usd"]) == spend and D(status["reserved_usd"]) == 0
    rows, ledger_total = await ledger(database, key["id"], 200)
    assert rows >= 200 and ledger_total == spend
    figures("one process, no Redis, 200 concurrent clients on $0.5 and 40 RPM", admitted=len(admitted),
            refused_429=200 - len(admitted), spend_usd=spend, ledger_usd=ledger_total)

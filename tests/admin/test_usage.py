"""Admin usage queries over the ledger: grouped totals with exact cost, rows, org isolation, bad input."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from tests.tenancy.harness import MASTER, Harness, running, settings_for, tree


@pytest.fixture
async def h(migrated_url: str, tmp_path: Path) -> AsyncIterator[Harness]:
    settings = settings_for(migrated_url, tmp_path, master_key=MASTER,
                            prices={"mock/mock": {"input": "1", "output": "2"}})
    async with running(settings) as harness:
        yield harness


async def until_requests(h: Harness, n: int, **params: Any) -> dict[str, Any]:
    for _ in range(200):
        r = await h.admin("GET", "/usage", params=params)
        assert r.status_code == 200, r.text
        body: dict[str, Any] = r.json()
        if body["totals"]["requests"] >= n:
            return body
        await asyncio.sleep(0.05)
    raise AssertionError(f"ledger never showed {n} requests: {body}")


async def test_usage_grouped_by_key_and_model_with_exact_cost(h: Harness) -> None:
    acme = await tree(h, "acme")
    key = await h.ok("POST", "/keys", {"name": "k", "project_id": acme["project"]["id"]}, 201)
    costs = []
    for text in ("one two", "three four five", "six"):
        r = await h.respond(key["key"], {"model": "mock", "input": text})
        assert r.status_code == 200, r.text
        costs.append(Decimal(r.headers["x-tollway-cost-usd"]))
    body = await until_requests(h, 3, group_by="key,model", org_id=acme["org"]["id"])
    assert body["group_by"] == ["key", "model"]
    [group] = body["groups"]
    assert group["requests"] == 3
    assert Decimal(group["cost_usd"]) == sum(costs) == Decimal(body["totals"]["cost_usd"])
    rows = (await h.admin("GET", "/usage/entries", params={"key_id": key["id"]})).json()["data"]
    assert len(rows) == 3 and all(row["status"] == "completed" for row in rows)
    assert sum(Decimal(row["total_usd"]) for row in rows) == sum(costs)


async def test_usage_is_isolated_per_org_and_validates(h: Harness) -> None:
    acme = await tree(h, "acme")
    other = await tree(h, "other")
    reader = await h.ok("POST", "/keys", {"name": "r", "org_id": acme["org"]["id"], "scopes": ["admin:read"]}, 201)
    r = await h.admin("GET", "/usage", params={"org_id": other["org"]["id"]}, key=reader["key"])
    assert r.status_code == 403 and r.json()["error"]["param"] == "org_id"
    r = await h.admin("GET", "/usage", params={"group_by": "colour"})
    assert r.status_code == 400 and r.json()["error"]["param"] == "group_by"
    r = await h.admin("GET", "/usage", params={"start": "2026-02-01", "end": "2026-01-01"})
    assert r.status_code == 400 and r.json()["error"]["param"] == "end"
    r = await h.admin("GET", "/usage", params={"start": "yesterday"})
    assert r.status_code == 422 and r.json()["error"]["param"] == "start"

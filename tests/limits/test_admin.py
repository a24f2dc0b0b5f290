"""The budgets and rate-limits admin API through the whole gateway (in process, SQLite and PostgreSQL):
CRUD, 400 naming the field for negative or malformed values, status, org-bound admin keys, and limits that
take effect on /v1 at once (402 / 429 with headers)."""

from __future__ import annotations

import asyncio
import re
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select

from tests.tenancy.harness import MASTER, Harness, running, settings_for, tree
from tollway.metering.ledger.rollups import LEDGER
from tollway.storage.engine import create_engine

PRICED = {"mock/mock": {"input": "1000", "output": "2000"}}  # $0.001 per input word, $0.002 per output word


def _settings(url: str, tmp_path: Path, **extra: Any) -> Any:
    return settings_for(url, tmp_path, master_key=MASTER, prices=PRICED, **extra)


async def _key(h: Harness, project_id: str, **extra: Any) -> dict[str, Any]:
    return dict(await h.ok("POST", "/keys", {"name": "ci", "project_id": project_id, **extra}, 201))


async def settled(h: Harness) -> None:
    await h.runtime.pipeline.drain()
    assert h.runtime.limits is not None and not h.runtime.limits.guard.inflight


BAD_BUDGETS: list[tuple[dict[str, Any], str, str]] = [
    ({"scope": "project", "scope_id": "P", "limit_usd": "-1"}, "limit_usd", "must not be negative"),
    ({"scope": "project", "scope_id": "P", "limit_usd": "ten"}, "limit_usd", "is not a decimal number"),
    ({"scope": "project", "scope_id": "P", "limit_usd": True}, "limit_usd", "must be a decimal number"),
    ({"scope": "project", "scope_id": "P", "limit_usd": "NaN"}, "limit_usd", "must be finite"),
    ({"scope": "project", "scope_id": "P", "limit_usd": "1e-30"}, "limit_usd", "more than 18 decimal places"),
    ({"scope": "project", "scope_id": "P"}, "limit_usd", "is required"),
    ({"scope": "galaxy", "scope_id": "P", "limit_usd": "1"}, "scope", "must be one of"),
    ({"scope": "project", "scope_id": "", "limit_usd": "1"}, "scope_id", "non-empty"),
    ({"scope": "project", "scope_id": "P", "limit_usd": "1", "period": "hourly"}, "period", "must be one of"),
    ({"scope": "project", "scope_id": "P", "limit_usd": "1", "alert_threshold": 1.5}, "alert_threshold", "(0, 1]"),
    ({"scope": "project", "scope_id": "P", "limit_usd": "1", "alert_threshold": -0.1}, "alert_threshold", "(0, 1]"),
    ({"scope": "project", "scope_id": "P", "limit_usd": "1", "colour": "red"}, "colour", "unknown field"),
]
BAD_RATES: list[tuple[dict[str, Any], str, str]] = [
    ({"scope": "key", "scope_id": "K", "rpm": -5}, "rpm", "positive integer"),
    ({"scope": "key", "scope_id": "K", "rpm": 0}, "rpm", "positive integer"),
    ({"scope": "key", "scope_id": "K", "tpm": "100"}, "tpm", "positive integer"),
    ({"scope": "key", "scope_id": "K", "max_concurrent": 1.5}, "max_concurrent", "positive integer"),
    ({"scope": "key", "scope_id": "K"}, "rpm", "at least one"),
    ({"scope": "org", "scope_id": "K", "rpm": 1}, "scope", "must be one of"),
]


async def test_crud_and_validation(migrated_url: str, tmp_path: Path) -> None:
    async with running(_settings(migrated_url, tmp_path)) as h:
        t = await tree(h)
        pid = t["project"]["id"]
        for body, field, words in BAD_BUDGETS:
            body = {**body, "scope_id": pid if body.get("scope_id") == "P" else body.get("scope_id")}
            r = await h.admin("POST", "/budgets", body)
            assert r.status_code == 400, (body, r.text)
            err = r.json()["error"]
            assert err["param"] == field and words in err["message"] and err["code"] == "invalid_value", err
        for body, field, words in BAD_RATES:
            r = await h.admin("POST", "/rate-limits", body)
            assert r.status_code == 400 and r.json()["error"]["param"] == field, r.text
            assert words in r.json()["error"]["message"]
        r = await h.client.post("/admin/api/budgets", content=b"{nope", headers={"authorization": f"Bearer {MASTER}"})
        assert r.status_code == 400 and r.json()["error"]["code"] == "invalid_json"
        r = await h.admin("POST", "/budgets", [1, 2])
        assert r.status_code == 400 and r.json()["error"]["code"] == "invalid_json"
        r = await h.admin("POST", "/budgets", {"scope": "project", "scope_id": "proj_nope", "limit_usd": "1"})
        assert r.status_code == 404 and r.json()["error"]["param"] == "scope_id"
        assert (await h.admin("POST", "/budgets", {"scope": "project", "scope_id": pid, "limit_usd": 1})
                ).status_code == 201  # JSON numbers are accepted

        budget = await h.ok("POST", "/budgets", {"scope": "project", "scope_id": pid, "limit_usd": "12.50",
                                                 "period": "daily"}, 201)
        assert budget["limit_usd"] == "12.5" and budget["alert_threshold"] == "0.8" and budget["period"] == "daily"
        assert budget["status"]["spent_usd"] == "0" and budget["status"]["remaining_usd"] == "12.5"
        assert re.fullmatch(r"\d{4}-\d\d-\d\dT00:00:00\+00:00", budget["status"]["resets_at"])
        patched = await h.ok("PATCH", f"/budgets/{budget['id']}", {"limit_usd": "20", "alert_threshold": None})
        assert patched["limit_usd"] == "20" and patched["alert_threshold"] is None
        r = await h.admin("PATCH", f"/budgets/{budget['id']}", {"limit_usd": "-3"})
        assert r.status_code == 400 and r.json()["error"]["param"] == "limit_usd"
        r = await h.admin("PATCH", f"/budgets/{budget['id']}", {"scope": "org"})
        assert r.status_code == 400 and r.json()["error"]["param"] == "scope"
        listed = await h.ok("GET", f"/budgets?scope=project&scope_id={pid}")
        assert len(listed["data"]) == 2
        assert (await h.admin("GET", "/budgets?scope=galaxy")).status_code == 400
        await h.ok("DELETE", f"/budgets/{budget['id']}", status=204)
        assert (await h.admin("GET", f"/budgets/{budget['id']}")).status_code == 404

        rate = await h.ok("POST", "/rate-limits", {"scope": "model", "scope_id": "mock", "rpm": 100}, 201)
        assert rate["algorithm"] == "sliding_window_log" and rate["window_s"] == 60
        assert rate["status"]["requests"] == {"limit": 100, "used": 0, "remaining": 100}
        every = await h.ok("POST", "/rate-limits", {"scope": "key", "scope_id": "*", "tpm": 1000}, 201)
        assert every["status"] is None
        r = await h.admin("GET", f"/rate-limits/{every['id']}/status")
        assert r.status_code == 400 and r.json()["error"]["param"] == "entity_id"
        status = await h.ok("GET", f"/rate-limits/{every['id']}/status?entity_id=key_x")
        assert status["tokens"] == {"limit": 1000, "used": 0, "remaining": 1000}
        stats = await h.ok("GET", "/limits/stats")
        assert stats["backend"] == "memory" and stats["rules_loaded"] is True
        assert (await h.ok("POST", "/limits/reconcile"))["raised"] == []


async def test_org_bound_admin_keys(migrated_url: str, tmp_path: Path) -> None:
    async with running(_settings(migrated_url, tmp_path)) as h:
        mine, other = await tree(h, "mine"), await tree(h, "other")
        admin_key = (await h.ok("POST", "/keys", {"name": "adm", "org_id": mine["org"]["id"], "scopes": ["admin"]},
                                201))["key"]
        own = {"scope": "team", "scope_id": mine["team"]["id"], "limit_usd": "5"}
        r = await h.admin("POST", "/budgets", own, key=admin_key)
        assert r.status_code == 201, r.text
        theirs = {"scope": "team", "scope_id": other["team"]["id"], "limit_usd": "5"}
        assert (await h.admin("POST", "/budgets", theirs, key=admin_key)).status_code == 404
        r = await h.admin("POST", "/budgets", {"scope": "key", "scope_id": "*", "limit_usd": "5"}, key=admin_key)
        assert r.status_code == 403
        r = await h.admin("POST", "/rate-limits", {"scope": "model", "scope_id": "mock", "rpm": 5}, key=admin_key)
        assert r.status_code == 403
        await h.ok("POST", "/budgets", theirs, 201)
        listed = (await h.admin("GET", "/budgets", key=admin_key)).json()["data"]
        assert [b["scope_id"] for b in listed] == [mine["team"]["id"]]
        assert (await h.admin("POST", "/limits/reconcile", key=admin_key)).status_code == 403


async def test_limits_take_effect_on_v1(migrated_url: str, tmp_path: Path) -> None:
    async with running(_settings(migrated_url, tmp_path)) as h:
        t = await tree(h)
        key = await _key(h, t["project"]["id"])
        await h.ok("POST", "/rate-limits", {"scope": "key", "scope_id": key["id"], "rpm": 2, "tpm": 10_000}, 201)
        body = {"model": "mock", "input": "one two three", "max_output_tokens": 10}
        r = await h.respond(key["key"], body)
        assert r.status_code == 200, r.text
        assert r.headers["x-ratelimit-limit-requests"] == "2" and r.headers["x-ratelimit-remaining-requests"] == "1"
        assert r.headers["x-ratelimit-limit-tokens"] == "10000" and r.headers["x-ratelimit-reset-tokens"] == "1m0s"
        r = await h.client.post("/v1/chat/completions", json={"model": "mock", "max_tokens": 10, "messages": [
            {"role": "user", "content": "hi"}]}, headers={"authorization": f"Bearer {key['key']}"})
        assert r.status_code == 200 and r.headers["x-ratelimit-remaining-requests"] == "0"
        r = await h.respond(key["key"], body)
        assert r.status_code == 429 and r.json()["error"]["code"] == "rate_limit_exceeded"
        assert int(r.headers["retry-after"]) >= 1 and r.headers["x-ratelimit-remaining-requests"] == "0"

        key2 = await _key(h, t["project"]["id"])
        await h.ok("POST", "/budgets", {"scope": "key", "scope_id": key2["id"], "limit_usd": "0.05",
                                        "period": "total"}, 201)
        ok = await h.respond(key2["key"], body)  # "echo: one two three": 3 input words, 4 output words: $0.011
        assert ok.status_code == 200, ok.text
        assert Decimal(str(ok.json()["tollway"]["cost"]["total_usd"])) == Decimal("0.011")
        await settled(h)  # settlements run right after the response; one still pending would answer 429
        r = await h.respond(key2["key"], body)
        assert r.status_code == 200, r.text
        await settled(h)
        r = await h.respond(key2["key"], body)
        assert r.status_code == 402, r.text
        # reservation: 3 words x 1.25 (not an OpenAI model) + 7 tokens of overhead = 11 in, 10 out: $0.031
        assert r.json()["error"] == {"message": "key ci has $0.028 of $0.05 left (a total budget: it does not reset);"
                                                " this request may cost up to $0.031 (set a lower max_output_tokens "
                                                "to reserve less)", "type": "insufficient_quota", "param": None,
                                     "code": "budget_exceeded"}
        budget = (await h.ok("GET", f"/budgets?scope=key&scope_id={key2['id']}"))["data"][0]
        status = await h.ok("GET", f"/budgets/{budget['id']}/status")
        assert (status["spent_usd"], status["reserved_usd"], status["remaining_usd"]) == ("0.022", "0", "0.028")
        stats = await h.ok("GET", "/limits/stats")
        assert stats["refused_budget"] == 1 and stats["refused_rate"] == 1 and stats["in_flight"] == 0


@pytest.mark.parametrize("policy", ["refuse", "admit"])
async def test_unpriced_policy_through_the_gateway(migrated_url: str, tmp_path: Path, policy: str) -> None:
    settings = settings_for(migrated_url, tmp_path, master_key=MASTER, limits={"unpriced_policy": policy})
    async with running(settings) as h:
        t = await tree(h)
        key = await _key(h, t["project"]["id"])
        await h.ok("POST", "/budgets", {"scope": "org", "scope_id": t["org"]["id"], "limit_usd": "1"}, 201)
        r = await h.respond(key["key"])
        if policy == "refuse":
            assert r.status_code == 402 and r.json()["error"]["code"] == "model_unpriced"
        else:
            assert r.status_code == 200 and r.headers["x-tollway-budget"] == "unpriced"


async def test_a_budget_created_mid_period_counts_earlier_spend(migrated_url: str, tmp_path: Path) -> None:
    async with running(_settings(migrated_url, tmp_path)) as h:
        t = await tree(h)
        key = await _key(h, t["project"]["id"])
        costs = []
        for _ in range(3):
            r = await h.respond(key["key"], {"model": "mock", "input": "one two", "max_output_tokens": 10})
            costs.append(Decimal(str(r.json()["tollway"]["cost"]["total_usd"])))
        engine = create_engine(migrated_url)
        try:
            for _ in range(200):
                async with engine.connect() as conn:
                    rows = (await conn.execute(select(LEDGER.c.id).where(LEDGER.c.key_id == key["id"]))).all()
                if len(rows) == 3:
                    break
                await asyncio.sleep(0.05)
        finally:
            await engine.dispose()
        budget = await h.ok("POST", "/budgets", {"scope": "key", "scope_id": key["id"], "limit_usd": "1"}, 201)
        assert Decimal(budget["status"]["spent_usd"]) == sum(costs) > 0

"""Pipeline steps with a fake transport and store (no network): the checks the gateway makes itself."""

from __future__ import annotations

import time
from typing import Any

import orjson
import pytest

from tollway.core.context import ExchangeRecord, RequestContext
from tollway.core.errors import GatewayError
from tollway.core.pipeline import Pipeline
from tollway.core.routing import ModelResolver
from tollway.core.types import CanonicalRequest, FunctionTool, ToolChoice
from tollway.metering.pricing import PriceTable
from tollway.providers.base import Adapter, ProviderSettings, UpstreamRequest
from tollway.providers.registry import adapter_for


class FakeClient:
    def __init__(self, body: dict[str, Any]) -> None:
        self.body = orjson.dumps(body)
        self.sent: list[UpstreamRequest] = []

    async def send(self, req: UpstreamRequest, provider: str, adapter: Adapter) -> bytes:
        self.sent.append(req)
        return self.body


class FakeStore:
    def __init__(self, capacity: bool = True) -> None:
        self.capacity = capacity
        self.saved: list[str] = []

    def has_capacity(self) -> bool:
        return self.capacity

    def save(self, response_id: str, **kw: Any) -> None:
        self.saved.append(response_id)

    async def conversation_items(self, response_id: str) -> list[dict[str, Any]] | None:
        return None


def openai_body(*output: dict[str, Any]) -> dict[str, Any]:
    return {"id": "resp_u", "object": "response", "status": "completed", "model": "gpt-4o-mini",
            "output": list(output), "usage": {"input_tokens": 1000, "output_tokens": 100, "total_tokens": 1100,
                                              "input_tokens_details": {"cached_tokens": 0},
                                              "output_tokens_details": {"reasoning_tokens": 0}}}


def pipeline(body: dict[str, Any], store: FakeStore | None = None, strict: bool = False, **kw: Any) -> Pipeline:
    settings = ProviderSettings("openai", "openai_responses", "http://x/v1", "k")
    resolver = ModelResolver({"openai": settings}, {"openai": adapter_for("openai_responses")}, {})
    return Pipeline(resolver, FakeClient(body), PriceTable.load(), store or FakeStore(),  # type: ignore[arg-type]
                    strict=strict, **kw)


def ctx(rid: str = "r") -> RequestContext:
    return RequestContext(request_id=rid, started=time.perf_counter(), door="responses")


def request(**kw: Any) -> CanonicalRequest:
    return CanonicalRequest(model="gpt-4o-mini", input=[
        {"type": "message", "role": "user", "content": [{"type": "input_text", "text": "hi"}]}], **kw)


async def test_complete_meters_and_enriches() -> None:
    msg = {"type": "message", "role": "assistant", "status": "completed",
           "content": [{"type": "output_text", "text": "ok", "annotations": []}]}
    p = pipeline(openai_body(msg))
    prepared = await p.prepare(request(), ctx("req_1"))
    outcome = await p.complete(prepared)
    assert outcome.tollway["provider"] == "openai" and outcome.tollway["request_id"] == "req_1"
    assert outcome.cost.status == "priced" and outcome.cost.total_usd is not None
    # gpt-4o-mini: $0.15 / 1M input, $0.60 / 1M output
    from decimal import Decimal
    assert outcome.cost.total_usd == Decimal("1000") * Decimal("0.15") / 1_000_000 + Decimal("100") * Decimal(
        "0.6") / 1_000_000
    assert outcome.response.output[0]["id"].startswith("msg_")


async def test_storage_backlog_full_refuses_before_upstream() -> None:
    p = pipeline(openai_body(), FakeStore(capacity=False))
    with pytest.raises(GatewayError) as exc:
        await p.prepare(request(), ctx())
    assert exc.value.status == 503 and exc.value.code == "storage_unavailable"
    prepared = await p.prepare(request(store=False), ctx())
    assert prepared.req.store is False


async def test_disallowed_tool_call_is_refused() -> None:
    call = {"type": "function_call", "call_id": "c1", "name": "b", "arguments": "{}", "status": "completed"}
    p = pipeline(openai_body(call))
    req = request(tools=[FunctionTool("a"), FunctionTool("b")],
                  tool_choice=ToolChoice(mode="required", allowed=["a"], raw={"type": "function", "name": "a"}))
    prepared = await p.prepare(req, ctx())
    with pytest.raises(GatewayError) as exc:
        await p.complete(prepared)
    assert exc.value.code == "tool_choice_violation"


async def test_orphan_function_call_output_is_400() -> None:
    p = pipeline(openai_body())
    req = request()
    req.input.append({"type": "function_call_output", "call_id": "nope", "output": "x"})
    with pytest.raises(GatewayError) as exc:
        await p.prepare(req, ctx())
    assert exc.value.status == 400 and exc.value.param == "input[1].call_id"


async def test_strict_config_and_extra_fields_reported() -> None:
    req = request(seed=3)
    req.extra["logit_bias"] = {}
    prepared = await pipeline(openai_body()).prepare(req, ctx())
    assert "logit_bias" in prepared.fidelity.dropped and "seed" in prepared.fidelity.dropped
    with pytest.raises(GatewayError) as exc:
        await pipeline(openai_body(), strict=True).prepare(request(seed=3), ctx())
    assert exc.value.code == "fidelity_strict" and "seed" in exc.value.message


class Collect:
    def __init__(self) -> None:
        self.records: list[ExchangeRecord] = []

    def record(self, record: ExchangeRecord) -> None:
        self.records.append(record)


class CountingGuard:
    def __init__(self, refuse: bool = False) -> None:
        self.refuse = refuse
        self.admitted = 0
        self.settled: list[str] = []

    async def admit(self, ctx: RequestContext, req: CanonicalRequest, route: Any) -> bool:
        if self.refuse:
            raise GatewayError(402, "budget", type="insufficient_quota", code="budget_exceeded")
        self.admitted += 1
        return True

    async def settle(self, ctx: RequestContext, record: ExchangeRecord) -> None:
        self.settled.append(record.status)


async def test_every_outcome_is_recorded_once_and_settled() -> None:
    msg = {"type": "message", "role": "assistant", "status": "completed",
           "content": [{"type": "output_text", "text": "ok", "annotations": []}]}
    rec, guard = Collect(), CountingGuard()
    p = pipeline(openai_body(msg), recorders=[rec], guards=[guard])
    c = ctx("req_ok")
    c.tags = {"team": "a"}
    await p.complete(await p.prepare(request(), c))
    p.fail(c, GatewayError(500, "late"))  # already recorded: ignored
    await p.drain()
    assert [r.status for r in rec.records] == ["completed"]
    r = rec.records[0]
    assert (r.request_id, r.provider, r.model, r.tags, r.usage.input_tokens) == ("req_ok", "openai", "gpt-4o-mini",
                                                                                  {"team": "a"}, 1000)
    assert r.cost is not None and r.cost.total_usd is not None and r.http_status == 200
    assert guard.admitted == 1 and guard.settled == ["completed"]


async def test_refused_and_invalid_requests_are_recorded_as_errors() -> None:
    rec, ok, refuse = Collect(), CountingGuard(), CountingGuard(refuse=True)
    p = pipeline(openai_body(), recorders=[rec], guards=[ok, refuse])
    c = ctx()
    with pytest.raises(GatewayError) as exc:
        await p.prepare(request(), c)
    p.fail(c, exc.value)
    await p.drain()
    assert [(r.status, r.http_status, r.error_code) for r in rec.records] == [("error", 402, "budget_exceeded")]
    assert ok.settled == ["error"]  # the guard that admitted is released

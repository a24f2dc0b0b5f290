"""End to end through the real ASGI app and the mock upstream: /v1/responses JSON and streaming,
validated against the Open Responses OpenAPI bundle."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import aiohttp
import orjson
import pytest

from tests.e2e.sse import parse_frames, post_stream
from tests.openapi_validator import validate_error, validate_event, validate_resource


async def post(url: str, body: Any, headers: dict[str, str] | None = None) -> tuple[int, dict[str, str], Any]:
    async with aiohttp.ClientSession() as s, s.post(url, data=orjson.dumps(body), headers={
            "content-type": "application/json", **(headers or {})}) as r:
        return r.status, {k.lower(): v for k, v in r.headers.items()}, orjson.loads(await r.read())


async def create(gateway: str, **body: Any) -> dict[str, Any]:
    status, _, data = await post(f"{gateway}/v1/responses", body)
    assert status == 200, data
    validate_resource(data)
    return data


def output_text(resource: dict[str, Any]) -> str:
    return "".join(p["text"] for it in resource["output"] if it["type"] == "message"
                   for p in it["content"] if p["type"] == "output_text")


WEATHER = {"type": "function", "name": "get_weather", "description": "Weather for a city",
           "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}}
TIME = {"type": "function", "name": "get_time", "parameters": {"type": "object", "properties": {}}}


@pytest.mark.parametrize("model", ["gpt-4o-mini", "claude-sonnet-4-5", "chatty", "mock"])
async def test_basic_text_every_provider(gateway: str, model: str) -> None:
    data = await create(gateway, model=model, input="hello there")
    assert output_text(data) == "echo: hello there"
    assert data["status"] == "completed"
    assert data["usage"]["input_tokens"] >= 1
    assert len(data) >= 31
    tw = data["tollway"]
    assert tw["request_id"].startswith("req_")
    assert tw["overhead_ms"] >= 0 and tw["latency_ms"] >= tw["upstream_ms"]
    assert tw["fidelity"] == {"dropped": [], "approximated": []}
    assert tw["agentic"]["requires_action"] is False


async def test_cost_is_exact_decimal_and_headers(gateway: str) -> None:
    status, headers, data = await post(f"{gateway}/v1/responses",
                                       {"model": "gpt-4o-mini", "input": "one two three"})
    assert status == 200
    cost = data["tollway"]["cost"]
    assert cost["status"] == "priced"
    raw = orjson.dumps(data["usage"]["cost_usd"])
    assert Decimal(raw.decode()) > 0
    assert headers["x-tollway-provider"] == "openai"
    assert Decimal(headers["x-tollway-cost-usd"]) == Decimal(str(data["usage"]["cost_usd"]))
    assert float(headers["x-tollway-overhead-ms"]) >= 0
    assert headers["x-request-id"] == data["tollway"]["request_id"]


async def test_mock_model_is_unpriced_not_zero(gateway: str) -> None:
    data = await create(gateway, model="mock", input="hi")
    assert data["tollway"]["cost"]["status"] == "unpriced"
    assert data["usage"]["cost_usd"] is None


async def test_system_prompt_and_multiturn(gateway: str) -> None:
    data = await create(gateway, model="claude-sonnet-4-5", instructions="Be brief.", input=[
        {"role": "system", "content": "You are terse."},
        {"role": "user", "content": "first"},
        {"role": "assistant", "content": "echo: first"},
        {"role": "user", "content": [{"type": "input_text", "text": "second"}]},
    ])
    assert output_text(data) == "echo: second"
    assert data["instructions"] == "Be brief."


async def test_image_input(gateway: str) -> None:
    img = ("data:image/png;base64,iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mP8z8BQDwAEhQGAhKmMIQ"
           "AAAABJRU5ErkJggg==")
    for model in ("gpt-4o-mini", "claude-sonnet-4-5"):
        data = await create(gateway, model=model, input=[{"role": "user", "content": [
            {"type": "input_text", "text": "describe"}, {"type": "input_image", "image_url": img}]}])
        assert output_text(data) == "echo: describe"


async def test_assistant_phase_is_accepted(gateway: str) -> None:
    data = await create(gateway, model="gpt-4o-mini", input=[
        {"type": "message", "role": "assistant", "phase": "commentary",
         "content": [{"type": "output_text", "text": "checking"}]},
        {"role": "user", "content": "go on"}])
    assert output_text(data) == "echo: go on"


@pytest.mark.parametrize("model", ["gpt-4o-mini", "claude-sonnet-4-5", "chatty"])
async def test_tool_call_then_result(gateway: str, model: str) -> None:
    data = await create(gateway, model=model, input="weather in Paris", tools=[WEATHER])
    calls = [it for it in data["output"] if it["type"] == "function_call"]
    assert [c["name"] for c in calls] == ["get_weather"]
    ag = data["tollway"]["agentic"]
    assert ag["requires_action"] is True and ag["tools_used"] == ["get_weather"] and ag["tool_calls_count"] == 1
    call = calls[0]
    follow = await create(gateway, model=model, tools=[WEATHER], input=[
        {"role": "user", "content": "weather in Paris"},
        {"type": "function_call", "call_id": call["call_id"], "name": call["name"], "arguments": call["arguments"]},
        {"type": "function_call_output", "call_id": call["call_id"], "output": "sunny"}])
    assert output_text(follow) == "tool said: sunny"
    assert follow["tollway"]["agentic"]["requires_action"] is False


async def test_allowed_tools_is_a_hard_constraint(gateway: str) -> None:
    data = await create(gateway, model="claude-sonnet-4-5", input="what time", tools=[WEATHER, TIME],
                        tool_choice={"type": "allowed_tools", "mode": "required",
                                     "tools": [{"type": "function", "name": "get_time"}]})
    assert [it["name"] for it in data["output"] if it["type"] == "function_call"] == ["get_time"]
    assert data["tool_choice"]["type"] == "allowed_tools"


async def test_reasoning_round_trip_with_anthropic_signature(gateway: str) -> None:
    first = await create(gateway, model="claude-sonnet-4-5", input="plan it", tools=[WEATHER],
                         reasoning={"effort": "low"})
    kinds = [it["type"] for it in first["output"]]
    assert kinds[0] == "reasoning" and "function_call" in kinds
    assert first["tollway"]["agentic"]["has_reasoning"] is True
    assert first["output"][0]["encrypted_content"].startswith("tw1.anthropic.")
    call = next(it for it in first["output"] if it["type"] == "function_call")
    # the mock rejects a thinking block whose signature did not round-trip intact
    follow = await create(gateway, model="claude-sonnet-4-5", tools=[WEATHER], reasoning={"effort": "low"},
                          input=[{"role": "user", "content": "plan it"}, *first["output"],
                                 {"type": "function_call_output", "call_id": call["call_id"], "output": "ok"}])
    assert "tool said: ok" in output_text(follow)


async def test_openai_encrypted_reasoning_only_when_included(gateway: str) -> None:
    plain = await create(gateway, model="o3-mini", input="think", reasoning={"effort": "low"})
    assert plain["output"][0]["type"] == "reasoning"
    assert "encrypted_content" not in plain["output"][0]
    inc = await create(gateway, model="o3-mini", input="think", reasoning={"effort": "low"},
                       include=["reasoning.encrypted_content"])
    assert inc["output"][0]["encrypted_content"]


async def test_foreign_reasoning_is_dropped_and_reported(gateway: str) -> None:
    first = await create(gateway, model="claude-sonnet-4-5", input="x", reasoning={"effort": "low"})
    follow = await create(gateway, model="gpt-4o-mini", input=[*first["output"],
                                                                {"role": "user", "content": "continue"}])
    assert output_text(follow) == "echo: continue"
    assert any("reasoning" in d for d in follow["tollway"]["fidelity"]["dropped"])


async def test_structured_output(gateway: str) -> None:
    fmt = {"type": "json_schema", "name": "echo", "schema": {"type": "object", "properties": {
        "echo": {"type": "string"}}, "required": ["echo"]}, "strict": True}
    data = await create(gateway, model="gpt-4o-mini", input="hi", text={"format": fmt})
    assert orjson.loads(output_text(data)) == {"echo": "hi"}
    assert data["text"]["format"]["name"] == "echo"


async def test_max_output_tokens_gives_incomplete(gateway: str) -> None:
    data = await create(gateway, model="claude-sonnet-4-5", input="a b c d e f g h", max_output_tokens=2)
    assert data["status"] == "incomplete"
    assert data["incomplete_details"] == {"reason": "max_output_tokens"}
    assert data["tollway"]["agentic"]["incomplete_reason"] == "max_output_tokens"


async def test_metadata_echoed_not_polluted(gateway: str) -> None:
    data = await create(gateway, model="gpt-4o-mini", input="hi", metadata={"team": "a"})
    assert data["metadata"] == {"team": "a"}


async def test_strict_mode_refuses_lossy_request(gateway: str) -> None:
    body = {"model": "claude-sonnet-4-5", "input": "hi", "top_logprobs": 3}
    status, _, data = await post(f"{gateway}/v1/responses", body, {"x-tollway-strict": "true"})
    assert status == 400, data
    validate_error(data)
    assert data["error"]["code"] == "fidelity_strict"
    assert "top_logprobs" in data["error"]["message"]
    status, _, data = await post(f"{gateway}/v1/responses", body)
    assert status == 200
    assert "top_logprobs" in data["tollway"]["fidelity"]["dropped"]


# -- streaming ----------------------------------------------------------------------------------------


async def stream(gateway: str, **body: Any) -> list[dict[str, Any]]:
    status, headers, raw = await post_stream(f"{gateway}/v1/responses", {**body, "stream": True})
    assert status == 200, raw[:500]
    assert headers["content-type"].startswith("text/event-stream")
    events, done = parse_frames(raw)
    assert done, "stream did not end with [DONE]"
    for i, e in enumerate(events):
        assert e["sequence_number"] == i
        validate_event(e)
    return events


def order_ok(events: list[dict[str, Any]]) -> None:
    types = [e["type"] for e in events]
    assert types[:2] == ["response.created", "response.in_progress"]
    assert types[-1] in ("response.completed", "response.incomplete", "response.failed")
    added = {e["output_index"] for e in events if e["type"] == "response.output_item.added"}
    done = {e["output_index"] for e in events if e["type"] == "response.output_item.done"}
    assert added == done


@pytest.mark.parametrize("model", ["gpt-4o-mini", "claude-sonnet-4-5", "chatty"])
async def test_stream_text(gateway: str, model: str) -> None:
    events = await stream(gateway, model=model, input="[mock:chunks=5] stream me please")
    order_ok(events)
    deltas = [e["delta"] for e in events if e["type"] == "response.output_text.delta"]
    assert len(deltas) == 5
    text = "".join(deltas)
    done = next(e for e in events if e["type"] == "response.output_text.done")
    assert done["text"] == text and text.startswith("echo: stream me please")
    final = events[-1]["response"]
    validate_resource(final)
    assert final["status"] == "completed"
    assert final["output"][0]["content"][0]["text"] == text
    assert final["usage"]["output_tokens"] > 0
    assert final["tollway"]["provider"] in ("openai", "anthropic", "compat")


@pytest.mark.parametrize("model", ["gpt-4o-mini", "claude-sonnet-4-5", "chatty"])
async def test_stream_tool_arguments(gateway: str, model: str) -> None:
    events = await stream(gateway, model=model, input="weather please", tools=[WEATHER])
    order_ok(events)
    args = "".join(e["delta"] for e in events if e["type"] == "response.function_call_arguments.delta")
    done = next(e for e in events if e["type"] == "response.function_call_arguments.done")
    assert done["arguments"] == args and orjson.loads(args)
    final = events[-1]["response"]
    assert final["tollway"]["agentic"]["requires_action"] is True


@pytest.mark.parametrize("model", ["o3-mini", "claude-sonnet-4-5"])
async def test_stream_reasoning(gateway: str, model: str) -> None:
    events = await stream(gateway, model=model, input="think hard", reasoning={"effort": "low", "summary": "auto"})
    order_ok(events)
    types = {e["type"] for e in events}
    assert types & {"response.reasoning.delta", "response.reasoning_summary_text.delta"}
    final = events[-1]["response"]
    assert final["output"][0]["type"] == "reasoning"


async def test_stream_mid_stream_failure_terminates(gateway: str) -> None:
    events = await stream(gateway, model="gpt-4o-mini", input="[mock:fault=disconnect,chunks=6] hello")
    types = [e["type"] for e in events]
    assert types[-2:] == ["error", "response.failed"]
    assert events[-1]["response"]["status"] == "failed"
    assert events[-1]["response"]["error"]["message"]


async def test_stream_error_event_from_provider(gateway: str) -> None:
    events = await stream(gateway, model="claude-sonnet-4-5", input="[mock:fault=stream_error] hello")
    assert [e["type"] for e in events][-2:] == ["error", "response.failed"]


# -- previous_response_id and stored-response routes -----------------------------------------------------


async def _conversation(gw: str) -> None:
    first = await create(gw, model="gpt-4o-mini", input="remember kiwi")
    second = await create(gw, model="claude-sonnet-4-5", input="what fruit?", previous_response_id=first["id"])
    assert second["previous_response_id"] == first["id"]
    assert output_text(second) == "echo: what fruit?"
    async with aiohttp.ClientSession() as s:
        async with s.get(f"{gw}/v1/responses/{second['id']}") as r:
            assert r.status == 200
            got = await r.json()
            validate_resource(got)
            assert got["id"] == second["id"] and got["output"] == second["output"]
        async with s.get(f"{gw}/v1/responses/{first['id']}/input_items?order=asc") as r:
            page = await r.json()
            assert page["object"] == "list" and page["data"][0]["content"][0]["text"] == "remember kiwi"
            assert page["has_more"] is False and page["first_id"] == page["data"][0]["id"]
        async with s.delete(f"{gw}/v1/responses/{first['id']}") as r:
            assert (await r.json()) == {"id": first["id"], "object": "response.deleted", "deleted": True}
        async with s.get(f"{gw}/v1/responses/{first['id']}") as r:
            assert r.status == 404
    status, _, err = await post(f"{gw}/v1/responses", {"model": "gpt-4o-mini", "input": "x",
                                                        "previous_response_id": "resp_nope"})
    assert status == 404 and err["error"]["code"] == "previous_response_not_found"
    validate_error(err)


async def test_previous_response_id_sqlite(gateway: str) -> None:
    await _conversation(gateway)


async def test_previous_response_id_postgres(pg_gateway: str) -> None:
    await _conversation(pg_gateway)


async def test_store_false_is_not_persisted(gateway: str) -> None:
    data = await create(gateway, model="gpt-4o-mini", input="secret", store=False)
    async with aiohttp.ClientSession() as s, s.get(f"{gateway}/v1/responses/{data['id']}") as r:
        assert r.status == 404


async def test_continuation_with_stream_is_persisted(gateway: str) -> None:
    events = await stream(gateway, model="claude-sonnet-4-5", input="streamed first")
    rid = events[-1]["response"]["id"]
    second = await create(gateway, model="gpt-4o-mini", input="next", previous_response_id=rid)
    assert output_text(second) == "echo: next"


async def test_input_items_paging(gateway: str) -> None:
    data = await create(gateway, model="gpt-4o-mini", input=[{"role": "user", "content": f"m{i}"} for i in range(5)])
    base = f"{gateway}/v1/responses/{data['id']}/input_items"
    async with aiohttp.ClientSession() as s:
        async with s.get(base + "?limit=2&order=asc") as r:
            p1 = await r.json()
        assert [d["content"][0]["text"] for d in p1["data"]] == ["m0", "m1"] and p1["has_more"] is True
        async with s.get(base + f"?limit=2&order=asc&after={p1['last_id']}") as r:
            p2 = await r.json()
        assert [d["content"][0]["text"] for d in p2["data"]] == ["m2", "m3"]
        async with s.get(base + "?limit=1") as r:
            p3 = await r.json()
        assert p3["data"][0]["content"][0]["text"] == "m4"
        async with s.get(base + "?limit=0") as r:
            assert r.status == 400

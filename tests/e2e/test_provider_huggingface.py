"""End to end: Hugging Face (router / TGI / vLLM-backed flavours of the mock's ``/hf/v1`` wire) through
both front doors, with every /v1/responses body and event validated against the Open Responses schema.

Model ids select the mock's flavour by their ``:suffix``: none (and ``:novita``) → the router (Together
shapes, ``<think>`` tags), ``:tgi`` → self-hosted TGI (tool calls without ids, object arguments,
``eos_token``), ``:vllm`` → ``reasoning_content`` and detailed usage.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path
from typing import Any

import aiohttp
import orjson
import pytest

from tests.e2e.server import running_gateway, running_mock
from tests.e2e.sse import parse_frames, post_stream
from tests.openapi_validator import validate_error, validate_event, validate_resource
from tollway.providers.huggingface_stream import synth_call_id
from tollway.settings import Settings

ROUTER = "huggingface/meta-llama/Llama-3.1-8B-Instruct:novita"
TGI = "huggingface/tgi/local-model:tgi"
VLLM = "huggingface/Qwen/Qwen3-32B:vllm"
PRICES = {"input": "1.5", "cached_input": "0.5", "output": "4"}  # USD per 1M tokens (configured)
WEATHER = {
    "type": "function",
    "name": "get_weather",
    "description": "Weather for a city",
    "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]},
}
TIME = {"type": "function", "name": "get_time", "parameters": {"type": "object", "properties": {}}}
CHAT_TOOLS = [{"type": "function", "function": {k: v for k, v in t.items() if k != "type"}} for t in (WEATHER, TIME)]
IMAGE = (
    "data:image/png;base64,iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mP8z8BQDwAEhQGAhKmMIQ"
    "AAAABJRU5ErkJggg=="
)


def _settings(mock_root: str, db: Path, **extra: Any) -> Settings:
    data: dict[str, Any] = {
        "database_url": f"sqlite+aiosqlite:///{db}",
        "providers": {
            "huggingface": {"api_key": "hf_test", "base_url": f"{mock_root}/hf/v1"},
            "anthropic": {"api_key": "sk-ant-test", "base_url": f"{mock_root}/v1"},
            "openai": {"api_key": "sk-test", "base_url": f"{mock_root}/v1"},
        },
        "models": {"llama": ROUTER.replace(":novita", "")},
        "prices": {VLLM: PRICES},
        "mock": {"enabled": False},
        "timeouts": {"connect": 2, "read": 5, "total": 20},
    }
    data.update(extra)
    return Settings.model_validate(data)


@pytest.fixture(scope="module")
def mock_root() -> Iterator[str]:
    with running_mock() as url:
        yield url.removesuffix("/v1")


@pytest.fixture(scope="module")
def gateway(mock_root: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    with running_gateway(_settings(mock_root, tmp_path_factory.mktemp("hf") / "tollway.db")) as url:
        yield url


# -- helpers --------------------------------------------------------------------------------------------------


async def post(url: str, body: Any) -> tuple[int, dict[str, str], Any]:
    async with (
        aiohttp.ClientSession() as s,
        s.post(url, data=orjson.dumps(body), headers={"content-type": "application/json"}) as r,
    ):
        raw = await r.read()
        return r.status, {k.lower(): v for k, v in r.headers.items()}, json.loads(raw, parse_float=Decimal)


async def create(gateway: str, **body: Any) -> dict[str, Any]:
    status, _, data = await post(f"{gateway}/v1/responses", body)
    assert status == 200, data
    validate_resource(json.loads(json.dumps(data, default=float)))
    out: dict[str, Any] = data
    return out


async def chat(gateway: str, **body: Any) -> dict[str, Any]:
    status, _, data = await post(f"{gateway}/v1/chat/completions", body)
    assert status == 200, data
    assert data["object"] == "chat.completion"
    out: dict[str, Any] = data
    return out


async def stream(gateway: str, **body: Any) -> list[dict[str, Any]]:
    status, headers, raw = await post_stream(f"{gateway}/v1/responses", {**body, "stream": True})
    assert status == 200, raw[:500]
    assert headers["content-type"].startswith("text/event-stream")
    events, done = parse_frames(raw)
    assert done, "stream did not end with [DONE]"
    for i, event in enumerate(events):
        assert event["sequence_number"] == i
        validate_event(event)
    added = {e["output_index"] for e in events if e["type"] == "response.output_item.added"}
    if events[-1]["type"] != "response.failed":  # a failed stream leaves its open items as they were
        assert added == {e["output_index"] for e in events if e["type"] == "response.output_item.done"}
    return events


async def chat_stream(gateway: str, **body: Any) -> list[dict[str, Any]]:
    status, _, raw = await post_stream(f"{gateway}/v1/chat/completions", {**body, "stream": True})
    assert status == 200, raw[:500]
    chunks, done = parse_frames(raw)
    assert done
    return chunks


def output_text(resource: dict[str, Any]) -> str:
    return "".join(
        p["text"]
        for it in resource["output"]
        if it["type"] == "message"
        for p in it["content"]
        if p["type"] == "output_text"
    )


def calls_of(resource: dict[str, Any]) -> list[dict[str, Any]]:
    return [it for it in resource["output"] if it["type"] == "function_call"]


def chat_deltas(chunks: list[dict[str, Any]], field: str) -> str:
    return "".join(c["choices"][0]["delta"].get(field) or "" for c in chunks if c.get("choices"))


# -- text, instructions, multi-turn, images -------------------------------------------------------------------


@pytest.mark.parametrize("model", [ROUTER, TGI, VLLM, "llama"])
async def test_responses_text(gateway: str, model: str) -> None:
    data = await create(gateway, model=model, input="hello there")
    assert output_text(data) == "echo: hello there"
    assert data["status"] == "completed"
    tw = data["tollway"]
    assert tw["provider"] == "huggingface"
    upstream = (model if model != "llama" else ROUTER.replace(":novita", "")).removeprefix("huggingface/")
    assert tw["model"] == upstream  # the id went upstream unchanged, slashes and suffix included
    assert tw["fidelity"] == {"dropped": [], "approximated": []}


@pytest.mark.parametrize("model", [ROUTER, TGI])
async def test_chat_text(gateway: str, model: str) -> None:
    data = await chat(
        gateway, model=model, messages=[{"role": "system", "content": "be nice"}, {"role": "user", "content": "hello"}]
    )
    assert data["choices"][0]["message"]["content"] == "echo: hello"
    assert data["choices"][0]["finish_reason"] == "stop"
    assert data["tollway"]["provider"] == "huggingface"


async def test_instructions_developer_and_multi_turn(gateway: str) -> None:
    data = await create(
        gateway,
        model=ROUTER,
        instructions="Be brief.",
        input=[
            {"role": "developer", "content": "You are terse."},
            {"role": "user", "content": "first"},
            {"role": "assistant", "content": "echo: first"},
            {"role": "user", "content": [{"type": "input_text", "text": "second"}]},
        ],
    )
    assert output_text(data) == "echo: second" and data["instructions"] == "Be brief."
    reply = await chat(
        gateway,
        model=ROUTER,
        messages=[
            {"role": "developer", "content": "terse"},
            {"role": "user", "content": "one"},
            {"role": "assistant", "content": "echo: one"},
            {"role": "user", "content": "two"},
        ],
    )
    assert reply["choices"][0]["message"]["content"] == "echo: two"


async def test_image_input_both_doors(gateway: str) -> None:
    data = await create(
        gateway,
        model=ROUTER,
        input=[
            {
                "role": "user",
                "content": [{"type": "input_text", "text": "describe"}, {"type": "input_image", "image_url": IMAGE}],
            }
        ],
    )
    assert output_text(data) == "echo: describe" and data["tollway"]["fidelity"]["dropped"] == []
    reply = await chat(
        gateway,
        model=ROUTER,
        messages=[
            {
                "role": "user",
                "content": [{"type": "text", "text": "look"}, {"type": "image_url", "image_url": {"url": IMAGE}}],
            }
        ],
    )
    assert reply["choices"][0]["message"]["content"] == "echo: look"


async def test_bare_hf_id_needs_prefix_or_alias(gateway: str) -> None:
    status, _, data = await post(f"{gateway}/v1/responses", {"model": "meta-llama/Llama-3.1-8B-Instruct", "input": "x"})
    assert status == 400 and data["error"]["code"] == "model_not_found"
    validate_error(data)


async def test_missing_credentials_names_hf_token(mock_root: str, tmp_path: Path) -> None:
    settings = Settings.model_validate(
        {
            "database_url": f"sqlite+aiosqlite:///{tmp_path}/x.db",
            "providers": {"openai": {"api_key": "k", "base_url": f"{mock_root}/v1"}},
        }
    )
    with running_gateway(settings) as gw:
        status, _, data = await post(f"{gw}/v1/responses", {"model": ROUTER, "input": "x"})
    assert status == 400 and "HF_TOKEN" in data["error"]["message"]


# -- streaming text -----------------------------------------------------------------------------------------------


@pytest.mark.parametrize("model", [ROUTER, TGI, VLLM])
async def test_responses_stream_text(gateway: str, model: str) -> None:
    events = await stream(gateway, model=model, input="[mock:chunks=5] stream me please")
    deltas = [e["delta"] for e in events if e["type"] == "response.output_text.delta"]
    assert len(deltas) == 5 and "".join(deltas).startswith("echo: stream me please")
    final = events[-1]["response"]
    assert final["status"] == "completed" and final["output"][0]["content"][0]["text"] == "".join(deltas)
    assert final["usage"]["output_tokens"] > 0  # TGI/vLLM only send it because we ask (include_usage)


@pytest.mark.parametrize("model", [ROUTER, TGI])
async def test_chat_stream_text_with_usage(gateway: str, model: str) -> None:
    chunks = await chat_stream(
        gateway,
        model=model,
        stream_options={"include_usage": True},
        messages=[{"role": "user", "content": "[mock:chunks=4] hi there"}],
    )
    assert chat_deltas(chunks, "content").startswith("echo: hi there")
    assert [c["choices"][0]["finish_reason"] for c in chunks if c["choices"] and c["choices"][0]["finish_reason"]] == [
        "stop"
    ]
    assert chunks[-1]["choices"] == [] and chunks[-1]["usage"]["completion_tokens"] > 0
    assert chunks[-1]["usage"]["cost_usd"] is None  # unpriced, never 0


# -- tools --------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("model", [ROUTER, TGI, VLLM])
async def test_tool_call_then_result(gateway: str, model: str) -> None:
    data = await create(gateway, model=model, input="weather in Paris", tools=[WEATHER])
    calls = calls_of(data)
    assert [(c["name"], orjson.loads(c["arguments"])) for c in calls] == [
        ("get_weather", {"input": "weather in Paris"})
    ]
    if model == TGI:  # TGI sent no id and an object as arguments
        assert calls[0]["call_id"] == synth_call_id(None, 0, "get_weather")
        assert calls[0]["arguments"] == '{"input":"weather in Paris"}'
    assert data["tollway"]["agentic"]["requires_action"] is True
    call = calls[0]
    follow = await create(
        gateway,
        model=model,
        tools=[WEATHER],
        input=[
            {"role": "user", "content": "weather in Paris"},
            {"type": "function_call", "call_id": call["call_id"], "name": call["name"], "arguments": call["arguments"]},
            {"type": "function_call_output", "call_id": call["call_id"], "output": "sunny"},
        ],
    )
    assert output_text(follow) == "tool said: sunny"


async def test_parallel_tool_calls_and_results(gateway: str) -> None:
    data = await create(gateway, model=TGI, input="do both in parallel", tools=[WEATHER, TIME])
    calls = calls_of(data)
    assert [c["name"] for c in calls] == ["get_weather", "get_time"] and calls[0]["call_id"] != calls[1]["call_id"]
    follow = await create(
        gateway,
        model=TGI,
        tools=[WEATHER, TIME],
        input=[
            {"role": "user", "content": "do both in parallel"},
            *calls,
            {"type": "function_call_output", "call_id": calls[0]["call_id"], "output": "sunny"},
            {"type": "function_call_output", "call_id": calls[1]["call_id"], "output": "noon"},
        ],
    )
    assert output_text(follow) == "tool said: sunny; noon"
    single = await create(
        gateway, model=ROUTER, input="do both in parallel", tools=[WEATHER, TIME], parallel_tool_calls=False
    )
    assert len(calls_of(single)) == 1


@pytest.mark.parametrize(
    ("choice", "names"),
    [
        ("none", []),
        ("required", ["get_weather"]),
        ({"type": "function", "name": "get_time"}, ["get_time"]),
        (
            {"type": "allowed_tools", "mode": "required", "tools": [{"type": "function", "name": "get_time"}]},
            ["get_time"],
        ),
    ],
)
async def test_tool_choice(gateway: str, choice: Any, names: list[str]) -> None:
    data = await create(gateway, model=ROUTER, input="what now", tools=[WEATHER, TIME], tool_choice=choice)
    assert [c["name"] for c in calls_of(data)] == names
    if not names:
        assert output_text(data) == "echo: what now"


@pytest.mark.parametrize("model", [ROUTER, TGI])
async def test_chat_tools_round_trip_and_named_choice(gateway: str, model: str) -> None:
    msgs: list[dict[str, Any]] = [{"role": "user", "content": "weather?"}]
    data = await chat(
        gateway,
        model=model,
        messages=msgs,
        tools=CHAT_TOOLS,
        tool_choice={"type": "function", "function": {"name": "get_time"}},
    )
    choice = data["choices"][0]
    assert choice["finish_reason"] == "tool_calls"
    call = choice["message"]["tool_calls"][0]
    assert call["function"]["name"] == "get_time" and call["id"] and call["type"] == "function"
    msgs += [choice["message"], {"role": "tool", "tool_call_id": call["id"], "content": "rainy"}]
    data = await chat(gateway, model=model, messages=msgs, tools=CHAT_TOOLS)
    assert data["choices"][0]["message"]["content"] == "tool said: rainy"


@pytest.mark.parametrize("model", [ROUTER, TGI, VLLM])
async def test_stream_tool_arguments(gateway: str, model: str) -> None:
    events = await stream(gateway, model=model, input="weather please in parallel", tools=[WEATHER, TIME])
    done = [e for e in events if e["type"] == "response.function_call_arguments.done"]
    assert len(done) == 2
    for e in done:
        pieces = [
            d["delta"]
            for d in events
            if d["type"] == "response.function_call_arguments.delta" and d["item_id"] == e["item_id"]
        ]
        assert len(pieces) > 1 and "".join(pieces) == e["arguments"]
        assert orjson.loads(e["arguments"]) == {"input": "weather please in parallel"}
    final = events[-1]["response"]
    assert len({c["call_id"] for c in calls_of(final)}) == 2
    chunks = await chat_stream(gateway, model=model, tools=CHAT_TOOLS, messages=[{"role": "user", "content": "w"}])
    calls = [tc for c in chunks if c["choices"] for tc in c["choices"][0]["delta"].get("tool_calls") or []]
    assert calls[0]["function"]["name"] == "get_weather" and calls[0]["id"]
    assert orjson.loads("".join(tc["function"].get("arguments") or "" for tc in calls)) == {"input": "w"}
    assert any(c["choices"] and c["choices"][0]["finish_reason"] == "tool_calls" for c in chunks)


# -- reasoning -----------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("model", [ROUTER, TGI, VLLM])
async def test_reasoning_round_trip(gateway: str, model: str) -> None:
    first = await create(gateway, model=model, input="plan it", tools=[WEATHER], reasoning={"effort": "low"})
    assert [it["type"] for it in first["output"]] == ["reasoning", "function_call"]
    assert first["output"][0]["content"] == [{"type": "reasoning_text", "text": "thinking about: plan it"}]
    assert "encrypted_content" not in first["output"][0]  # HF has no opaque reasoning state
    call = calls_of(first)[0]
    turn = [
        {"role": "user", "content": "plan it"},
        *first["output"],
        {"type": "function_call_output", "call_id": call["call_id"], "output": "ok"},
    ]
    # the mock rejects a <think> block that does not carry this exact reasoning
    follow = await create(gateway, model=model, tools=[WEATHER], reasoning={"effort": "low"}, input=turn)
    assert output_text(follow) == "tool said: ok"
    assert follow["tollway"]["fidelity"]["dropped"] == []
    by_id = await create(gateway, model=model, input="go on", previous_response_id=follow["id"])
    assert output_text(by_id) == "echo: go on"
    tampered = [dict(it) for it in turn]
    tampered[1] = {**tampered[1], "content": [{"type": "reasoning_text", "text": "thinking about: other"}]}
    status, _, err = await post(f"{gateway}/v1/responses", {"model": model, "tools": [WEATHER], "input": tampered})
    assert status == 400 and err["error"]["message"].startswith("huggingface: messages[1].content")
    validate_error(err)


@pytest.mark.parametrize("model", [ROUTER, VLLM])
async def test_stream_reasoning(gateway: str, model: str) -> None:
    events = await stream(gateway, model=model, input="[mock:chunks=3] think hard", reasoning={"effort": "low"})
    reasoning = "".join(e["delta"] for e in events if e["type"] == "response.reasoning.delta")
    assert reasoning == "thinking about: think hard"
    text = [e["delta"] for e in events if e["type"] == "response.output_text.delta"]
    assert len(text) == 3 and "".join(text).startswith("echo: think hard")
    final = events[-1]["response"]
    assert [it["type"] for it in final["output"]] == ["reasoning", "message"]


async def test_chat_reasoning_content_and_think_round_trip(gateway: str) -> None:
    data = await chat(gateway, model=ROUTER, reasoning_effort="low", messages=[{"role": "user", "content": "why"}])
    message = data["choices"][0]["message"]
    assert message["reasoning_content"] == "thinking about: why" and message["content"] == "echo: why"
    chunks = await chat_stream(
        gateway, model=ROUTER, reasoning_effort="low", messages=[{"role": "user", "content": "why"}]
    )
    assert chat_deltas(chunks, "reasoning_content") == "thinking about: why"
    assert chat_deltas(chunks, "content") == "echo: why"
    # a chat client (pydantic-ai style) sends the reasoning back as a <think> block in the assistant content
    history = f"<think>\n{message['reasoning_content']}\n</think>\n\n{message['content']}"
    follow = await chat(
        gateway,
        model=ROUTER,
        messages=[
            {"role": "user", "content": "why"},
            {"role": "assistant", "content": history},
            {"role": "user", "content": "and?"},
        ],
    )
    assert follow["choices"][0]["message"]["content"] == "echo: and?"


# -- structured output ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("model", [ROUTER, TGI])
async def test_structured_output(gateway: str, model: str) -> None:
    schema = {"type": "object", "properties": {"echo": {"type": "string"}}, "required": ["echo"]}
    data = await create(
        gateway,
        model=model,
        input="hi",
        text={"format": {"type": "json_schema", "name": "echo", "schema": schema, "strict": True}},
    )
    assert orjson.loads(output_text(data)) == {"echo": "hi"} and data["text"]["format"]["name"] == "echo"
    reply = await chat(
        gateway,
        model=model,
        messages=[{"role": "user", "content": "yo"}],
        response_format={"type": "json_schema", "json_schema": {"name": "echo", "schema": schema}},
    )
    assert orjson.loads(reply["choices"][0]["message"]["content"]) == {"echo": "yo"}


# -- usage and cost ------------------------------------------------------------------------------------------------


def _expected_cost(usage: dict[str, Any]) -> Decimal:
    cached = usage["input_tokens_details"]["cached_tokens"]
    return (
        Decimal(usage["input_tokens"] - cached) * Decimal(PRICES["input"])
        + Decimal(cached) * Decimal(PRICES["cached_input"])
        + Decimal(usage["output_tokens"]) * Decimal(PRICES["output"])
    ) / Decimal(1_000_000)


async def test_cached_and_reasoning_usage_priced_by_override(gateway: str) -> None:
    data = await create(
        gateway,
        model=VLLM,
        reasoning={"effort": "low"},
        input=[
            {"role": "user", "content": "one two three four"},
            {"role": "assistant", "content": "echo: one"},
            {"role": "user", "content": "five six"},
        ],
    )
    usage = data["usage"]
    assert usage["input_tokens_details"]["cached_tokens"] == usage["input_tokens"] // 2 > 0
    assert usage["output_tokens_details"]["reasoning_tokens"] == 4  # "thinking about: five six"
    cost = data["tollway"]["cost"]
    assert cost["status"] == "priced" and cost["total_usd"] == _expected_cost(usage) > 0
    assert data["usage"]["cost_usd"] == cost["total_usd"]
    events = await stream(
        gateway,
        model=VLLM,
        reasoning={"effort": "low"},
        input=[*data["output"][-1:], {"role": "user", "content": "again"}],
    )
    final = events[-1]["response"]
    assert final["usage"]["input_tokens_details"]["cached_tokens"] > 0
    # SSE events were parsed with floats: the exact decimal is their shortest repr
    assert Decimal(repr(final["tollway"]["cost"]["total_usd"])) == _expected_cost(final["usage"])


async def test_router_cached_tokens_and_unpriced_by_default(gateway: str) -> None:
    data = await create(
        gateway,
        model=ROUTER,
        input=[
            {"role": "user", "content": "a b c d"},
            {"role": "assistant", "content": "echo: a"},
            {"role": "user", "content": "e"},
        ],
    )
    assert data["usage"]["input_tokens_details"]["cached_tokens"] == data["usage"]["input_tokens"] // 2
    assert data["tollway"]["cost"]["status"] == "unpriced" and data["usage"]["cost_usd"] is None
    status, headers, reply = await post(
        f"{gateway}/v1/chat/completions", {"model": VLLM, "messages": [{"role": "user", "content": "a b"}]}
    )
    assert status == 200 and Decimal(headers["x-tollway-cost-usd"]) == reply["usage"]["cost_usd"] > 0


# -- finish reasons -------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("model", [ROUTER, TGI])
async def test_max_output_tokens_is_incomplete(gateway: str, model: str) -> None:
    data = await create(gateway, model=model, input="a b c d e f g h", max_output_tokens=2)
    assert data["status"] == "incomplete" and data["incomplete_details"] == {"reason": "max_output_tokens"}
    cut = await create(gateway, model=model, input="a b c", max_output_tokens=2, reasoning={"effort": "low"})
    assert cut["status"] == "incomplete" and [it["type"] for it in cut["output"]] == ["reasoning"]
    reply = await chat(gateway, model=model, max_tokens=2, messages=[{"role": "user", "content": "a b c d"}])
    assert reply["choices"][0]["finish_reason"] == "length"
    events = await stream(gateway, model=model, input="a b c d e f", max_output_tokens=3)
    assert events[-1]["type"] == "response.incomplete"


# -- errors ----------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("fault", "status", "message"),
    [
        ("400", 400, "Input validation error: `messages` is not valid (mock)"),
        ("401", 401, "Invalid credentials in Authorization header"),
        ("403", 403, "This authentication method does not have sufficient permissions"),
        ("404", 404, "The model `mock` does not exist."),
        ("429", 429, "You have exceeded your monthly included credits"),
        ("500", 502, "Request failed during generation: Server error: mock failure"),
        ("529", 503, "Model mock is currently loading (estimated time 20s)"),
    ],
)
@pytest.mark.parametrize("door", ["responses", "chat"])
async def test_error_mapping(gateway: str, fault: str, status: int, message: str, door: str) -> None:
    text = f"[mock:fault={fault}] hi"
    if door == "responses":
        got, headers, data = await post(f"{gateway}/v1/responses", {"model": ROUTER, "input": text})
        validate_error(data)
    else:
        got, headers, data = await post(
            f"{gateway}/v1/chat/completions", {"model": ROUTER, "messages": [{"role": "user", "content": text}]}
        )
    assert got == status, data
    assert data["error"]["message"].startswith("huggingface: " + message)
    if fault == "429":
        assert headers["retry-after"] == "2" and data["error"]["type"] == "rate_limit_error"
    if fault == "529":
        assert data["error"]["type"] == "overloaded_error"


async def test_stream_error_before_first_byte_is_http_error(gateway: str) -> None:
    status, _, raw = await post_stream(
        f"{gateway}/v1/responses", {"model": TGI, "stream": True, "input": "[mock:fault=529] hi"}
    )
    assert status == 503 and "currently loading" in orjson.loads(raw)["error"]["message"]


@pytest.mark.parametrize("fault", ["disconnect", "stream_error", "malformed"])
async def test_mid_stream_failure(gateway: str, fault: str) -> None:
    events = await stream(gateway, model=ROUTER, input=f"[mock:fault={fault},chunks=6] hello")
    assert [e["type"] for e in events][-2:] == ["error", "response.failed"]
    assert events[-1]["response"]["status"] == "failed" and events[-1]["response"]["error"]["message"]
    if fault == "stream_error":
        assert "CUDA out of memory" in events[-2]["error"]["message"]
    chunks = await chat_stream(
        gateway, model=ROUTER, messages=[{"role": "user", "content": f"[mock:fault={fault}] x y z"}]
    )
    assert "error" in chunks[-1]


# -- cross-provider continuation --------------------------------------------------------------------------------------


async def test_cross_provider_continuation_from_anthropic(gateway: str) -> None:
    first = await create(gateway, model="claude-sonnet-4-5", input="x", reasoning={"effort": "low"})
    assert first["output"][0]["encrypted_content"].startswith("tw1.anthropic.")
    by_id = await create(gateway, model=ROUTER, input="continue", previous_response_id=first["id"])
    assert output_text(by_id) == "echo: continue" and by_id["tollway"]["provider"] == "huggingface"
    assert any("reasoning state from anthropic" in d for d in by_id["tollway"]["fidelity"]["dropped"])
    sent_back = await create(
        gateway,
        model=ROUTER,
        input=[{"role": "user", "content": "x"}, *first["output"], {"role": "user", "content": "continue"}],
    )
    assert output_text(sent_back) == "echo: continue"
    assert sent_back["tollway"]["fidelity"]["dropped"] == [
        "input[1].encrypted_content (reasoning state from anthropic)"
    ]
    # and back to Anthropic from an HF turn: HF reasoning carries no state, so Anthropic reports it
    hf = await create(gateway, model=TGI, input="y", reasoning={"effort": "low"})
    back = await create(gateway, model="claude-sonnet-4-5", input="z", previous_response_id=hf["id"])
    assert output_text(back) == "echo: z"
    assert any("reasoning" in d for d in back["tollway"]["fidelity"]["dropped"])
    reply = await chat(
        gateway,
        model=ROUTER,
        messages=[
            {"role": "user", "content": "x"},
            {"role": "assistant", "content": output_text(first)},
            {"role": "user", "content": "continue"},
        ],
    )
    assert reply["choices"][0]["message"]["content"] == "echo: continue"

"""End to end: AWS Bedrock (Converse / ConverseStream, SigV4-signed, binary event streams) through the real
gateway against the mock, on both doors. Every /v1/responses body and SSE event is validated against the Open
Responses bundle."""

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
from tollway.settings import Settings

NOVA = "us.amazon.nova-micro-v1:0"
CLAUDE = "us.anthropic.claude-sonnet-4-5-20250929-v1:0"  # reasoning and native structured output
PNG = (
    "data:image/png;base64,iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mP8z8BQDwAEhQGAhKmMIQAAAABJ"
    "RU5ErkJggg=="
)
WEATHER = {
    "type": "function",
    "name": "get_weather",
    "description": "Weather for a city",
    "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]},
}
TIME = {"type": "function", "name": "get_time", "parameters": {"type": "object", "properties": {}}}
CHAT_TOOLS = [{"type": "function", "function": {"name": "get_weather", "parameters": WEATHER["parameters"]}}]


@pytest.fixture(scope="module")
def gateway(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    db: Path = tmp_path_factory.mktemp("bedrock") / "tollway.db"
    with running_mock() as mock_url:
        root = mock_url.removesuffix("/v1")
        settings = Settings.model_validate(
            {
                "database_url": f"sqlite+aiosqlite:///{db}",
                "providers": {
                    "bedrock": {
                        "api_key": "AKIDMOCK",
                        "aws_secret_access_key": "mock-secret",
                        "region": "us-east-1",
                        "base_url": root,
                    },
                    "anthropic": {"api_key": "sk-ant-test", "base_url": mock_url},
                    "openai": {"api_key": "sk-test", "base_url": mock_url},
                    "nosecret": {"kind": "bedrock", "api_key": "AKIDMOCK", "base_url": root},
                },
                "models": {"nova": f"bedrock/{NOVA}"},
                "timeouts": {"connect": 2, "read": 5, "total": 20},
            }
        )
        with running_gateway(settings) as url:
            yield url


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
    resource: dict[str, Any] = data
    return resource


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


async def chat(gateway: str, **body: Any) -> dict[str, Any]:
    status, _, data = await post(f"{gateway}/v1/chat/completions", body)
    assert status == 200, data
    assert data["tollway"]["provider"] == "bedrock"
    completion: dict[str, Any] = data
    return completion


async def chat_stream(gateway: str, **body: Any) -> list[dict[str, Any]]:
    status, _, raw = await post_stream(
        f"{gateway}/v1/chat/completions", {**body, "stream": True, "stream_options": {"include_usage": True}}
    )
    assert status == 200, raw[:300]
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


# --------------------------------------------------------------------------------------------------
# routing and text
# --------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("model", "upstream"),
    [
        (NOVA, NOVA),
        ("amazon.nova-micro-v1:0", "amazon.nova-micro-v1:0"),
        (f"bedrock/{NOVA}", NOVA),
        ("nova", NOVA),
    ],
)
async def test_text_and_routing(gateway: str, model: str, upstream: str) -> None:
    data = await create(gateway, model=model, input="hello there")
    assert output_text(data) == "echo: hello there"
    assert data["status"] == "completed"
    assert data["tollway"]["provider"] == "bedrock" and data["tollway"]["model"] == upstream
    assert data["tollway"]["fidelity"] == {"dropped": [], "approximated": []}
    assert data["usage"]["input_tokens"] == 2 and data["usage"]["output_tokens"] == 3


async def test_instructions_system_developer_and_multi_turn(gateway: str) -> None:
    data = await create(
        gateway,
        model=NOVA,
        instructions="Be brief.",
        input=[
            {"role": "system", "content": "You are terse."},
            {"role": "user", "content": "first"},
            {"role": "assistant", "content": "echo: first"},
            {"role": "developer", "content": "Mind the rules."},
            {"role": "user", "content": [{"type": "input_text", "text": "second"}]},
        ],
    )
    assert output_text(data) == "echo: second"
    # instructions + system + developer + every message word is counted by the mock
    assert data["usage"]["input_tokens"] == 2 + 3 + 3 + 1 + 2 + 1


async def test_image_input_inline_and_url(gateway: str) -> None:
    data = await create(
        gateway,
        model=NOVA,
        input=[
            {
                "role": "user",
                "content": [
                    {"type": "input_text", "text": "describe"},
                    {"type": "input_image", "image_url": PNG},
                    {"type": "input_image", "image_url": "https://example.com/cat.png"},
                ],
            }
        ],
    )
    assert output_text(data) == "echo: describe"
    dropped = "input[0].content[2] (image URL: Bedrock takes inline images only)"
    assert data["tollway"]["fidelity"]["dropped"] == [dropped]


async def test_chat_text_system_and_multi_turn(gateway: str) -> None:
    data = await chat(
        gateway,
        model=NOVA,
        messages=[
            {"role": "system", "content": "be nice"},
            {"role": "user", "content": "hello"},
            {"role": "assistant", "content": "echo: hello"},
            {"role": "user", "content": "again"},
        ],
    )
    assert data["choices"][0]["message"]["content"] == "echo: again"
    assert data["choices"][0]["finish_reason"] == "stop"
    assert data["usage"]["prompt_tokens"] == 6


async def test_chat_image(gateway: str) -> None:
    data = await chat(
        gateway,
        model=NOVA,
        messages=[
            {
                "role": "user",
                "content": [{"type": "text", "text": "look"}, {"type": "image_url", "image_url": {"url": PNG}}],
            }
        ],
    )
    assert data["choices"][0]["message"]["content"] == "echo: look"


# --------------------------------------------------------------------------------------------------
# streaming
# --------------------------------------------------------------------------------------------------


async def test_stream_text(gateway: str) -> None:
    events = await stream(gateway, model=NOVA, input="[mock:chunks=5] stream me please")
    types = [e["type"] for e in events]
    assert types[:2] == ["response.created", "response.in_progress"] and types[-1] == "response.completed"
    deltas = [e["delta"] for e in events if e["type"] == "response.output_text.delta"]
    assert len(deltas) == 5 and "".join(deltas).startswith("echo: stream me please")
    final = events[-1]["response"]
    assert final["output"][0]["content"][0]["text"] == "".join(deltas)
    assert final["usage"]["output_tokens"] == 5 and final["tollway"]["provider"] == "bedrock"


async def test_chat_stream_text_with_usage(gateway: str) -> None:
    chunks = await chat_stream(gateway, model=NOVA, messages=[{"role": "user", "content": "[mock:chunks=4] hi there"}])
    text = "".join(c["choices"][0]["delta"].get("content") or "" for c in chunks if c["choices"])
    assert text.startswith("echo: hi there")
    finishes = [c["choices"][0]["finish_reason"] for c in chunks if c["choices"] and c["choices"][0]["finish_reason"]]
    assert finishes == ["stop"]
    assert chunks[-1]["choices"] == [] and chunks[-1]["usage"]["completion_tokens"] == 4


# --------------------------------------------------------------------------------------------------
# tools
# --------------------------------------------------------------------------------------------------


async def test_single_tool_call_then_result(gateway: str) -> None:
    data = await create(gateway, model=NOVA, input="weather in Paris", tools=[WEATHER])
    (call,) = calls_of(data)
    assert call["name"] == "get_weather" and orjson.loads(call["arguments"]) == {"input": "weather in Paris"}
    assert call["call_id"].startswith("tooluse_")
    assert data["tollway"]["agentic"]["requires_action"] is True
    follow = await create(
        gateway,
        model=NOVA,
        tools=[WEATHER],
        input=[
            {"role": "user", "content": "weather in Paris"},
            {"type": "function_call", "call_id": call["call_id"], "name": call["name"], "arguments": call["arguments"]},
            {"type": "function_call_output", "call_id": call["call_id"], "output": "sunny"},
        ],
    )
    assert output_text(follow) == "tool said: sunny"


async def test_parallel_calls_and_their_results(gateway: str) -> None:
    data = await create(gateway, model=NOVA, input="do both in parallel", tools=[WEATHER, TIME])
    calls = calls_of(data)
    assert [c["name"] for c in calls] == ["get_weather", "get_time"]
    follow = await create(
        gateway,
        model=NOVA,
        tools=[WEATHER, TIME],
        previous_response_id=data["id"],
        input=[
            {"type": "function_call_output", "call_id": calls[0]["call_id"], "output": "sunny"},
            {"type": "function_call_output", "call_id": calls[1]["call_id"], "output": "noon"},
        ],
    )
    assert output_text(follow) == "tool said: sunny; noon"


async def test_tool_choice(gateway: str) -> None:
    forced = await create(
        gateway,
        model=NOVA,
        input="anything",
        tools=[WEATHER, TIME],
        tool_choice={"type": "function", "name": "get_time"},
    )
    assert [c["name"] for c in calls_of(forced)] == ["get_time"]
    allowed = await create(
        gateway,
        model=NOVA,
        input="what time",
        tools=[WEATHER, TIME],
        tool_choice={"type": "allowed_tools", "mode": "auto", "tools": [{"type": "function", "name": "get_time"}]},
    )
    assert [c["name"] for c in calls_of(allowed)] == ["get_time"]
    none = await create(gateway, model=NOVA, input="no tools", tools=[WEATHER], tool_choice="none")
    assert calls_of(none) == [] and output_text(none) == "echo: no tools"
    assert none["tollway"]["fidelity"] == {"dropped": [], "approximated": []}


async def test_stream_tool_arguments(gateway: str) -> None:
    events = await stream(gateway, model=NOVA, input="weather please", tools=[WEATHER])
    args = "".join(e["delta"] for e in events if e["type"] == "response.function_call_arguments.delta")
    assert len([e for e in events if e["type"] == "response.function_call_arguments.delta"]) > 1
    done = next(e for e in events if e["type"] == "response.function_call_arguments.done")
    assert done["arguments"] == args and orjson.loads(args) == {"input": "weather please"}
    assert events[-1]["response"]["tollway"]["agentic"]["requires_action"] is True


async def test_chat_tools_round_trip_and_stream(gateway: str) -> None:
    msgs: list[dict[str, Any]] = [{"role": "user", "content": "weather?"}]
    data = await chat(gateway, model=NOVA, messages=msgs, tools=CHAT_TOOLS)
    choice = data["choices"][0]
    assert choice["finish_reason"] == "tool_calls"
    call = choice["message"]["tool_calls"][0]
    msgs += [choice["message"], {"role": "tool", "tool_call_id": call["id"], "content": "rainy"}]
    data = await chat(gateway, model=NOVA, messages=msgs, tools=CHAT_TOOLS)
    assert data["choices"][0]["message"]["content"] == "tool said: rainy"
    chunks = await chat_stream(gateway, model=NOVA, tools=CHAT_TOOLS, messages=[{"role": "user", "content": "w"}])
    calls = [tc for c in chunks if c["choices"] for tc in c["choices"][0]["delta"].get("tool_calls") or []]
    assert calls[0]["function"]["name"] == "get_weather" and calls[0]["id"].startswith("tooluse_")
    assert orjson.loads("".join(tc["function"].get("arguments") or "" for tc in calls)) == {"input": "w"}


# --------------------------------------------------------------------------------------------------
# reasoning
# --------------------------------------------------------------------------------------------------


async def test_reasoning_round_trip_by_items_and_previous_response_id(gateway: str) -> None:
    first = await create(gateway, model=CLAUDE, input="plan it", tools=[WEATHER], reasoning={"effort": "low"})
    kinds = [it["type"] for it in first["output"]]
    assert kinds == ["reasoning", "function_call"]
    reasoning = first["output"][0]
    assert reasoning["encrypted_content"].startswith("tw1.bedrock.")
    assert reasoning["content"] == [{"type": "reasoning_text", "text": "thinking about: plan it"}]
    assert first["tollway"]["fidelity"]["approximated"] == ["reasoning.effort"]
    call = calls_of(first)[0]
    # the mock rejects a reasoningContent block whose signature did not come back intact
    follow = await create(
        gateway,
        model=CLAUDE,
        tools=[WEATHER],
        reasoning={"effort": "low"},
        input=[
            {"role": "user", "content": "plan it"},
            *first["output"],
            {"type": "function_call_output", "call_id": call["call_id"], "output": "ok"},
        ],
    )
    assert output_text(follow) == "tool said: ok"
    assert follow["output"][0]["type"] == "reasoning"
    chained = await create(
        gateway,
        model=CLAUDE,
        tools=[WEATHER],
        reasoning={"effort": "low"},
        previous_response_id=first["id"],
        input=[{"type": "function_call_output", "call_id": call["call_id"], "output": "fine"}],
    )
    assert output_text(chained) == "tool said: fine"
    assert chained["tollway"]["fidelity"]["dropped"] == []


async def test_stream_reasoning(gateway: str) -> None:
    events = await stream(gateway, model=CLAUDE, input="think hard", reasoning={"effort": "low"})
    text = "".join(e["delta"] for e in events if e["type"] == "response.reasoning.delta")
    assert text == "thinking about: think hard"
    final = events[-1]["response"]
    assert final["output"][0]["type"] == "reasoning"
    assert final["output"][0]["encrypted_content"].startswith("tw1.bedrock.")
    follow = await create(
        gateway,
        model=CLAUDE,
        reasoning={"effort": "low"},
        input=[{"role": "user", "content": "think hard"}, *final["output"], {"role": "user", "content": "go on"}],
    )
    assert output_text(follow) == "echo: go on"


async def test_chat_reasoning_content_and_tool_loop(gateway: str) -> None:
    msgs: list[dict[str, Any]] = [{"role": "user", "content": "weather?"}]
    data = await chat(gateway, model=CLAUDE, messages=msgs, tools=CHAT_TOOLS, reasoning_effort="low")
    message = data["choices"][0]["message"]
    assert message["reasoning_content"] == "thinking about: weather?"
    call = message["tool_calls"][0]
    msgs += [message, {"role": "tool", "tool_call_id": call["id"], "content": "rainy"}]
    # chat messages cannot carry the signature back: thinking is left off for the tool loop, and reported
    data = await chat(gateway, model=CLAUDE, messages=msgs, tools=CHAT_TOOLS, reasoning_effort="low")
    assert data["choices"][0]["message"]["content"] == "tool said: rainy"
    assert "reasoning.effort" in data["tollway"]["fidelity"]["dropped"]


# --------------------------------------------------------------------------------------------------
# structured output, usage and cost, stop reasons
# --------------------------------------------------------------------------------------------------

FORMAT = {
    "type": "json_schema",
    "name": "echo",
    "strict": True,
    "schema": {"type": "object", "properties": {"echo": {"type": "string"}}, "required": ["echo"]},
}


async def test_structured_output(gateway: str) -> None:
    data = await create(gateway, model=CLAUDE, input="hi", text={"format": FORMAT})
    assert orjson.loads(output_text(data)) == {"echo": "hi"}
    assert data["text"]["format"]["name"] == "echo"
    assert data["tollway"]["fidelity"] == {"dropped": [], "approximated": []}
    nova = await create(gateway, model=NOVA, input="hi", text={"format": FORMAT})
    assert nova["tollway"]["fidelity"]["approximated"] == ["text.format"]  # an instruction, not a constraint
    chat_data = await chat(
        gateway,
        model=CLAUDE,
        messages=[{"role": "user", "content": "yo"}],
        response_format={
            "type": "json_schema",
            "json_schema": {"name": "echo", "schema": FORMAT["schema"], "strict": True},
        },
    )
    assert orjson.loads(chat_data["choices"][0]["message"]["content"]) == {"echo": "yo"}


async def test_cached_usage_and_cost(gateway: str) -> None:
    data = await create(
        gateway,
        model=CLAUDE,
        instructions="one two three four five six",
        input="seven eight",
        prompt_cache_key="conversation-7",
    )
    usage = data["usage"]
    assert usage["input_tokens"] == 8
    assert usage["input_tokens_details"]["cached_tokens"] == 4
    assert usage["output_tokens"] == 3
    assert usage["output_tokens_details"]["reasoning_tokens"] == 0  # Bedrock does not report them separately
    assert data["tollway"]["fidelity"]["approximated"] == ["prompt_cache_key"]
    # the us. cross-region profile of claude-sonnet-4-5 in the shipped table: $3.30 input, $0.33 cached input,
    # $16.50 output per 1M tokens (10% above the base model's regional price)
    expected = (4 * Decimal("3.3") + 4 * Decimal("0.33") + 3 * Decimal("16.5")) / 1_000_000
    cost = data["tollway"]["cost"]
    assert cost["status"] == "priced" and cost["total_usd"] == expected == usage["cost_usd"]
    assert cost["cached_input_usd"] == 4 * Decimal("0.33") / 1_000_000
    chat_data = await chat(
        gateway,
        model=CLAUDE,
        prompt_cache_key="c",
        messages=[{"role": "system", "content": "a b c d"}, {"role": "user", "content": "e f"}],
    )
    assert chat_data["usage"]["prompt_tokens_details"]["cached_tokens"] == 3
    assert chat_data["usage"]["cost_usd"] == chat_data["tollway"]["cost"]["total_usd"] > 0


async def test_nova_is_priced(gateway: str) -> None:
    data = await create(gateway, model=NOVA, input="a b c")
    expected = (3 * Decimal("0.035") + 4 * Decimal("0.14")) / 1_000_000
    assert data["tollway"]["cost"]["total_usd"] == expected


async def test_max_output_tokens_is_incomplete_on_both_doors(gateway: str) -> None:
    data = await create(gateway, model=NOVA, input="a b c d e f g h", max_output_tokens=2)
    assert data["status"] == "incomplete" and data["incomplete_details"] == {"reason": "max_output_tokens"}
    events = await stream(gateway, model=NOVA, input="a b c d e f g h", max_output_tokens=2)
    assert events[-1]["type"] == "response.incomplete"
    chat_data = await chat(gateway, model=NOVA, max_tokens=2, messages=[{"role": "user", "content": "a b c d"}])
    assert chat_data["choices"][0]["finish_reason"] == "length"


# --------------------------------------------------------------------------------------------------
# errors
# --------------------------------------------------------------------------------------------------

# fault -> (gateway status, the mock's Bedrock message); Bedrock reports bad credentials as 403
FAULTS = [
    ("400", 400, "1 validation error detected: messages is invalid (mock fault)"),
    ("401", 403, "The security token included in the request is invalid."),
    ("403", 403, "You don't have access to the model with the specified model ID."),
    ("404", 404, "Could not resolve the foundation model from the provided model identifier."),
    ("429", 429, "Too many requests, please wait before trying again."),
    ("500", 502, "The system encountered an unexpected error during processing. Try your request again."),
    ("529", 503, "Bedrock is unable to process your request."),
]


@pytest.mark.parametrize(("fault", "status", "message"), FAULTS)
async def test_error_mapping(gateway: str, fault: str, status: int, message: str) -> None:
    got, headers, data = await post(f"{gateway}/v1/responses", {"model": NOVA, "input": f"[mock:fault={fault}] hi"})
    assert got == status, data
    validate_error(data)
    assert data["error"]["message"] == f"bedrock: {message}"
    assert (headers.get("retry-after") == "2") is (fault == "429")
    got, headers, data = await post(
        f"{gateway}/v1/chat/completions",
        {"model": NOVA, "messages": [{"role": "user", "content": f"[mock:fault={fault}] hi"}]},
    )
    assert got == status and data["error"]["message"] == f"bedrock: {message}"
    status_stream, _, raw = await post_stream(
        f"{gateway}/v1/responses", {"model": NOVA, "stream": True, "input": f"[mock:fault={fault}] hi"}
    )
    assert status_stream == status and orjson.loads(raw)["error"]["message"] == f"bedrock: {message}"


async def test_upstream_validation_error_keeps_the_message(gateway: str) -> None:
    got, _, data = await post(
        f"{gateway}/v1/responses", {"model": NOVA, "input": [{"role": "assistant", "content": "I start"}]}
    )
    assert got == 400 and "must start with a user message" in data["error"]["message"]


async def test_mid_stream_failures(gateway: str) -> None:
    for fault in ("stream_error", "disconnect", "malformed"):
        events = await stream(gateway, model=NOVA, input=f"[mock:fault={fault},chunks=6] hello")
        types = [e["type"] for e in events]
        assert types[-2:] == ["error", "response.failed"], (fault, types)
        assert events[-1]["response"]["status"] == "failed"
        if fault == "stream_error":
            assert "mock stream error" in events[-2]["error"]["message"]
    status, _, raw = await post_stream(
        f"{gateway}/v1/chat/completions",
        {"model": NOVA, "stream": True, "messages": [{"role": "user", "content": "[mock:fault=stream_error] x y z"}]},
    )
    chunks, done = parse_frames(raw)
    assert status == 200 and done and "error" in chunks[-1]


async def test_missing_secret_names_the_variable(gateway: str) -> None:
    got, _, data = await post(f"{gateway}/v1/responses", {"model": f"nosecret/{NOVA}", "input": "hi"})
    assert got == 400, data
    validate_error(data)
    assert "AWS_SECRET_ACCESS_KEY" in data["error"]["message"]
    assert data["error"]["code"] == "provider_not_configured"


# --------------------------------------------------------------------------------------------------
# a conversation across providers
# --------------------------------------------------------------------------------------------------


async def test_cross_provider_continuation(gateway: str) -> None:
    first = await create(
        gateway, model="claude-sonnet-4-5", input="weather in Oslo", tools=[WEATHER], reasoning={"effort": "low"}
    )
    assert first["tollway"]["provider"] == "anthropic"
    assert [it["type"] for it in first["output"]] == ["reasoning", "function_call"]
    call = calls_of(first)[0]
    result = {"type": "function_call_output", "call_id": call["call_id"], "output": "snow"}
    chained = await create(gateway, model=NOVA, tools=[WEATHER], previous_response_id=first["id"], input=[result])
    assert chained["tollway"]["provider"] == "bedrock"
    assert output_text(chained) == "tool said: snow"
    assert chained["tollway"]["fidelity"]["dropped"] == ["input[1].reasoning (state from anthropic)"]
    resent = await create(
        gateway,
        model=CLAUDE,
        tools=[WEATHER],
        reasoning={"effort": "low"},
        input=[{"role": "user", "content": "weather in Oslo"}, *first["output"], result],
    )
    assert output_text(resent) == "tool said: snow"
    assert "input[1].reasoning (state from anthropic)" in resent["tollway"]["fidelity"]["dropped"]
    # and back: Bedrock's reasoning state is foreign to Anthropic
    on_bedrock = await create(gateway, model=CLAUDE, input="think first", reasoning={"effort": "low"})
    again = await create(
        gateway, model="claude-sonnet-4-5", input=[*on_bedrock["output"], {"role": "user", "content": "thanks"}]
    )
    assert output_text(again) == "echo: thanks"
    assert again["tollway"]["fidelity"]["dropped"] == ["input[0].reasoning (state from bedrock)"]

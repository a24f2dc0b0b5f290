"""End to end through the real gateway and the mock's native Ollama route (``/api/chat``, NDJSON streams), on both
front doors: text, instructions, multi-turn, images, streaming, tools (single, parallel, results, tool_choice),
reasoning round trips (the mock rejects thinking that did not come back intact), structured output, usage and
cost (unpriced unless the operator prices the model), done reasons, every error mapping, mid-stream failures and
conversations continued from Anthropic."""

from __future__ import annotations

import copy
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

MODEL = "ollama/llama3.2"
THINKER = "ollama/qwen3"
CLAUDE = "claude-sonnet-4-5"
PNG = ("data:image/png;base64,iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mP8z8BQDwAEhQGAhKmMIQ"
       "AAAABJRU5ErkJggg==")
WEATHER = {"type": "function", "name": "get_weather", "description": "Weather for a city",
           "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}}
TIME = {"type": "function", "name": "get_time", "parameters": {"type": "object", "properties": {}}}
CHAT_TOOLS = [{"type": "function", "function": {k: v for k, v in t.items() if k != "type"}} for t in (WEATHER, TIME)]
FORMAT = {"type": "json_schema", "name": "echo", "strict": True,
          "schema": {"type": "object", "properties": {"echo": {"type": "string"}}, "required": ["echo"]}}


def settings(mock_v1: str, db: Path, **extra: Any) -> Settings:
    data: dict[str, Any] = {
        "database_url": f"sqlite+aiosqlite:///{db}",
        "providers": {
            # the adapter appends /api/chat to the server root
            "ollama": {"base_url": mock_v1.removesuffix("/v1")},
            "anthropic": {"api_key": "sk-ant-test", "base_url": mock_v1},
            "openai": {"api_key": "sk-test", "base_url": mock_v1},
        },
        "timeouts": {"connect": 2, "read": 5, "total": 20},
        **extra,
    }
    return Settings.model_validate(data)


@pytest.fixture(scope="module")
def mock_v1() -> Iterator[str]:
    with running_mock() as url:
        yield url


@pytest.fixture(scope="module")
def gw(mock_v1: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    with running_gateway(settings(mock_v1, tmp_path_factory.mktemp("ollama") / "t.db")) as url:
        yield url


async def post(url: str, body: Any, headers: dict[str, str] | None = None) -> tuple[int, dict[str, str], Any]:
    async with aiohttp.ClientSession() as s, s.post(url, data=orjson.dumps(body), headers={
            "content-type": "application/json", **(headers or {})}) as r:
        return r.status, {k.lower(): v for k, v in r.headers.items()}, orjson.loads(await r.read())


async def create(gw: str, **body: Any) -> dict[str, Any]:
    status, _, data = await post(f"{gw}/v1/responses", {"model": MODEL, **body})
    assert status == 200, data
    validate_resource(data)
    return data


async def stream(gw: str, **body: Any) -> list[dict[str, Any]]:
    status, headers, raw = await post_stream(f"{gw}/v1/responses", {"model": MODEL, **body, "stream": True})
    assert status == 200, raw[:500]
    assert headers["content-type"].startswith("text/event-stream")
    events, done = parse_frames(raw)
    assert done, "stream did not end with [DONE]"
    for i, e in enumerate(events):
        assert e["sequence_number"] == i
        validate_event(e)
    return events


async def chat(gw: str, **body: Any) -> dict[str, Any]:
    status, _, data = await post(f"{gw}/v1/chat/completions", {"model": MODEL, **body})
    assert status == 200, data
    assert data["object"] == "chat.completion"
    return data


async def chat_stream(gw: str, **body: Any) -> list[dict[str, Any]]:
    status, _, raw = await post_stream(f"{gw}/v1/chat/completions", {"model": MODEL, **body, "stream": True})
    assert status == 200, raw[:500]
    chunks, done = parse_frames(raw)
    assert done
    return chunks


def text(resource: dict[str, Any]) -> str:
    return "".join(p["text"] for it in resource["output"] if it["type"] == "message"
                   for p in it["content"] if p["type"] == "output_text")


def calls(resource: dict[str, Any]) -> list[dict[str, Any]]:
    return [it for it in resource["output"] if it["type"] == "function_call"]


def user(content: Any) -> dict[str, Any]:
    return {"role": "user", "content": content}


# --------------------------------------------------------------------------------------------------
# text, instructions, multi-turn, images
# --------------------------------------------------------------------------------------------------


async def test_text(gw: str) -> None:
    data = await create(gw, input="hello there")
    assert text(data) == "echo: hello there" and data["status"] == "completed"
    tw = data["tollway"]
    assert (tw["provider"], tw["model"]) == ("ollama", "llama3.2")
    assert tw["fidelity"] == {"dropped": [], "approximated": []}
    assert data["usage"]["input_tokens"] == 2 and data["usage"]["output_tokens"] == 3

    reply = await chat(gw, messages=[{"role": "system", "content": "be nice"}, user("hello")])
    choice = reply["choices"][0]
    assert choice["message"]["content"] == "echo: hello" and choice["finish_reason"] == "stop"
    assert reply["usage"]["prompt_tokens"] == 3 and reply["tollway"]["provider"] == "ollama"


async def test_bare_model_names_need_the_prefix(gw: str) -> None:
    status, _, data = await post(f"{gw}/v1/responses", {"model": "llama3.2", "input": "x"})
    assert status == 400 and data["error"]["code"] == "model_not_found"


async def test_instructions_and_multiturn(gw: str) -> None:
    data = await create(gw, instructions="Be brief.", input=[
        {"role": "developer", "content": "You are terse."},
        user("first"),
        {"role": "assistant", "content": "echo: first"},
        user([{"type": "input_text", "text": "second"}]),
    ])
    assert text(data) == "echo: second" and data["instructions"] == "Be brief."
    assert data["usage"]["input_tokens"] == 2 + 3 + 1 + 2 + 1  # every message reached the model
    reply = await chat(gw, messages=[{"role": "developer", "content": "terse"}, user("one"),
                                     {"role": "assistant", "content": "echo: one"}, user("two")])
    assert reply["choices"][0]["message"]["content"] == "echo: two"


async def test_images(gw: str) -> None:
    data = await create(gw, input=[user([{"type": "input_text", "text": "describe"},
                                          {"type": "input_image", "image_url": PNG}])])
    assert text(data) == "echo: describe" and data["tollway"]["fidelity"]["dropped"] == []
    linked = await create(gw, input=[user([{"type": "input_text", "text": "describe"},
                                            {"type": "input_image", "image_url": "https://example.com/a.png"}])])
    assert text(linked) == "echo: describe"
    assert linked["tollway"]["fidelity"]["dropped"] == [
        "input[0].content[1] (image URL: Ollama only accepts inline base64 images)"]
    reply = await chat(gw, messages=[user([{"type": "text", "text": "describe"},
                                           {"type": "image_url", "image_url": {"url": PNG}}])])
    assert reply["choices"][0]["message"]["content"] == "echo: describe"


# --------------------------------------------------------------------------------------------------
# streaming text
# --------------------------------------------------------------------------------------------------


async def test_stream_text(gw: str) -> None:
    events = await stream(gw, input="[mock:chunks=5] stream me please")
    types = [e["type"] for e in events]
    assert types[:2] == ["response.created", "response.in_progress"] and types[-1] == "response.completed"
    deltas = [e["delta"] for e in events if e["type"] == "response.output_text.delta"]
    assert len(deltas) == 5 and "".join(deltas).startswith("echo: stream me please")
    final = events[-1]["response"]
    validate_resource(final)
    assert final["output"][0]["content"][0]["text"] == "".join(deltas)
    assert final["usage"]["output_tokens"] == 5 and final["tollway"]["provider"] == "ollama"

    chunks = await chat_stream(gw, messages=[user("[mock:chunks=4] hi there")],
                               stream_options={"include_usage": True})
    content = "".join(c["choices"][0]["delta"].get("content") or "" for c in chunks if c["choices"])
    assert content.startswith("echo: hi there")
    assert [c["choices"][0]["finish_reason"] for c in chunks if c["choices"] and c["choices"][0]["finish_reason"]] \
        == ["stop"]
    assert chunks[-1]["choices"] == [] and chunks[-1]["usage"]["completion_tokens"] == 4


async def test_stream_equals_json_answer(gw: str) -> None:
    body = {"input": "same either way", "tools": [WEATHER], "reasoning": {"effort": "low"}, "model": THINKER}
    plain = await create(gw, **body)
    final = (await stream(gw, **body))[-1]["response"]
    strip = ("id", "call_id")
    assert [{k: v for k, v in it.items() if k not in strip} for it in final["output"]] == \
        [{k: v for k, v in it.items() if k not in strip} for it in plain["output"]]
    assert final["usage"] == plain["usage"]


# --------------------------------------------------------------------------------------------------
# tools
# --------------------------------------------------------------------------------------------------


async def test_tool_call_then_result(gw: str) -> None:
    data = await create(gw, input="weather in Paris", tools=[WEATHER])
    (call,) = calls(data)
    assert call["name"] == "get_weather" and orjson.loads(call["arguments"]) == {"input": "weather in Paris"}
    assert call["call_id"].startswith("call_")  # Ollama sends no id: tollway makes one
    assert data["tollway"]["agentic"]["requires_action"] is True
    follow = await create(gw, tools=[WEATHER], input=[user("weather in Paris"), call,
                                                      {"type": "function_call_output", "call_id": call["call_id"],
                                                       "output": "sunny"}])
    assert text(follow) == "tool said: sunny"  # the mock checks the result names the called tool
    chained = await create(gw, tools=[WEATHER], previous_response_id=data["id"], input=[
        {"type": "function_call_output", "call_id": call["call_id"], "output": "rainy"}])
    assert text(chained) == "tool said: rainy"


async def test_parallel_calls_and_results(gw: str) -> None:
    data = await create(gw, input="weather and time, parallel", tools=[WEATHER, TIME])
    got = calls(data)
    assert [c["name"] for c in got] == ["get_weather", "get_time"]
    assert len({c["call_id"] for c in got}) == 2
    follow = await create(gw, tools=[WEATHER, TIME], previous_response_id=data["id"], input=[
        {"type": "function_call_output", "call_id": got[1]["call_id"], "output": "noon"},
        {"type": "function_call_output", "call_id": got[0]["call_id"], "output": "sunny"}])
    assert text(follow) == "tool said: noon; sunny"


async def test_chat_tools_round_trip(gw: str) -> None:
    msgs: list[dict[str, Any]] = [user("weather, parallel")]
    reply = await chat(gw, messages=msgs, tools=CHAT_TOOLS)
    choice = reply["choices"][0]
    assert choice["finish_reason"] == "tool_calls"
    tool_calls = choice["message"]["tool_calls"]
    assert [tc["function"]["name"] for tc in tool_calls] == ["get_weather", "get_time"]
    msgs += [choice["message"], *({"role": "tool", "tool_call_id": tc["id"], "content": out}
                                  for tc, out in zip(tool_calls, ("rainy", "late"), strict=True))]
    reply = await chat(gw, messages=msgs, tools=CHAT_TOOLS)
    assert reply["choices"][0]["message"]["content"] == "tool said: rainy; late"


@pytest.mark.parametrize(("choice", "expected", "approximated"), [
    ("auto", ["get_weather"], []),
    ("required", ["get_weather"], ["tool_choice"]),
    ({"type": "function", "name": "get_time"}, ["get_time"], ["tool_choice"]),
    ({"type": "allowed_tools", "mode": "auto", "tools": [{"type": "function", "name": "get_time"}]}, ["get_time"], []),
    ("none", [], []),
])
async def test_tool_choice(gw: str, choice: Any, expected: list[str], approximated: list[str]) -> None:
    data = await create(gw, input="what now", tools=[WEATHER, TIME], tool_choice=choice)
    assert [c["name"] for c in calls(data)] == expected
    assert data["tollway"]["fidelity"]["approximated"] == approximated
    if not expected:
        assert text(data) == "echo: what now"
    reply = await chat(gw, messages=[user("what now")], tools=CHAT_TOOLS, tool_choice=(
        {"type": "function", "function": {"name": "get_time"}} if isinstance(choice, dict) and "name" in choice
        else choice if isinstance(choice, str) else "auto"))
    names = [tc["function"]["name"] for tc in reply["choices"][0]["message"].get("tool_calls") or ()]
    assert names == (expected if not isinstance(choice, dict) or "name" in choice else ["get_weather"])


async def test_stream_tool_arguments(gw: str) -> None:
    events = await stream(gw, input="weather please", tools=[WEATHER])
    args = "".join(e["delta"] for e in events if e["type"] == "response.function_call_arguments.delta")
    done = next(e for e in events if e["type"] == "response.function_call_arguments.done")
    assert done["arguments"] == args and orjson.loads(args) == {"input": "weather please"}
    added = next(e for e in events if e["type"] == "response.output_item.added")
    assert added["item"]["type"] == "function_call" and added["item"]["call_id"].startswith("call_")
    assert events[-1]["response"]["tollway"]["agentic"]["requires_action"] is True

    chunks = await chat_stream(gw, messages=[user("weather")], tools=CHAT_TOOLS)
    deltas = [tc for c in chunks if c["choices"] for tc in c["choices"][0]["delta"].get("tool_calls") or []]
    assert deltas[0]["function"]["name"] == "get_weather" and deltas[0]["id"].startswith("call_")
    assert orjson.loads("".join(tc["function"].get("arguments") or "" for tc in deltas)) == {"input": "weather"}
    assert any(c["choices"] and c["choices"][0]["finish_reason"] == "tool_calls" for c in chunks)


# --------------------------------------------------------------------------------------------------
# reasoning
# --------------------------------------------------------------------------------------------------


async def test_reasoning_round_trip(gw: str) -> None:
    first = await create(gw, model=THINKER, input="plan it", tools=[WEATHER], reasoning={"effort": "low"})
    reasoning, call = first["output"]
    assert reasoning["type"] == "reasoning" and "encrypted_content" not in reasoning
    assert reasoning["content"] == [{"type": "reasoning_text", "text": "thinking about: plan it"}]
    assert first["tollway"]["fidelity"]["approximated"] == ["reasoning.effort"]  # a level becomes think: true
    assert first["tollway"]["agentic"]["has_reasoning"] is True
    result = {"type": "function_call_output", "call_id": call["call_id"], "output": "ok"}
    # the thinking goes back on the assistant message; the mock rejects it unless it is intact
    follow = await create(gw, model=THINKER, tools=[WEATHER], reasoning={"effort": "low"},
                          input=[user("plan it"), *first["output"], result])
    assert text(follow) == "tool said: ok"
    assert follow["output"][0]["content"][0]["text"] == "thinking about: plan it"
    chained = await create(gw, model=THINKER, tools=[WEATHER], previous_response_id=first["id"], input=[result])
    assert text(chained) == "tool said: ok"
    tampered = copy.deepcopy(first["output"])
    tampered[0]["content"][0]["text"] = "thinking about: something else"
    status, _, err = await post(f"{gw}/v1/responses", {"model": THINKER, "tools": [WEATHER],
                                                       "input": [user("plan it"), *tampered, result]})
    assert status == 400 and "thinking" in err["error"]["message"]
    validate_error(err)

    reply = await chat(gw, model=THINKER, reasoning_effort="high", messages=[user("why sky")])
    message = reply["choices"][0]["message"]
    assert message["reasoning_content"] == "thinking about: why sky" and message["content"] == "echo: why sky"


async def test_stream_reasoning(gw: str) -> None:
    events = await stream(gw, model=THINKER, input="think hard", reasoning={"effort": "medium"})
    pieces = [e["delta"] for e in events if e["type"] == "response.reasoning.delta"]
    assert "".join(pieces) == "thinking about: think hard"
    final = events[-1]["response"]
    assert [it["type"] for it in final["output"]] == ["reasoning", "message"]
    chunks = await chat_stream(gw, model=THINKER, reasoning_effort="low", messages=[user("think")])
    thinking = "".join(c["choices"][0]["delta"].get("reasoning_content") or "" for c in chunks if c["choices"])
    assert thinking == "thinking about: think"


async def test_strict_mode_refuses_the_effort_approximation(gw: str) -> None:
    body = {"model": THINKER, "input": "x", "reasoning": {"effort": "high"}}
    status, _, data = await post(f"{gw}/v1/responses", body, {"x-tollway-strict": "true"})
    assert status == 400 and data["error"]["code"] == "fidelity_strict"
    assert "reasoning.effort" in data["error"]["message"]
    gpt_oss = await create(gw, model="ollama/gpt-oss:20b", input="x", reasoning={"effort": "high"})
    assert gpt_oss["tollway"]["fidelity"]["approximated"] == []  # gpt-oss takes the level itself


# --------------------------------------------------------------------------------------------------
# structured output, usage, cost, done reasons
# --------------------------------------------------------------------------------------------------


async def test_structured_output(gw: str) -> None:
    data = await create(gw, input="hi", text={"format": FORMAT})
    assert orjson.loads(text(data)) == {"echo": "hi"} and data["text"]["format"]["name"] == "echo"
    assert data["tollway"]["fidelity"] == {"dropped": [], "approximated": []}
    reply = await chat(gw, messages=[user("hi")], response_format={
        "type": "json_schema", "json_schema": {"name": "echo", "schema": FORMAT["schema"]}})
    assert orjson.loads(reply["choices"][0]["message"]["content"]) == {"echo": "hi"}
    reply = await chat(gw, messages=[user("hi")], response_format={"type": "json_object"})
    assert orjson.loads(reply["choices"][0]["message"]["content"]) == {"echo": "hi"}


async def test_usage_and_unpriced_cost(gw: str) -> None:
    status, headers, data = await post(f"{gw}/v1/responses", {"model": THINKER, "input": "why sky",
                                                               "reasoning": {"effort": "low"}})
    assert status == 200
    usage = data["usage"]
    # eval_count covers thinking and answer; Ollama reports neither cached nor reasoning tokens apart
    assert (usage["input_tokens"], usage["output_tokens"]) == (2, 4 + 3)
    assert usage["input_tokens_details"]["cached_tokens"] == 0
    assert usage["output_tokens_details"]["reasoning_tokens"] == 0
    assert data["tollway"]["cost"]["status"] == "unpriced" and data["tollway"]["cost"]["total_usd"] is None
    assert usage["cost_usd"] is None and headers["x-tollway-cost-usd"] == "unpriced"
    reply = await chat(gw, messages=[user("a b")])
    assert reply["usage"]["cost_usd"] is None and reply["tollway"]["cost"]["status"] == "unpriced"


async def test_operator_price_makes_cost_a_real_zero(mock_v1: str, tmp_path: Path) -> None:
    priced = settings(mock_v1, tmp_path / "p.db", prices={"ollama/llama3.2": {"input": "0", "output": "0"}})
    with running_gateway(priced) as gw2:
        status, headers, data = await post(f"{gw2}/v1/responses", {"model": MODEL, "input": "one two three"})
        assert status == 200
        cost = data["tollway"]["cost"]
        assert cost["status"] == "priced" and Decimal(str(cost["total_usd"])) == 0
        assert data["usage"]["cost_usd"] == 0 and Decimal(headers["x-tollway-cost-usd"]) == 0
        reply = await chat(gw2, messages=[user("a b")])
        assert reply["usage"]["cost_usd"] == 0
        other = await create(gw2, model=THINKER, input="x")  # only the priced model is priced
        assert other["tollway"]["cost"]["status"] == "unpriced"


async def test_max_tokens_is_incomplete(gw: str) -> None:
    data = await create(gw, input="a b c d e f g h", max_output_tokens=2)
    assert data["status"] == "incomplete" and data["incomplete_details"] == {"reason": "max_output_tokens"}
    assert data["output"][0]["status"] == "incomplete"
    events = await stream(gw, input="a b c d e f g h", max_output_tokens=2)
    assert events[-1]["type"] == "response.incomplete"
    final = events[-1]["response"]
    assert final["incomplete_details"] == {"reason": "max_output_tokens"} and final["output"][0]["status"] == \
        "incomplete"
    reply = await chat(gw, messages=[user("a b c d e f")], max_tokens=2)
    assert reply["choices"][0]["finish_reason"] == "length"
    chunks = await chat_stream(gw, messages=[user("a b c d e f")], max_completion_tokens=2)
    assert [c["choices"][0]["finish_reason"] for c in chunks if c["choices"] and c["choices"][0]["finish_reason"]] \
        == ["length"]


# --------------------------------------------------------------------------------------------------
# errors
# --------------------------------------------------------------------------------------------------

# fault -> (gateway status, error type, the mock's Ollama message)
FAULTS = {
    "400": (400, "invalid_request_error", "invalid messages (mock fault)"),
    "401": (401, "authentication_error", "unauthorized"),
    "403": (403, "permission_error", "you do not have access to this model (mock)"),
    "404": (404, "not_found_error", "model not found, try pulling it first (mock)"),
    "429": (429, "rate_limit_error", "too many requests: rate limit exceeded (mock), please try again later"),
    "500": (502, "server_error", "an error was encountered while running the model"),
    "529": (503, "overloaded_error", "server busy, please try again.  maximum pending requests exceeded"),
}


@pytest.mark.parametrize("door", ["responses", "chat"])
@pytest.mark.parametrize("fault", sorted(FAULTS))
async def test_errors_map(gw: str, fault: str, door: str) -> None:
    status, etype, message = FAULTS[fault]
    if door == "responses":
        got, headers, data = await post(f"{gw}/v1/responses", {"model": MODEL, "input": f"[mock:fault={fault}] hi"})
        validate_error(data)
    else:
        got, headers, data = await post(f"{gw}/v1/chat/completions", {
            "model": MODEL, "messages": [user(f"[mock:fault={fault}] hi")]})
    assert got == status, data
    assert data["error"]["message"] == f"ollama: {message}"  # the provider's message is kept
    assert data["error"]["type"] == etype
    assert headers.get("retry-after") == ("2" if fault == "429" else None)


async def test_error_before_first_byte_of_a_stream_is_an_http_error(gw: str) -> None:
    status, headers, raw = await post_stream(f"{gw}/v1/responses", {"model": MODEL, "stream": True,
                                                                    "input": "[mock:fault=429] hi"})
    assert status == 429 and headers["retry-after"] == "2"
    assert orjson.loads(raw)["error"]["message"].startswith("ollama: too many requests")


@pytest.mark.parametrize(("fault", "fragment"), [
    ("stream_error", "an error was encountered while running the model"),
    ("disconnect", ""),
    ("malformed", "malformed stream line"),
])
async def test_mid_stream_failure(gw: str, fault: str, fragment: str) -> None:
    events = await stream(gw, input=f"[mock:fault={fault},chunks=6] hello")
    types = [e["type"] for e in events]
    assert "response.output_text.delta" in types
    assert types[-2:] == ["error", "response.failed"]
    assert fragment in events[-2]["error"]["message"]
    assert events[-1]["response"]["status"] == "failed" and events[-1]["response"]["error"]["message"]

    chunks = await chat_stream(gw, messages=[user(f"[mock:fault={fault},chunks=6] hello")])
    assert "error" in chunks[-1] and fragment in chunks[-1]["error"]["message"]


async def test_malformed_json_answer(gw: str) -> None:
    status, _, data = await post(f"{gw}/v1/responses", {"model": MODEL, "input": "[mock:fault=malformed] hi"})
    assert status == 502 and data["error"]["message"].startswith("ollama:")


# --------------------------------------------------------------------------------------------------
# conversations continued from another provider
# --------------------------------------------------------------------------------------------------


async def test_continue_an_anthropic_conversation(gw: str) -> None:
    first = await create(gw, model=CLAUDE, input="plan it", tools=[WEATHER], reasoning={"effort": "low"})
    assert first["output"][0]["encrypted_content"].startswith("tw1.anthropic.")
    call = calls(first)[0]
    result = {"type": "function_call_output", "call_id": call["call_id"], "output": "ok"}
    dropped = "input[1].reasoning.encrypted_content (state from anthropic)"

    sent_back = await create(gw, tools=[WEATHER], input=[user("plan it"), *first["output"], result])
    assert text(sent_back) == "tool said: ok"
    assert sent_back["tollway"]["fidelity"]["dropped"] == [dropped]
    assert sent_back["tollway"]["provider"] == "ollama"

    chained = await create(gw, tools=[WEATHER], previous_response_id=first["id"], input=[result])
    assert text(chained) == "tool said: ok"
    assert any("state from anthropic" in d for d in chained["tollway"]["fidelity"]["dropped"])

    # and back: Ollama's reasoning carries no state Anthropic could verify, so Anthropic drops it
    back = await create(gw, model=CLAUDE, previous_response_id=chained["id"], input="thanks")
    assert text(back) == "echo: thanks"

    reply = await chat(gw, model=CLAUDE, messages=[user("weather")], tools=CHAT_TOOLS)
    message = reply["choices"][0]["message"]
    tool_call = message["tool_calls"][0]
    follow = await chat(gw, tools=CHAT_TOOLS, messages=[
        user("weather"), message, {"role": "tool", "tool_call_id": tool_call["id"], "content": "cold"}])
    assert follow["choices"][0]["message"]["content"] == "tool said: cold"
    assert follow["tollway"]["provider"] == "ollama"

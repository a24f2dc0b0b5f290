"""The mock's Mistral wire format (``POST /mistral/v1/chat/completions``): Mistral's request checks, thinking
chunks and their round trip, 9-character tool call ids, single-chunk tool calls, usage, faults and errors."""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

import orjson
from aiohttp import web
from aiohttp.test_utils import TestClient

from tests.mock.sse import frames
from tests.mock.test_mistral_spec import check_chunk, check_response

Client = TestClient[web.Request, web.Application]
PATH = "/mistral/v1/chat/completions"
TOOLS = [
    {"type": "function", "function": {"name": "lookup", "parameters": {"type": "object"}}},
    {"function": {"name": "search", "parameters": {"type": "object"}}},
]


async def post(client: Client, body: dict[str, Any], status: int = 200, headers: dict[str, str] | None = None) -> Any:
    resp = await client.post(PATH, json=body, headers=headers)
    assert resp.status == status, await resp.text()
    data = orjson.loads(await resp.read())
    if status == 200:
        check_response(data)
    return data


async def stream(client: Client, body: dict[str, Any]) -> list[dict[str, Any]]:
    resp = await client.post(PATH, json={**body, "stream": True})
    assert resp.status == 200
    assert resp.headers["content-type"].startswith("text/event-stream")
    parsed = frames(await resp.read())
    assert parsed[-1] == (None, "[DONE]")
    chunks = []
    for event, data in parsed[:-1]:
        assert event is None
        chunk = orjson.loads(data)
        check_chunk(chunk)
        chunks.append(chunk)
    assert len({c["id"] for c in chunks}) == 1
    return chunks


def user(text: str) -> dict[str, Any]:
    return {"role": "user", "content": text}


def detail(data: dict[str, Any]) -> tuple[list[Any], str]:
    assert data["object"] == "error" and data["type"] == "invalid_request_message_error"
    entry = data["message"]["detail"][0]
    return entry["loc"], entry["msg"]


async def test_text(client: Client) -> None:
    data = await post(
        client,
        {
            "model": "mistral-small-latest",
            "messages": [
                {"role": "system", "content": "be nice"},
                {"role": "user", "content": [{"type": "text", "text": "hello"}, {"type": "text", "text": "world"}]},
            ],
        },
    )
    assert re.fullmatch(r"[0-9a-f]{32}", data["id"])
    choice = data["choices"][0]
    assert choice["message"] == {"role": "assistant", "content": "echo: hello world", "tool_calls": None}
    assert choice["finish_reason"] == "stop"
    assert data["usage"] == {
        "prompt_tokens": 4,
        "completion_tokens": 3,
        "total_tokens": 7,
        "prompt_tokens_details": {"cached_tokens": 0},
    }


async def test_openai_only_fields_are_refused(client: Client) -> None:
    for field, value in (
        ("stream_options", {"include_usage": True}),
        ("max_completion_tokens", 5),
        ("seed", 1),
        ("user", "u"),
        ("logprobs", True),
    ):
        data = await post(client, {"model": "m", "messages": [user("x")], field: value}, 422)
        assert detail(data) == (["body", field], "Extra inputs are not permitted")


async def test_temperature_above_mistral_maximum_refused(client: Client) -> None:
    data = await post(client, {"model": "m", "messages": [user("x")], "temperature": 2.0}, 422)
    assert detail(data)[0] == ["body", "temperature"]
    await post(client, {"model": "m", "messages": [user("x")], "temperature": 1.5})


async def test_developer_role_refused(client: Client) -> None:
    data = await post(client, {"model": "m", "messages": [{"role": "developer", "content": "x"}, user("y")]}, 422)
    assert detail(data)[0] == ["body", "messages", "0", "role"]


async def test_tool_call_then_results_with_nine_char_ids(client: Client) -> None:
    body: dict[str, Any] = {"model": "mistral-large-latest", "messages": [user("parallel lookups")], "tools": TOOLS}
    data = await post(client, body)
    choice = data["choices"][0]
    assert choice["finish_reason"] == "tool_calls" and choice["message"]["content"] == ""
    calls = choice["message"]["tool_calls"]
    assert [c["function"]["name"] for c in calls] == ["lookup", "search"]
    assert all(re.fullmatch(r"[A-Za-z0-9]{9}", c["id"]) for c in calls) and calls[0]["id"] != calls[1]["id"]
    assert orjson.loads(calls[0]["function"]["arguments"]) == {"input": "parallel lookups"}
    body["messages"] += [
        choice["message"],
        {"role": "tool", "tool_call_id": calls[0]["id"], "content": "one"},
        {"role": "tool", "tool_call_id": calls[1]["id"], "content": "two"},
    ]
    follow = await post(client, body)
    assert follow["choices"][0]["message"]["content"] == "tool said: one; two"


async def test_tool_call_id_rules(client: Client) -> None:
    call = {"id": "call_abc123", "function": {"name": "lookup", "arguments": "{}"}}
    msgs = [
        user("x"),
        {"role": "assistant", "content": None, "tool_calls": [call]},
        {"role": "tool", "tool_call_id": "call_abc123", "content": "r"},
    ]
    data = await post(client, {"model": "m", "messages": msgs, "tools": TOOLS}, 422)
    assert detail(data) == (
        ["body", "messages", "1", "tool_calls", "0", "id"],
        "Tool call id was call_abc123 but must be a-z, A-Z, 0-9, with a length of 9.",
    )
    call["id"] = "abcDEF123"
    msgs[2]["tool_call_id"] = "zzzzzzzzz"
    data = await post(client, {"model": "m", "messages": msgs, "tools": TOOLS}, 422)
    assert detail(data)[0] == ["body", "messages", "2", "tool_call_id"]
    msgs[2] = user("forgot the result")
    data = await post(client, {"model": "m", "messages": msgs, "tools": TOOLS}, 422)
    assert detail(data)[1] == "Not the same number of function calls and responses"


async def test_tool_choice_and_parameters(client: Client) -> None:
    named = {"type": "function", "function": {"name": "search"}}
    data = await post(client, {"model": "m", "messages": [user("x")], "tools": TOOLS, "tool_choice": named})
    assert [c["function"]["name"] for c in data["choices"][0]["message"]["tool_calls"]] == ["search"]
    data = await post(client, {"model": "m", "messages": [user("x")], "tools": TOOLS, "tool_choice": "none"})
    assert data["choices"][0]["message"]["content"] == "echo: x"
    data = await post(
        client,
        {
            "model": "m",
            "messages": [user("parallel x")],
            "tools": TOOLS,
            "tool_choice": "any",
            "parallel_tool_calls": False,
        },
    )
    assert len(data["choices"][0]["message"]["tool_calls"]) == 1
    bad = [{"type": "function", "function": {"name": "f"}}]
    data = await post(client, {"model": "m", "messages": [user("x")], "tools": bad}, 422)
    assert detail(data)[0] == ["body", "tools", "0", "function", "parameters"]


async def test_last_message_rules_and_prefix(client: Client) -> None:
    msgs = [user("write"), {"role": "assistant", "content": "Once"}]
    data = await post(client, {"model": "m", "messages": msgs}, 422)
    assert "Expected last role User or Tool" in detail(data)[1]
    msgs[1]["prefix"] = True
    data = await post(client, {"model": "m", "messages": msgs})
    assert data["choices"][0]["message"]["content"] == "echo: write"
    data = await post(client, {"model": "m", "messages": [*msgs, user("again")]}, 422)
    assert detail(data)[0] == ["body", "messages", "1", "prefix"]


async def test_magistral_reasons_and_round_trip_is_verified(client: Client) -> None:
    body: dict[str, Any] = {"model": "magistral-medium-latest", "messages": [user("[mock:chunks=2] cross it")]}
    data = await post(client, body)
    content = data["choices"][0]["message"]["content"]
    assert content == [
        {"type": "thinking", "thinking": [{"type": "text", "text": "thinking about: cross it"}]},
        {"type": "text", "text": "echo: cross it"},
    ]
    assert data["usage"]["completion_tokens"] == 7 and "completion_tokens_details" not in data["usage"]
    body["messages"] += [data["choices"][0]["message"] | {"tool_calls": None}, user("and now?")]
    follow = await post(client, body)
    assert follow["choices"][0]["message"]["content"][1]["text"] == "echo: and now?"
    tampered = orjson.loads(orjson.dumps(body))
    tampered["messages"][1]["content"][0]["thinking"][0]["text"] = "thinking about: something else"
    data = await post(client, tampered, 422)
    assert detail(data)[0] == ["body", "messages", "1", "content", "0", "thinking"]
    signed = orjson.loads(orjson.dumps(body))
    signed["messages"][1]["content"][0]["signature"] = "forged"
    data = await post(client, signed, 422)
    assert detail(data)[0] == ["body", "messages", "1", "content", "0", "signature"]


async def test_reasoning_effort_on_adjustable_models(client: Client) -> None:
    for effort, thinks in (("high", True), ("none", False), (None, False)):
        body: dict[str, Any] = {"model": "mistral-small-latest", "messages": [user("x")]}
        if effort is not None:
            body["reasoning_effort"] = effort
        content = (await post(client, body))["choices"][0]["message"]["content"]
        assert isinstance(content, list) is thinks
    data = await post(client, {"model": "m", "messages": [user("x")], "reasoning_effort": "max"}, 422)
    assert detail(data)[0] == ["body", "reasoning_effort"]


async def test_structured_output_limits_and_cache(client: Client) -> None:
    fmt = {"type": "json_schema", "json_schema": {"name": "echo", "schema": {"type": "object"}, "strict": True}}
    data = await post(client, {"model": "m", "messages": [user("hi")], "response_format": fmt})
    assert orjson.loads(data["choices"][0]["message"]["content"]) == {"echo": "hi"}
    data = await post(client, {"model": "m", "messages": [user("a b c d e")], "max_tokens": 2})
    assert data["choices"][0]["finish_reason"] == "length" and data["choices"][0]["message"]["content"] == "echo: a"
    data = await post(client, {"model": "m", "messages": [user("a b c d")], "prompt_cache_key": "k"})
    assert data["usage"]["prompt_tokens_details"]["cached_tokens"] == 2


async def test_stream_text(client: Client) -> None:
    chunks = await stream(client, {"model": "mistral-small-latest", "messages": [user("hi you")]})
    assert chunks[0]["choices"][0]["delta"] == {"role": "assistant", "content": ""}
    assert [c["choices"][0]["delta"]["content"] for c in chunks[1:-1]] == ["echo: ", "hi ", "you"]
    last = chunks[-1]
    assert last["choices"][0] == {"index": 0, "delta": {"content": ""}, "finish_reason": "stop"}
    assert last["usage"]["completion_tokens"] == 3
    assert all("usage" not in c for c in chunks[:-1])


async def test_stream_reasoning_then_text(client: Client) -> None:
    chunks = await stream(client, {"model": "magistral-small-latest", "messages": [user("[mock:chunks=2] a b c")]})
    deltas = [c["choices"][0]["delta"]["content"] for c in chunks[1:-1]]
    thinking = [d for d in deltas if isinstance(d, list)]
    assert "".join(d[0]["thinking"][0]["text"] for d in thinking) == "thinking about: a b c"
    assert "".join(d for d in deltas if isinstance(d, str)) == "echo: a b c"
    kinds = [isinstance(d, list) for d in deltas]
    assert kinds == sorted(kinds, reverse=True)  # all reasoning first


async def test_stream_tool_calls_arrive_whole_in_one_chunk(client: Client) -> None:
    chunks = await stream(client, {"model": "m", "messages": [user("parallel q")], "tools": TOOLS})
    with_calls = [c for c in chunks if c["choices"][0]["delta"].get("tool_calls")]
    assert len(with_calls) == 1
    calls = with_calls[0]["choices"][0]["delta"]["tool_calls"]
    assert [(c["index"], c["function"]["name"]) for c in calls] == [(0, "lookup"), (1, "search")]
    assert all(orjson.loads(c["function"]["arguments"]) == {"input": "parallel q"} for c in calls)
    assert chunks[-1]["choices"][0]["finish_reason"] == "tool_calls"


async def test_http_faults(client: Client) -> None:
    expected: dict[str, tuple[int, Callable[[Any], bool]]] = {
        "400": (400, lambda d: d["object"] == "error" and d["param"] == "messages"),
        "401": (401, lambda d: d["message"] == "Unauthorized"),
        "403": (403, lambda d: d["detail"].startswith("Forbidden")),
        "404": (404, lambda d: d["type"] == "invalid_model"),
        "429": (429, lambda d: "rate limit" in d["message"]),
        "500": (500, lambda d: d["type"] == "internal_server_error"),
        "529": (503, lambda d: d["type"] == "service_unavailable"),
    }
    for fault, (status, ok) in expected.items():
        resp = await client.post(PATH, json={"model": "m", "messages": [user(f"[mock:fault={fault}] x")]})
        assert resp.status == status
        assert ok(orjson.loads(await resp.read())), fault
        if fault == "429":
            assert resp.headers["retry-after"] == "2"


async def test_stream_error_and_malformed(client: Client) -> None:
    resp = await client.post(
        PATH, json={"model": "m", "stream": True, "messages": [user("[mock:fault=stream_error,chunks=4] x")]}
    )
    parsed = frames(await resp.read())
    last = orjson.loads(parsed[-1][1])
    assert last["object"] == "error" and last["type"] == "internal_server_error"
    assert 1 < len(parsed) < 7
    resp = await client.post(PATH, json={"model": "m", "messages": [user("[mock:fault=malformed] x")]})
    assert resp.status == 200
    raw = await resp.read()
    try:
        orjson.loads(raw)
    except orjson.JSONDecodeError:
        pass
    else:
        raise AssertionError("malformed body parsed")


async def test_invalid_json_body_is_422_detail(client: Client) -> None:
    resp = await client.post(PATH, data=b"{nope", headers={"content-type": "application/json"})
    assert resp.status == 422
    assert detail(orjson.loads(await resp.read()))[0] == ["body"]


async def test_openai_chat_route_is_untouched(client: Client) -> None:
    resp = await client.post(
        "/v1/chat/completions", json={"model": "m", "messages": [user("x")], "seed": 1, "stream_options": None}
    )
    assert resp.status == 200

from __future__ import annotations

from typing import Any

import orjson
from aiohttp import web
from aiohttp.test_utils import TestClient

from tests.mock.sse import frames
from tests.mock.wire_schemas import check_openai

Client = TestClient[web.Request, web.Application]
TOOLS = [
    {"type": "function", "function": {"name": "lookup", "parameters": {"type": "object"}}},
    {"type": "function", "function": {"name": "search", "parameters": {"type": "object"}}},
]


async def post(client: Client, body: dict[str, Any], status: int = 200) -> dict[str, Any]:
    resp = await client.post("/v1/chat/completions", json=body)
    assert resp.status == status, await resp.text()
    data: dict[str, Any] = orjson.loads(await resp.read())
    if status == 200:
        check_openai("CreateChatCompletionResponse", data)
    return data


async def stream(client: Client, body: dict[str, Any]) -> list[dict[str, Any]]:
    resp = await client.post("/v1/chat/completions", json={**body, "stream": True})
    assert resp.status == 200
    parsed = frames(await resp.read())
    assert parsed[-1] == (None, "[DONE]")
    chunks: list[dict[str, Any]] = []
    for event, data in parsed[:-1]:
        assert event is None
        chunk = orjson.loads(data)
        check_openai("CreateChatCompletionStreamResponse", chunk)
        chunks.append(chunk)
    assert len({c["id"] for c in chunks}) == 1
    return chunks


def msgs(*texts: str) -> list[dict[str, Any]]:
    return [{"role": "user", "content": t} for t in texts]


async def test_text_json(client: Client) -> None:
    body = {
        "model": "gpt-4o-mini",
        "messages": [
            {"role": "system", "content": "be nice"},
            {
                "role": "user",
                "content": [{"type": "text", "text": "hello"}, {"type": "text", "text": "world"}],
            },
        ],
    }
    data = await post(client, body)
    choice = data["choices"][0]
    assert choice["message"]["content"] == "echo: hello world"
    assert choice["finish_reason"] == "stop"
    assert data["object"] == "chat.completion" and data["model"] == "gpt-4o-mini"
    assert data["usage"]["prompt_tokens"] == 4 and data["usage"]["completion_tokens"] == 3
    assert data["usage"]["total_tokens"] == 7
    assert data["usage"]["prompt_tokens_details"]["cached_tokens"] == 0


async def test_stream_with_usage_chunk(client: Client) -> None:
    body = {"model": "m", "messages": msgs("hi you"), "stream_options": {"include_usage": True}}
    chunks = await stream(client, body)
    assert chunks[0]["choices"][0]["delta"] == {"role": "assistant", "content": "", "refusal": None}
    contents = [c["choices"][0]["delta"].get("content") for c in chunks[1:-2]]
    assert contents == ["echo: ", "hi ", "you"]
    assert chunks[-2]["choices"][0]["finish_reason"] == "stop"
    assert chunks[-1]["choices"] == []
    assert chunks[-1]["usage"]["completion_tokens"] == 3
    assert all(c["usage"] is None for c in chunks[:-1])


async def test_stream_without_usage(client: Client) -> None:
    chunks = await stream(client, {"model": "m", "messages": msgs("hi")})
    assert all("usage" not in c for c in chunks)
    assert chunks[-1]["choices"][0]["finish_reason"] == "stop"


async def test_tool_calls_json_and_stream(client: Client) -> None:
    body = {"model": "m", "messages": msgs("go parallel now"), "tools": TOOLS}
    data = await post(client, body)
    choice = data["choices"][0]
    assert choice["finish_reason"] == "tool_calls"
    assert choice["message"]["content"] is None
    calls = choice["message"]["tool_calls"]
    assert [c["function"]["name"] for c in calls] == ["lookup", "search"]
    assert orjson.loads(calls[0]["function"]["arguments"]) == {"input": "go parallel now"}

    chunks = await stream(client, body)
    assert chunks[0]["choices"][0]["delta"]["role"] == "assistant"
    rebuilt: dict[int, dict[str, str]] = {}
    for chunk in chunks:
        for tc in chunk["choices"][0]["delta"].get("tool_calls") or []:
            entry = rebuilt.setdefault(tc["index"], {"id": "", "name": "", "arguments": ""})
            entry["id"] += tc.get("id", "")
            entry["name"] += tc.get("function", {}).get("name", "")
            entry["arguments"] += tc.get("function", {}).get("arguments", "")
    assert [(e["id"], e["name"], e["arguments"]) for e in rebuilt.values()] == [
        (c["id"], c["function"]["name"], c["function"]["arguments"]) for c in calls
    ]
    assert chunks[-1]["choices"][0]["finish_reason"] == "tool_calls"


async def test_tool_choice_variants(client: Client) -> None:
    base = {"model": "m", "messages": msgs("parallel"), "tools": TOOLS}
    data = await post(client, {**base, "parallel_tool_calls": False})
    assert len(data["choices"][0]["message"]["tool_calls"]) == 1
    data = await post(client, {**base, "tool_choice": "none"})
    assert data["choices"][0]["message"]["content"] == "echo: parallel"
    named = {"type": "function", "function": {"name": "search"}}
    data = await post(client, {**base, "tool_choice": named})
    assert [c["function"]["name"] for c in data["choices"][0]["message"]["tool_calls"]] == ["search"]
    allowed = {
        "type": "allowed_tools",
        "allowed_tools": {"mode": "auto", "tools": [{"type": "function", "function": {"name": "search"}}]},
    }
    data = await post(client, {**base, "tool_choice": allowed})
    assert [c["function"]["name"] for c in data["choices"][0]["message"]["tool_calls"]] == ["search"]
    bad = {"type": "function", "function": {"name": "missing"}}
    err = await post(client, {**base, "tool_choice": bad}, 400)
    assert err["error"]["param"] == "tool_choice"


async def test_tool_result_answer(client: Client) -> None:
    messages = [
        {"role": "user", "content": "weather?"},
        {
            "role": "assistant",
            "content": None,
            "tool_calls": [
                {"id": "c1", "type": "function", "function": {"name": "lookup", "arguments": "{}"}},
                {"id": "c2", "type": "function", "function": {"name": "search", "arguments": "{}"}},
            ],
        },
        {"role": "tool", "tool_call_id": "c1", "content": "sunny"},
        {"role": "tool", "tool_call_id": "c2", "content": [{"type": "text", "text": "warm"}]},
    ]
    data = await post(client, {"model": "m", "messages": messages, "tools": TOOLS})
    assert data["choices"][0]["message"]["content"] == "tool said: sunny; warm"


async def test_reasoning_tokens_and_cache(client: Client) -> None:
    body = {"model": "o3", "messages": msgs("a b c d"), "reasoning_effort": "low", "prompt_cache_key": "k"}
    data = await post(client, body)
    usage = data["usage"]
    assert usage["completion_tokens_details"]["reasoning_tokens"] == 6  # "thinking about: a b c d"
    assert usage["completion_tokens"] == 6 + 5
    assert usage["prompt_tokens_details"]["cached_tokens"] == 2
    assert data["choices"][0]["message"]["content"] == "echo: a b c d"


async def test_json_schema_and_truncation(client: Client) -> None:
    fmt = {"type": "json_schema", "json_schema": {"name": "x", "schema": {"type": "object"}}}
    data = await post(client, {"model": "m", "messages": msgs("yo"), "response_format": fmt})
    assert orjson.loads(data["choices"][0]["message"]["content"]) == {"echo": "yo"}
    data = await post(client, {"model": "m", "messages": msgs("one two three"), "max_completion_tokens": 2})
    assert data["choices"][0]["finish_reason"] == "length"
    assert data["choices"][0]["message"]["content"] == "echo: one"
    data = await post(client, {"model": "m", "messages": msgs("one two three"), "max_tokens": 3})
    assert data["choices"][0]["message"]["content"] == "echo: one two"
    chunks = await stream(client, {"model": "m", "messages": msgs("one two three"), "max_tokens": 3})
    assert chunks[-1]["choices"][0]["finish_reason"] == "length"


async def test_bad_requests(client: Client) -> None:
    err = await post(client, {"model": "m"}, 400)
    assert err["error"]["param"] == "messages"
    err = await post(client, {"messages": msgs("x")}, 400)
    assert err["error"]["param"] == "model"

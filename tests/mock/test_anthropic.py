from __future__ import annotations

from typing import Any

import orjson
from aiohttp import web
from aiohttp.test_utils import TestClient

from tests.mock.sse import events
from tests.mock.wire_schemas import check_anthropic

Client = TestClient[web.Request, web.Application]
TOOLS = [
    {"name": "lookup", "input_schema": {"type": "object"}},
    {"type": "web_search_20250305", "name": "web_search"},  # a server tool: never called by the mock
    {"name": "search", "description": "s", "input_schema": {"type": "object"}},
]


async def post(client: Client, body: dict[str, Any], status: int = 200) -> dict[str, Any]:
    resp = await client.post("/v1/messages", json={"max_tokens": 1024, **body})
    assert resp.status == status, await resp.text()
    data: dict[str, Any] = orjson.loads(await resp.read())
    check_anthropic("Message" if status == 200 else "ErrorResponse", data)
    return data


async def stream(client: Client, body: dict[str, Any]) -> list[dict[str, Any]]:
    resp = await client.post("/v1/messages", json={"max_tokens": 1024, **body, "stream": True})
    assert resp.status == 200
    evs = events(await resp.read())
    for e in evs:
        if e["type"] != "ping":
            check_anthropic("RawMessageStreamEvent", e)
    return evs


def user(text: str) -> list[dict[str, Any]]:
    return [{"role": "user", "content": text}]


async def test_text_json(client: Client) -> None:
    data = await post(
        client,
        {
            "model": "claude-x",
            "system": "be kind",
            "messages": [{"role": "user", "content": [{"type": "text", "text": "hello there"}]}],
        },
    )
    assert data["content"] == [{"type": "text", "text": "echo: hello there"}]
    assert data["stop_reason"] == "end_turn" and data["model"] == "claude-x"
    assert data["usage"]["input_tokens"] == 4 and data["usage"]["output_tokens"] == 3
    assert data["usage"]["cache_read_input_tokens"] == 0


async def test_cache_control_reports_cache_read(client: Client) -> None:
    system = [{"type": "text", "text": "a b c d e f g", "cache_control": {"type": "ephemeral"}}]
    data = await post(client, {"model": "m", "system": system, "messages": user("h i j")})
    usage = data["usage"]
    assert usage["cache_read_input_tokens"] == 5  # 10 // 2
    assert usage["input_tokens"] == 5  # excluding the cache, as Anthropic reports it
    assert usage["cache_creation_input_tokens"] == 0


async def test_text_stream_event_order(client: Client) -> None:
    evs = await stream(client, {"model": "m", "messages": user("hi you")})
    assert [e["type"] for e in evs] == [
        "message_start",
        "content_block_start",
        "ping",
        "content_block_delta",
        "content_block_delta",
        "content_block_delta",
        "content_block_stop",
        "message_delta",
        "message_stop",
    ]
    assert "".join(e["delta"]["text"] for e in evs if e["type"] == "content_block_delta") == "echo: hi you"
    assert evs[0]["message"]["usage"]["input_tokens"] == 2
    assert evs[-2]["delta"]["stop_reason"] == "end_turn"
    assert evs[-2]["usage"]["output_tokens"] == 3


async def test_thinking_json_stream_and_signature_round_trip(client: Client) -> None:
    body: dict[str, Any] = {"model": "m", "thinking": {"type": "enabled", "budget_tokens": 1024}}
    data = await post(client, {**body, "messages": user("why sky")})
    thinking, text = data["content"]
    assert thinking["type"] == "thinking" and thinking["thinking"] == "thinking about: why sky"
    assert thinking["signature"].startswith("sig_")
    assert text == {"type": "text", "text": "echo: why sky"}
    assert data["usage"]["output_tokens"] == 4 + 3

    evs = await stream(client, {**body, "messages": user("why sky")})
    deltas = [e["delta"] for e in evs if e["type"] == "content_block_delta" and e["index"] == 0]
    assert [d["type"] for d in deltas] == ["thinking_delta"] * 4 + ["signature_delta"]
    assert "".join(d.get("thinking", "") for d in deltas) == "thinking about: why sky"
    assert deltas[-1]["signature"] == thinking["signature"]  # deterministic
    assert evs[1]["content_block"] == {"type": "thinking", "thinking": "", "signature": ""}

    history = [
        {"role": "user", "content": "why sky"},
        {"role": "assistant", "content": [thinking, text]},
        {"role": "user", "content": "more"},
    ]
    data = await post(client, {**body, "messages": history})
    assert data["content"][1]["text"] == "echo: more"

    bad = dict(thinking, signature="sig_" + "0" * 40)
    err = await post(
        client, {**body, "messages": [history[0], {"role": "assistant", "content": [bad]}, history[2]]}, 400
    )
    assert err["type"] == "error" and err["error"]["type"] == "invalid_request_error"
    assert "messages.1.content.0" in err["error"]["message"]
    foreign = dict(thinking, signature="EqEECkYICxgCKkAo3UA4")
    await post(
        client,
        {**body, "messages": [history[0], {"role": "assistant", "content": [foreign]}, history[2]]},
        400,
    )
    redacted = {"type": "redacted_thinking", "data": "abc"}
    await post(
        client,
        {**body, "messages": [history[0], {"role": "assistant", "content": [redacted]}, history[2]]},
        400,
    )


async def test_tool_use_json_and_stream(client: Client) -> None:
    data = await post(client, {"model": "m", "messages": user("find it"), "tools": TOOLS})
    [call] = data["content"]
    assert call["type"] == "tool_use" and call["name"] == "lookup"
    assert call["input"] == {"input": "find it"} and call["id"].startswith("toolu_")
    assert data["stop_reason"] == "tool_use"

    evs = await stream(client, {"model": "m", "messages": user("do parallel"), "tools": TOOLS})
    starts = [e["content_block"] for e in evs if e["type"] == "content_block_start"]
    assert [(s["type"], s["name"], s["input"]) for s in starts] == [
        ("tool_use", "lookup", {}),
        ("tool_use", "search", {}),
    ]
    for index in (0, 1):
        partial = "".join(
            e["delta"]["partial_json"]
            for e in evs
            if e["type"] == "content_block_delta" and e["index"] == index
        )
        assert orjson.loads(partial) == {"input": "do parallel"}
    assert evs[-2]["delta"]["stop_reason"] == "tool_use"


async def test_tool_choice_variants(client: Client) -> None:
    base = {"model": "m", "messages": user("parallel"), "tools": TOOLS}
    data = await post(client, {**base, "tool_choice": {"type": "auto", "disable_parallel_tool_use": True}})
    assert [b["name"] for b in data["content"]] == ["lookup"]
    data = await post(client, {**base, "tool_choice": {"type": "none"}})
    assert data["content"][0]["type"] == "text"
    data = await post(client, {**base, "tool_choice": {"type": "tool", "name": "search"}})
    assert [b["name"] for b in data["content"]] == ["search"]
    data = await post(client, {**base, "tool_choice": {"type": "any"}})
    assert [b["name"] for b in data["content"]] == ["lookup", "search"]
    await post(client, {**base, "tool_choice": {"type": "tool", "name": "web_search"}}, 400)


async def test_tool_result_answer(client: Client) -> None:
    messages = [
        {"role": "user", "content": "weather?"},
        {"role": "assistant", "content": [{"type": "tool_use", "id": "t1", "name": "lookup", "input": {}}]},
        {
            "role": "user",
            "content": [
                {"type": "tool_result", "tool_use_id": "t1", "content": "sunny"},
                {"type": "tool_result", "tool_use_id": "t2", "content": [{"type": "text", "text": "warm"}]},
            ],
        },
    ]
    data = await post(client, {"model": "m", "messages": messages, "tools": TOOLS})
    assert data["content"] == [{"type": "text", "text": "tool said: sunny; warm"}]


async def test_json_output_and_max_tokens(client: Client) -> None:
    fmt = {"type": "json_schema", "schema": {"type": "object"}}
    data = await post(client, {"model": "m", "messages": user("yo"), "output_format": fmt})
    assert orjson.loads(data["content"][0]["text"]) == {"echo": "yo"}
    data = await post(client, {"model": "m", "messages": user("yo"), "output_config": {"format": fmt}})
    assert orjson.loads(data["content"][0]["text"]) == {"echo": "yo"}
    data = await post(client, {"model": "m", "messages": user("one two three"), "max_tokens": 2})
    assert data["stop_reason"] == "max_tokens" and data["content"][0]["text"] == "echo: one"
    evs = await stream(client, {"model": "m", "messages": user("one two three"), "max_tokens": 2})
    assert evs[-2]["delta"]["stop_reason"] == "max_tokens" and evs[-2]["usage"]["output_tokens"] == 2


async def test_bad_requests(client: Client) -> None:
    resp = await client.post("/v1/messages", json={"model": "m", "messages": user("x")})
    assert resp.status == 400
    err = await resp.json()
    check_anthropic("ErrorResponse", err)
    assert err["error"]["message"] == "max_tokens: Field required"
    await post(client, {"messages": user("x")}, 400)
    await post(client, {"model": "m"}, 400)

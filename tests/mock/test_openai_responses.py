from __future__ import annotations

from typing import Any

import orjson
from aiohttp import web
from aiohttp.test_utils import TestClient

from tests.mock.sse import events
from tests.mock.wire_schemas import check_openai, check_responses_event

Client = TestClient[web.Request, web.Application]
TOOLS = [
    {"type": "function", "name": "lookup", "parameters": {"type": "object"}},
    {
        "type": "function",
        "name": "search",
        "description": "s",
        "parameters": {"type": "object"},
        "strict": False,
    },
]


async def post(client: Client, body: dict[str, Any], status: int = 200) -> dict[str, Any]:
    resp = await client.post("/v1/responses", json=body)
    assert resp.status == status, await resp.text()
    data: dict[str, Any] = orjson.loads(await resp.read())
    if status == 200:
        check_openai("Response", data)
    return data


async def stream(client: Client, body: dict[str, Any]) -> list[dict[str, Any]]:
    resp = await client.post("/v1/responses", json={**body, "stream": True})
    assert resp.status == 200
    assert resp.headers["Content-Type"].startswith("text/event-stream")
    evs = events(await resp.read())
    assert [e["sequence_number"] for e in evs] == list(range(len(evs)))
    for e in evs:
        check_responses_event(e)
    return evs


async def test_text_json(client: Client) -> None:
    data = await post(
        client,
        {
            "model": "gpt-x",
            "instructions": "be brief",
            "input": [
                {"role": "user", "content": "first question"},
                {"type": "message", "role": "assistant", "content": [{"type": "output_text", "text": "ok"}]},
                {"role": "user", "content": [{"type": "input_text", "text": "hello there"}]},
            ],
            "metadata": {"k": "v"},
        },
    )
    assert data["status"] == "completed" and data["model"] == "gpt-x"
    assert data["output"][0]["content"][0]["text"] == "echo: hello there"
    assert data["usage"] == {
        "input_tokens": 7,
        "input_tokens_details": {"cached_tokens": 0, "cache_write_tokens": 0},
        "output_tokens": 3,
        "output_tokens_details": {"reasoning_tokens": 0},
        "total_tokens": 10,
    }
    assert data["metadata"] == {"k": "v"} and data["instructions"] == "be brief"


async def test_string_input_and_prompt_cache_key(client: Client) -> None:
    data = await post(client, {"model": "m", "input": "a b c d e f", "prompt_cache_key": "k"})
    assert data["usage"]["input_tokens"] == 6
    assert data["usage"]["input_tokens_details"]["cached_tokens"] == 3


async def test_text_stream_event_order(client: Client) -> None:
    evs = await stream(client, {"model": "m", "input": "hi you"})
    assert [e["type"] for e in evs] == [
        "response.created",
        "response.in_progress",
        "response.output_item.added",
        "response.content_part.added",
        "response.output_text.delta",
        "response.output_text.delta",
        "response.output_text.delta",
        "response.output_text.done",
        "response.content_part.done",
        "response.output_item.done",
        "response.completed",
    ]
    deltas = [e["delta"] for e in evs if e["type"] == "response.output_text.delta"]
    assert "".join(deltas) == "echo: hi you"
    final = evs[-1]["response"]
    assert final["output"][0]["content"][0]["text"] == "echo: hi you"
    assert final["usage"]["output_tokens"] == 3
    assert evs[0]["response"]["status"] == "in_progress" and "usage" not in evs[0]["response"]
    assert len({e.get("item_id") for e in evs[2:-1] if "item_id" in e}) == 1


async def test_tool_call_json_and_stream(client: Client) -> None:
    body = {"model": "m", "input": "find cats", "tools": TOOLS}
    data = await post(client, body)
    [call] = data["output"]
    assert call["type"] == "function_call" and call["name"] == "lookup"
    assert orjson.loads(call["arguments"]) == {"input": "find cats"}
    assert call["call_id"].startswith("call_")
    assert data["tools"][1]["strict"] is False
    evs = await stream(client, body)
    types = [e["type"] for e in evs]
    assert types[2:-1] == [
        "response.output_item.added",
        "response.function_call_arguments.delta",
        "response.function_call_arguments.delta",
        "response.function_call_arguments.done",
        "response.output_item.done",
    ]
    args = "".join(e["delta"] for e in evs if e["type"] == "response.function_call_arguments.delta")
    assert args == '{"input":"find cats"}'
    assert evs[-1]["response"]["output"][0]["call_id"] == call["call_id"]  # deterministic


async def test_parallel_and_tool_choice(client: Client) -> None:
    data = await post(client, {"model": "m", "input": "run parallel please", "tools": TOOLS})
    assert [o["name"] for o in data["output"]] == ["lookup", "search"]
    assert data["output"][0]["call_id"] != data["output"][1]["call_id"]
    data = await post(
        client, {"model": "m", "input": "parallel", "tools": TOOLS, "parallel_tool_calls": False}
    )
    assert [o["name"] for o in data["output"]] == ["lookup"]
    data = await post(client, {"model": "m", "input": "x", "tools": TOOLS, "tool_choice": "none"})
    assert data["output"][0]["type"] == "message"
    named = {"type": "function", "name": "search"}
    data = await post(client, {"model": "m", "input": "parallel", "tools": TOOLS, "tool_choice": named})
    assert [o["name"] for o in data["output"]] == ["search"]
    allowed = {"type": "allowed_tools", "mode": "required", "tools": [{"type": "function", "name": "search"}]}
    data = await post(client, {"model": "m", "input": "x", "tools": TOOLS, "tool_choice": allowed})
    assert [o["name"] for o in data["output"]] == ["search"]
    err = await post(
        client,
        {"model": "m", "input": "x", "tools": TOOLS, "tool_choice": {"type": "function", "name": "nope"}},
        400,
    )
    assert err["error"]["param"] == "tool_choice"


async def test_tool_result_answer(client: Client) -> None:
    data = await post(
        client,
        {
            "model": "m",
            "tools": TOOLS,
            "input": [
                {"role": "user", "content": "weather?"},
                {
                    "type": "function_call",
                    "call_id": "c1",
                    "name": "lookup",
                    "arguments": '{"input":"weather?"}',
                },
                {"type": "function_call_output", "call_id": "c1", "output": "sunny"},
            ],
        },
    )
    assert data["output"][0]["content"][0]["text"] == "tool said: sunny"


async def test_reasoning_summary_with_state_round_trip(client: Client) -> None:
    body: dict[str, Any] = {
        "model": "m",
        "input": "why sky",
        "reasoning": {"effort": "low", "summary": "auto"},
        "include": ["reasoning.encrypted_content"],
    }
    data = await post(client, body)
    reasoning, message = data["output"]
    assert reasoning["summary"] == [{"type": "summary_text", "text": "thinking about: why sky"}]
    assert reasoning["encrypted_content"].startswith("enc_")
    assert data["usage"]["output_tokens_details"]["reasoning_tokens"] == 4
    assert data["usage"]["output_tokens"] == 4 + 3
    assert message["content"][0]["text"] == "echo: why sky"

    follow_up = [
        {"role": "user", "content": "why sky"},
        reasoning,
        message,
        {"role": "user", "content": "more"},
    ]
    data = await post(client, {**body, "input": follow_up})
    assert data["output"][1]["content"][0]["text"] == "echo: more"

    tampered = dict(reasoning, encrypted_content=reasoning["encrypted_content"][:-2] + "zz")
    err = await post(client, {**body, "input": [tampered, {"role": "user", "content": "x"}]}, 400)
    assert err["error"]["code"] == "invalid_encrypted_content"
    assert err["error"]["param"] == "input[0].encrypted_content"
    assert err["error"]["type"] == "invalid_request_error"
    foreign = dict(reasoning, encrypted_content="gAAAAABfromsomewhereelse")
    await post(client, {**body, "input": [foreign, {"role": "user", "content": "x"}]}, 400)


async def test_reasoning_stream_summary_and_raw_text(client: Client) -> None:
    body = {"model": "m", "input": "why sky", "reasoning": {"effort": "high", "summary": "detailed"}}
    evs = await stream(client, body)
    types = [e["type"] for e in evs]
    assert types[2:10] == [
        "response.output_item.added",
        "response.reasoning_summary_part.added",
        "response.reasoning_summary_text.delta",
        "response.reasoning_summary_text.delta",
        "response.reasoning_summary_text.delta",
        "response.reasoning_summary_text.delta",
        "response.reasoning_summary_text.done",
        "response.reasoning_summary_part.done",
    ]
    assert types[10] == "response.output_item.done"
    assert "encrypted_content" not in evs[10]["item"]  # include not requested
    assert evs[11]["output_index"] == 1

    evs = await stream(client, {"model": "m", "input": "why", "reasoning": {"effort": "low"}})
    raw = [e for e in evs if e["type"] == "response.reasoning_text.delta"]
    assert "".join(e["delta"] for e in raw) == "thinking about: why"
    done = next(e for e in evs if e["type"] == "response.output_item.done")
    assert done["item"]["content"] == [{"type": "reasoning_text", "text": "thinking about: why"}]
    assert done["item"]["summary"] == []


async def test_reasoning_effort_none_means_no_reasoning(client: Client) -> None:
    data = await post(client, {"model": "m", "input": "x", "reasoning": {"effort": "none"}})
    assert [o["type"] for o in data["output"]] == ["message"]


async def test_json_schema_output(client: Client) -> None:
    fmt = {"type": "json_schema", "name": "e", "schema": {"type": "object"}, "strict": True}
    data = await post(client, {"model": "m", "input": "say hi", "text": {"format": fmt}})
    assert orjson.loads(data["output"][0]["content"][0]["text"]) == {"echo": "say hi"}
    assert data["text"]["format"] == fmt


async def test_truncation_incomplete(client: Client) -> None:
    body = {"model": "m", "input": "one two three four", "max_output_tokens": 2}
    data = await post(client, body)
    assert data["status"] == "incomplete"
    assert data["incomplete_details"] == {"reason": "max_output_tokens"}
    assert data["output"][0]["status"] == "incomplete"
    assert data["output"][0]["content"][0]["text"] == "echo: one"
    assert data["usage"]["output_tokens"] == 2
    evs = await stream(client, body)
    assert evs[-1]["type"] == "response.incomplete"
    assert evs[-1]["response"]["incomplete_details"] == {"reason": "max_output_tokens"}


async def test_bad_requests(client: Client) -> None:
    err = await post(client, {"input": "x"}, 400)
    assert err["error"]["param"] == "model"
    err = await post(client, {"model": "m", "input": 5}, 400)
    assert err["error"]["param"] == "input"
    resp = await client.post("/v1/responses", data=b"{nope", headers={"Content-Type": "application/json"})
    assert resp.status == 400
    assert (await resp.json())["error"]["type"] == "invalid_request_error"

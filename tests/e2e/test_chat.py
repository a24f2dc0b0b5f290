"""End to end: /v1/chat/completions over the canonical pipeline, every upstream kind."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import aiohttp
import orjson
import pytest

from tests.e2e.sse import parse_frames, post_stream

TOOLS = [{"type": "function", "function": {"name": "get_weather", "parameters": {
    "type": "object", "properties": {"city": {"type": "string"}}}}}]


async def chat(gateway: str, **body: Any) -> tuple[int, Any]:
    async with aiohttp.ClientSession() as s, s.post(f"{gateway}/v1/chat/completions", json=body) as r:
        return r.status, orjson.loads(await r.read())


@pytest.mark.parametrize("model", ["gpt-4o-mini", "claude-sonnet-4-5", "chatty"])
async def test_chat_text(gateway: str, model: str) -> None:
    status, data = await chat(gateway, model=model, messages=[
        {"role": "system", "content": "be nice"}, {"role": "user", "content": "hello"}])
    assert status == 200, data
    assert data["object"] == "chat.completion"
    assert data["choices"][0]["message"]["content"] == "echo: hello"
    assert data["choices"][0]["finish_reason"] == "stop"
    assert data["usage"]["prompt_tokens"] >= 1
    assert "prompt_tokens_details" in data["usage"] and "completion_tokens_details" in data["usage"]
    assert data["tollway"]["provider"] in ("openai", "anthropic", "compat")


@pytest.mark.parametrize("model", ["gpt-4o-mini", "claude-sonnet-4-5", "chatty"])
async def test_chat_tools_round_trip(gateway: str, model: str) -> None:
    msgs: list[dict[str, Any]] = [{"role": "user", "content": "weather?"}]
    status, data = await chat(gateway, model=model, messages=msgs, tools=TOOLS)
    assert status == 200, data
    choice = data["choices"][0]
    assert choice["finish_reason"] == "tool_calls"
    call = choice["message"]["tool_calls"][0]
    assert call["function"]["name"] == "get_weather"
    msgs += [choice["message"], {"role": "tool", "tool_call_id": call["id"], "content": "rainy"}]
    status, data = await chat(gateway, model=model, messages=msgs, tools=TOOLS)
    assert status == 200, data
    assert data["choices"][0]["message"]["content"] == "tool said: rainy"


async def test_chat_n_greater_than_one_rejected(gateway: str) -> None:
    status, data = await chat(gateway, model="gpt-4o-mini", n=2, messages=[{"role": "user", "content": "x"}])
    assert status == 400 and data["error"]["param"] == "n"


@pytest.mark.parametrize("model", ["gpt-4o-mini", "claude-sonnet-4-5", "chatty"])
async def test_chat_stream_with_usage(gateway: str, model: str) -> None:
    status, _, raw = await post_stream(f"{gateway}/v1/chat/completions", {
        "model": model, "stream": True, "stream_options": {"include_usage": True},
        "messages": [{"role": "user", "content": "[mock:chunks=4] hi there"}]})
    assert status == 200, raw[:300]
    chunks, done = parse_frames(raw)
    assert done
    text = "".join(c["choices"][0]["delta"].get("content") or "" for c in chunks if c["choices"])
    assert text.startswith("echo: hi there")
    finishes = [c["choices"][0]["finish_reason"] for c in chunks if c["choices"] and c["choices"][0]["finish_reason"]]
    assert finishes == ["stop"]
    usage_chunk = chunks[-1]
    assert usage_chunk["choices"] == [] and usage_chunk["usage"]["completion_tokens"] > 0
    assert "tollway" in usage_chunk


async def test_chat_stream_tool_calls(gateway: str) -> None:
    status, _, raw = await post_stream(f"{gateway}/v1/chat/completions", {
        "model": "claude-sonnet-4-5", "stream": True, "tools": TOOLS,
        "messages": [{"role": "user", "content": "weather"}]})
    assert status == 200
    chunks, done = parse_frames(raw)
    assert done
    calls = [tc for c in chunks if c["choices"] for tc in c["choices"][0]["delta"].get("tool_calls") or []]
    assert calls[0]["function"]["name"] == "get_weather" and calls[0]["id"]
    args = "".join(tc["function"].get("arguments") or "" for tc in calls)
    assert orjson.loads(args)
    assert any(c["choices"] and c["choices"][0]["finish_reason"] == "tool_calls" for c in chunks)


async def test_chat_cost_matches_header(gateway: str) -> None:
    async with aiohttp.ClientSession() as s, s.post(f"{gateway}/v1/chat/completions", json={
            "model": "gpt-4o-mini", "messages": [{"role": "user", "content": "a b c"}]}) as r:
        data = await r.json(loads=lambda b: __import__("json").loads(b, parse_float=Decimal))
        assert Decimal(r.headers["x-tollway-cost-usd"]) == data["usage"]["cost_usd"]
        assert data["tollway"]["cost"]["total_usd"] == data["usage"]["cost_usd"]

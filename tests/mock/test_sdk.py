"""The official SDKs parse the mock's JSON and streams (over real TCP)."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from typing import Any

import anthropic
import openai
import pytest
from anthropic import AsyncAnthropic
from openai import AsyncOpenAI

from tollway.mock import MockDefaults, bound_port, start

RESPONSES_TOOL: Any = {
    "type": "function",
    "name": "lookup",
    "parameters": {"type": "object"},
    "strict": False,
}
CHAT_TOOL: Any = {
    "type": "function",
    "function": {
        "name": "lookup",
        "strict": True,
        "parameters": {
            "type": "object",
            "properties": {"input": {"type": "string"}},
            "required": ["input"],
            "additionalProperties": False,
        },
    },
}


@pytest.fixture
async def base_url() -> AsyncIterator[str]:
    runner = await start("127.0.0.1", 0, MockDefaults())
    try:
        yield f"http://127.0.0.1:{bound_port(runner)}"
    finally:
        await runner.cleanup()


@pytest.fixture
async def oai(base_url: str) -> AsyncIterator[AsyncOpenAI]:
    async with AsyncOpenAI(base_url=base_url + "/v1", api_key="x", max_retries=0) as client:
        yield client


@pytest.fixture
async def ant(base_url: str) -> AsyncIterator[AsyncAnthropic]:
    async with AsyncAnthropic(base_url=base_url, api_key="x", max_retries=0) as client:
        yield client


async def test_openai_responses_create(oai: AsyncOpenAI) -> None:
    resp = await oai.responses.create(
        model="mock",
        input="hello there",
        reasoning={"effort": "low", "summary": "auto"},
        include=["reasoning.encrypted_content"],
    )
    assert resp.output_text == "echo: hello there"
    assert resp.usage is not None and resp.usage.output_tokens_details.reasoning_tokens == 4
    reasoning = resp.output[0]
    assert reasoning.type == "reasoning" and reasoning.encrypted_content is not None

    # the reasoning item goes back as input: the state is verified
    follow_up: Any = [reasoning.model_dump(exclude_none=True), {"role": "user", "content": "next"}]
    again = await oai.responses.create(
        model="mock",
        input=follow_up,
        reasoning={"effort": "low"},
    )
    assert again.output_text == "echo: next"

    tool = await oai.responses.create(model="mock", input="find", tools=[RESPONSES_TOOL])
    call = tool.output[0]
    assert call.type == "function_call" and json.loads(call.arguments) == {"input": "find"}


async def test_openai_responses_stream(oai: AsyncOpenAI) -> None:
    stream = await oai.responses.create(model="mock", input="stream me [mock:chunks=5]", stream=True)
    types: list[str] = []
    text = ""
    async for event in stream:
        types.append(event.type)
        if event.type == "response.output_text.delta":
            text += event.delta
    assert types[0] == "response.created" and types[-1] == "response.completed"
    assert types.count("response.output_text.delta") == 5
    assert text.startswith("echo: stream me")

    async with oai.responses.stream(
        model="mock",
        input="use tool",
        tools=[RESPONSES_TOOL],
        reasoning={"effort": "low", "summary": "auto"},
    ) as helper:
        async for _ in helper:
            pass
        final = await helper.get_final_response()
    assert [o.type for o in final.output] == ["reasoning", "function_call"]


async def test_openai_chat(oai: AsyncOpenAI) -> None:
    completion = await oai.chat.completions.create(model="mock", messages=[{"role": "user", "content": "hi"}])
    assert completion.choices[0].message.content == "echo: hi"

    stream = await oai.chat.completions.create(
        model="mock",
        messages=[{"role": "user", "content": "a b c"}],
        stream=True,
        stream_options={"include_usage": True},
    )
    pieces: list[str] = []
    usage = None
    async for chunk in stream:
        if chunk.choices and chunk.choices[0].delta.content:
            pieces.append(chunk.choices[0].delta.content)
        usage = chunk.usage or usage
    assert "".join(pieces) == "echo: a b c"
    assert usage is not None and usage.completion_tokens == 4

    async with oai.chat.completions.stream(
        model="mock",
        messages=[{"role": "user", "content": "tool time"}],
        tools=[CHAT_TOOL],
    ) as helper:
        async for _ in helper:
            pass
        final = await helper.get_final_completion()
    calls = final.choices[0].message.tool_calls
    assert calls is not None and calls[0].function.name == "lookup"
    assert json.loads(calls[0].function.arguments) == {"input": "tool time"}
    assert calls[0].function.parsed_arguments == {"input": "tool time"}


async def test_openai_errors(oai: AsyncOpenAI) -> None:
    with pytest.raises(openai.RateLimitError):
        await oai.chat.completions.create(
            model="mock", messages=[{"role": "user", "content": "[mock:fault=429]"}]
        )
    with pytest.raises(openai.BadRequestError) as info:
        await oai.responses.create(model="mock", input="[mock:fault=400]")
    assert info.value.param == "input"
    stream = await oai.chat.completions.create(
        model="mock", messages=[{"role": "user", "content": "x [mock:fault=stream_error]"}], stream=True
    )
    with pytest.raises(openai.APIError):
        async for _ in stream:
            pass


async def test_anthropic_messages(ant: AsyncAnthropic) -> None:
    message = await ant.messages.create(
        model="mock",
        max_tokens=1024,
        messages=[{"role": "user", "content": "hello"}],
        thinking={"type": "enabled", "budget_tokens": 512},
    )
    assert [b.type for b in message.content] == ["thinking", "text"]
    assert message.content[1].model_dump()["text"] == "echo: hello"

    blocks: Any = [b.model_dump() for b in message.content]
    follow_up = await ant.messages.create(
        model="mock",
        max_tokens=1024,
        thinking={"type": "enabled", "budget_tokens": 512},
        messages=[
            {"role": "user", "content": "hello"},
            {"role": "assistant", "content": blocks},
            {"role": "user", "content": "again"},
        ],
    )
    assert follow_up.content[1].model_dump()["text"] == "echo: again"


async def test_anthropic_stream_helper(ant: AsyncAnthropic) -> None:
    async with ant.messages.stream(
        model="mock",
        max_tokens=1024,
        messages=[{"role": "user", "content": "call it"}],
        thinking={"type": "enabled", "budget_tokens": 512},
        tools=[{"name": "lookup", "input_schema": {"type": "object"}}],
    ) as stream:
        async for _ in stream:
            pass
        final = await stream.get_final_message()
    assert [b.type for b in final.content] == ["thinking", "tool_use"]
    assert final.content[0].model_dump()["signature"].startswith("sig_")
    assert final.content[1].model_dump()["input"] == {"input": "call it"}
    assert final.stop_reason == "tool_use"

    async with ant.messages.stream(
        model="mock", max_tokens=1024, messages=[{"role": "user", "content": "one two [mock:chunks=4]"}]
    ) as stream:
        text = await stream.get_final_text()
    assert text == "echo: one two lorem"


async def test_anthropic_errors(ant: AsyncAnthropic) -> None:
    with pytest.raises(anthropic.APIStatusError) as info:
        await ant.messages.create(
            model="mock", max_tokens=10, messages=[{"role": "user", "content": "[mock:fault=529]"}]
        )
    assert info.value.status_code == 529
    with pytest.raises(anthropic.BadRequestError):
        await ant.messages.create(
            model="mock",
            max_tokens=10,
            messages=[
                {"role": "user", "content": "q"},
                {
                    "role": "assistant",
                    "content": [{"type": "thinking", "thinking": "t", "signature": "forged"}],
                },
                {"role": "user", "content": "r"},
            ],
        )
    with pytest.raises(anthropic.APIStatusError):
        async with ant.messages.stream(
            model="mock",
            max_tokens=100,
            messages=[{"role": "user", "content": "x y z [mock:fault=stream_error]"}],
        ) as stream:
            async for _ in stream:
                pass

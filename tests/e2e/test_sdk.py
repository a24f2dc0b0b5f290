"""The official openai SDK as the client, unchanged except base_url."""

from __future__ import annotations

import openai
import pytest


@pytest.fixture
def client(gateway: str) -> openai.AsyncOpenAI:
    return openai.AsyncOpenAI(base_url=f"{gateway}/v1", api_key="unused", max_retries=0)


async def test_responses_create(client: openai.AsyncOpenAI) -> None:
    r = await client.responses.create(model="claude-sonnet-4-5", input="hello sdk")
    assert r.output_text == "echo: hello sdk"
    assert r.usage is not None and r.usage.input_tokens >= 1


async def test_responses_stream(client: openai.AsyncOpenAI) -> None:
    async with client.responses.stream(model="gpt-4o-mini", input="[mock:chunks=3] streamed sdk") as stream:
        deltas = [e.delta async for e in stream if e.type == "response.output_text.delta"]
        final = await stream.get_final_response()
    assert len(deltas) == 3
    assert final.output_text == "".join(deltas)


async def test_responses_stream_tool_call(client: openai.AsyncOpenAI) -> None:
    tools = [{"type": "function", "name": "lookup", "parameters": {"type": "object", "properties": {}},
              "strict": False}]
    async with client.responses.stream(model="claude-sonnet-4-5", input="find", tools=tools) as stream:
        final = await stream.get_final_response()
    assert final.output[-1].type == "function_call"


async def test_chat_completions_create_and_stream(client: openai.AsyncOpenAI) -> None:
    c = await client.chat.completions.create(model="chatty", messages=[{"role": "user", "content": "yo"}])
    assert c.choices[0].message.content == "echo: yo"
    stream = await client.chat.completions.create(
        model="claude-sonnet-4-5", messages=[{"role": "user", "content": "[mock:chunks=3] hey"}], stream=True,
        stream_options={"include_usage": True})
    text = ""
    usage = None
    async for chunk in stream:
        if chunk.choices:
            text += chunk.choices[0].delta.content or ""
        if chunk.usage:
            usage = chunk.usage
    assert text.startswith("echo: hey") and usage is not None


async def test_sdk_error_types(client: openai.AsyncOpenAI) -> None:
    with pytest.raises(openai.BadRequestError) as exc:
        await client.responses.create(model="no-such-model", input="x")
    assert exc.value.code == "model_not_found"
    with pytest.raises(openai.RateLimitError):
        await client.responses.create(model="gpt-4o-mini", input="[mock:fault=429] x")
    with pytest.raises(openai.NotFoundError):
        await client.responses.retrieve("resp_missing")

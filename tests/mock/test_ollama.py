"""The mock's Ollama wire format (``POST /api/chat``): answers and NDJSON streams checked against Ollama's own
OpenAPI document (../shared/specs/providers/ollama/ollama/docs/openapi.yaml), scripted behaviours, faults in
Ollama's error shape, and the checks that prove a client's tool-name and thinking round trip."""

from __future__ import annotations

import time
from functools import cache
from pathlib import Path
from typing import Any

import aiohttp
import orjson
import pytest
import yaml
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer
from jsonschema import Draft202012Validator  # type: ignore[import-untyped]
from referencing import Registry, Resource
from referencing.jsonschema import DRAFT202012

from tollway.mock import MockDefaults, create_app

Client = TestClient[web.Request, web.Application]
OPENAPI = Path(__file__).resolve().parents[2].parent / "shared" / "specs" / "providers" / "ollama" / "ollama" / \
    "docs" / "openapi.yaml"
PNG = "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mP8z8BQDwAEhQGAhKmMIQAAAABJRU5ErkJggg=="
TOOLS = [{"type": "function", "function": {"name": name, "parameters": {"type": "object"}}}
         for name in ("get_weather", "get_time")]


@cache
def _validator(name: str) -> Draft202012Validator:
    doc = yaml.load(OPENAPI.read_text(), Loader=yaml.CSafeLoader)
    resource: Resource[Any] = Resource.from_contents(doc, default_specification=DRAFT202012)
    registry: Registry[Any] = Registry().with_resource("urn:ollama", resource)
    return Draft202012Validator({"$ref": f"urn:ollama#/components/schemas/{name}"}, registry=registry)


def check(name: str, value: Any) -> None:
    errors = list(_validator(name).iter_errors(value))
    assert not errors, [e.message for e in errors]


def user(text: str, **extra: Any) -> dict[str, Any]:
    return {"role": "user", "content": text, **extra}


async def post(client: Client, body: dict[str, Any], status: int = 200, **kw: Any) -> dict[str, Any]:
    resp = await client.post("/api/chat", json={"model": "llama3.2", "stream": False, **body}, **kw)
    assert resp.status == status, await resp.text()
    assert resp.headers["content-type"].startswith("application/json")
    data: dict[str, Any] = orjson.loads(await resp.read())
    if status == 200:
        check("ChatResponse", data)
        assert set(data) >= {"model", "created_at", "message", "done", "done_reason", "prompt_eval_count",
                             "eval_count"}
    else:
        assert list(data) == ["error"] and isinstance(data["error"], str)
    return data


async def stream(client: Client, body: dict[str, Any], **kw: Any) -> list[dict[str, Any]]:
    resp = await client.post("/api/chat", json={"model": "llama3.2", **body}, **kw)
    assert resp.status == 200
    assert resp.headers["content-type"] == "application/x-ndjson"
    raw = await resp.read()
    assert raw.endswith(b"\n")
    lines = [orjson.loads(line) for line in raw.split(b"\n")[:-1]]
    for line in lines[:-1]:
        check("ChatStreamEvent", line)
        assert line["done"] is False
    assert lines[-1]["done"] is True
    return lines


@pytest.fixture
async def client() -> Any:
    async with TestClient(TestServer(create_app(MockDefaults()))) as c:
        yield c


async def test_text_answer(client: Client) -> None:
    data = await post(client, {"messages": [{"role": "system", "content": "be kind"}, user("hello there")]})
    assert data["message"] == {"role": "assistant", "content": "echo: hello there"}
    assert data["done"] is True and data["done_reason"] == "stop" and data["model"] == "llama3.2"
    assert (data["prompt_eval_count"], data["eval_count"]) == (4, 3)


async def test_streams_by_default(client: Client) -> None:
    lines = await stream(client, {"messages": [user("hi you")]})  # no "stream": Ollama's default is true
    assert [line["message"]["content"] for line in lines] == ["echo: ", "hi ", "you", ""]
    final = lines[-1]
    assert final["done_reason"] == "stop" and final["eval_count"] == 3 and final["prompt_eval_count"] == 2
    check("ChatResponse", final)


async def test_chunks_and_delay(client: Client) -> None:
    started = time.monotonic()
    lines = await stream(client, {"messages": [user("x")], "stream": True},
                         headers={"x-mock-scenario": "chunks=6,delay_ms=20"})
    assert len([line for line in lines if line["message"]["content"]]) == 6
    assert time.monotonic() - started >= 0.1


async def test_thinking(client: Client) -> None:
    data = await post(client, {"messages": [user("why sky")], "think": True})
    assert data["message"]["thinking"] == "thinking about: why sky"
    assert data["message"]["content"] == "echo: why sky" and data["eval_count"] == 4 + 3
    lines = await stream(client, {"messages": [user("why sky")], "think": "high", "stream": True})
    assert "".join(line["message"].get("thinking", "") for line in lines) == "thinking about: why sky"
    thinking_lines = [i for i, line in enumerate(lines) if line["message"].get("thinking")]
    text_lines = [i for i, line in enumerate(lines) if line["message"]["content"]]
    assert max(thinking_lines) < min(text_lines)
    data = await post(client, {"messages": [user("why sky")], "think": False})
    assert "thinking" not in data["message"]


async def test_tool_calls_whole_and_parallel(client: Client) -> None:
    data = await post(client, {"messages": [user("weather parallel")], "tools": TOOLS})
    assert data["message"] == {"role": "assistant", "content": "", "tool_calls": [
        {"function": {"name": "get_weather", "arguments": {"input": "weather parallel"}}},
        {"function": {"name": "get_time", "arguments": {"input": "weather parallel"}}}]}
    lines = await stream(client, {"messages": [user("weather please")], "tools": TOOLS, "stream": True})
    assert [line["message"].get("tool_calls") for line in lines] == [
        [{"function": {"name": "get_weather", "arguments": {"input": "weather please"}}}], None]


async def test_tool_results_by_name(client: Client) -> None:
    history = [
        user("weather parallel"),
        {"role": "assistant", "content": "", "tool_calls": [
            {"function": {"name": "get_weather", "arguments": {"city": "Paris"}}},
            {"function": {"name": "get_time", "arguments": {}}}]},
        {"role": "tool", "tool_name": "get_weather", "content": "sunny"},
        {"role": "tool", "tool_name": "get_time", "content": "noon"},
    ]
    data = await post(client, {"messages": history, "tools": TOOLS})
    assert data["message"]["content"] == "tool said: sunny; noon"
    bad = [*history[:2], {"role": "tool", "tool_name": "get_stock", "content": "x"}]
    err = await post(client, {"messages": bad}, 400)
    assert "messages[2].tool_name" in err["error"]
    unnamed = [*history[:2], {"role": "tool", "content": "x"}]
    await post(client, {"messages": unnamed}, 400)


async def test_arguments_must_be_objects(client: Client) -> None:
    history = [user("x"), {"role": "assistant", "content": "", "tool_calls": [
        {"function": {"name": "get_weather", "arguments": '{"city":"Paris"}'}}]}]
    err = await post(client, {"messages": history}, 400)
    assert "cannot unmarshal str" in err["error"]


async def test_thinking_must_come_back_intact(client: Client) -> None:
    first = await post(client, {"messages": [user("plan it [mock:chunks=2]")], "think": True})
    thinking = first["message"]["thinking"]
    assert thinking == "thinking about: plan it"  # directives are not part of the reasoning
    turn = [user("plan it [mock:chunks=2]"), {"role": "assistant", "content": "echo: plan it", "thinking": thinking},
            user("go on")]
    data = await post(client, {"messages": turn, "think": True})
    assert data["message"]["content"] == "echo: go on"
    turn[1] = {**turn[1], "thinking": "thinking about: something else"}
    err = await post(client, {"messages": turn}, 400)
    assert "messages[1].thinking" in err["error"]


async def test_json_format_and_length(client: Client) -> None:
    data = await post(client, {"messages": [user("hi")], "format": {"type": "object"}})
    assert orjson.loads(data["message"]["content"]) == {"echo": "hi"}
    data = await post(client, {"messages": [user("hi")], "format": "json"})
    assert orjson.loads(data["message"]["content"]) == {"echo": "hi"}
    data = await post(client, {"messages": [user("a b c d e f")], "options": {"num_predict": 2}})
    assert data["done_reason"] == "length" and data["message"]["content"] == "echo: a"
    lines = await stream(client, {"messages": [user("a b c d e f")], "options": {"num_predict": 2},
                                  "stream": True})
    assert lines[-1]["done_reason"] == "length"


async def test_images(client: Client) -> None:
    data = await post(client, {"messages": [user("describe", images=[PNG])]})
    assert data["message"]["content"] == "echo: describe"
    err = await post(client, {"messages": [user("describe", images=[f"data:image/png;base64,{PNG}"])]}, 400)
    assert "base64" in err["error"]
    await post(client, {"messages": [user("describe", images=["not base64!"])]}, 400)


@pytest.mark.parametrize(("body", "fragment"), [
    ({"model": ""}, "model is required"),
    ({"messages": []}, "messages is required"),
    ({"messages": [{"role": "user", "content": [{"type": "text", "text": "x"}]}]}, "cannot unmarshal list"),
    ({"messages": [{"role": "developer", "content": "x"}]}, "invalid role"),
    ({"messages": [user("x")], "think": "extreme"}, "invalid think value"),
    ({"messages": [user("x")], "format": 3}, "invalid format"),
])
async def test_invalid_requests(client: Client, body: dict[str, Any], fragment: str) -> None:
    err = await post(client, body, 400)
    assert fragment in err["error"]


# fault -> (status, message fragment)
FAULTS = {
    "400": (400, "invalid messages (mock fault)"),
    "401": (401, "unauthorized"),
    "403": (403, "do not have access"),
    "404": (404, "model not found"),
    "429": (429, "rate limit"),
    "500": (500, "an error was encountered"),
    "529": (503, "server busy"),
}


@pytest.mark.parametrize("stream_", [False, True])
@pytest.mark.parametrize("fault", sorted(FAULTS))
async def test_http_faults(client: Client, fault: str, stream_: bool) -> None:
    status, fragment = FAULTS[fault]
    resp = await client.post("/api/chat", json={"model": "m", "stream": stream_,
                                                "messages": [user(f"hi [mock:fault={fault}]")]})
    assert resp.status == status
    body = orjson.loads(await resp.read())
    assert list(body) == ["error"] and fragment in body["error"]
    assert resp.headers.get("retry-after") == ("2" if fault == "429" else None)


async def test_stream_error_line(client: Client) -> None:
    resp = await client.post("/api/chat", json={"model": "m", "messages": [user("x")]},
                             headers={"x-mock-scenario": "fault=stream_error,chunks=6"})
    lines = [orjson.loads(line) for line in (await resp.read()).splitlines()]
    assert [line["message"]["content"] for line in lines[:-1]] != []
    assert len(lines) == 4 and lines[-1] == {"error": "an error was encountered while running the model"}
    resp = await client.post("/api/chat", json={"model": "m", "stream": False,
                                                "messages": [user("x [mock:fault=stream_error]")]})
    assert resp.status == 500


async def test_malformed_and_disconnect(client: Client) -> None:
    resp = await client.post("/api/chat", json={"model": "m", "stream": False,
                                                "messages": [user("x [mock:fault=malformed]")]})
    with pytest.raises(orjson.JSONDecodeError):
        orjson.loads(await resp.read())
    resp = await client.post("/api/chat", json={"model": "m", "messages": [user("x y z [mock:fault=malformed]")]})
    last = (await resp.read()).splitlines()[-1]
    with pytest.raises(orjson.JSONDecodeError):
        orjson.loads(last)
    async with client.post("/api/chat", json={"model": "m", "messages": [user("x")]},
                           headers={"x-mock-scenario": "fault=disconnect,chunks=8"}) as resp:
        got = b""
        with pytest.raises(aiohttp.ClientPayloadError):
            while chunk := await resp.content.readany():
                got += chunk
    lines = [orjson.loads(line) for line in got.splitlines()]
    assert len(lines) == 4 and not any(line["done"] for line in lines)

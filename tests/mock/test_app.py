from __future__ import annotations

import asyncio
import contextlib
import socket
import time
from typing import Any

import aiohttp
import orjson
import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer

from tests.mock.sse import events, frames
from tests.mock.wire_schemas import check_anthropic, check_openai
from tollway.mock import MockDefaults, bound_port, create_app, start
from tollway.mock.app import run

Client = TestClient[web.Request, web.Application]
ROUTES = ["responses", "chat", "anthropic"]
PATHS = {"responses": "/v1/responses", "chat": "/v1/chat/completions", "anthropic": "/v1/messages"}


def body_for(route: str, text: str, **extra: Any) -> dict[str, Any]:
    if route == "responses":
        return {"model": "m", "input": [{"role": "user", "content": text}], **extra}
    body = {"model": "m", "messages": [{"role": "user", "content": text}], **extra}
    if route == "anthropic":
        body.setdefault("max_tokens", 4096)
    return body


def text_deltas(route: str, body: bytes) -> list[str]:
    """The text deltas of a complete stream in the route's format."""
    if route == "responses":
        return [e["delta"] for e in events(body) if e["type"] == "response.output_text.delta"]
    if route == "anthropic":
        return [
            e["delta"]["text"]
            for e in events(body)
            if e["type"] == "content_block_delta" and e["delta"]["type"] == "text_delta"
        ]
    out: list[str] = []
    for _, data in frames(body):
        if data != "[DONE]":
            content = orjson.loads(data)["choices"][0]["delta"].get("content") if "choices" in data else None
            if content:
                out.append(content)
    return out


def check_error(route: str, status: int, body: dict[str, Any]) -> dict[str, Any]:
    """Schema-checks an error body; returns ``{"type", "message", ...}`` of its error object."""
    if route == "anthropic":
        check_anthropic("ErrorResponse", body)
        assert body["type"] == "error" and body["request_id"].startswith("req_")
    else:
        check_openai("ErrorResponse", body)
    error: dict[str, Any] = body["error"]
    return error


HTTP_FAULTS = {
    # fault: (openai status, openai type, openai code, anthropic status, anthropic type)
    "429": (429, "requests", "rate_limit_exceeded", 429, "rate_limit_error"),
    "500": (500, "server_error", None, 500, "api_error"),
    "529": (503, "server_error", None, 529, "overloaded_error"),
    "400": (400, "invalid_request_error", "invalid_value", 400, "invalid_request_error"),
    "401": (401, "invalid_request_error", "invalid_api_key", 401, "authentication_error"),
}


@pytest.mark.parametrize("route", ROUTES)
@pytest.mark.parametrize("fault", sorted(HTTP_FAULTS))
@pytest.mark.parametrize("via", ["header", "directive"])
@pytest.mark.parametrize("stream", [False, True])
async def test_http_faults(client: Client, route: str, fault: str, via: str, stream: bool) -> None:
    o_status, o_type, o_code, a_status, a_type = HTTP_FAULTS[fault]
    headers = {"x-mock-scenario": f"fault={fault}"} if via == "header" else {}
    text = "hello" if via == "header" else f"hello [mock:fault={fault}]"
    resp = await client.post(PATHS[route], json=body_for(route, text, stream=stream), headers=headers)
    assert resp.headers["Content-Type"] == "application/json"
    error = check_error(route, resp.status, await resp.json())
    if route == "anthropic":
        assert (resp.status, error["type"]) == (a_status, a_type)
        if fault == "400":
            assert error["message"].startswith("messages:")
    else:
        assert (resp.status, error["type"], error["code"]) == (o_status, o_type, o_code)
        if fault == "400":
            assert error["param"] == ("input" if route == "responses" else "messages")
    assert resp.headers.get("retry-after") == ("2" if fault == "429" else None)


async def test_fault_400_names_param(client: Client) -> None:
    headers = {"x-mock-scenario": "fault=400,param=temperature"}
    resp = await client.post(PATHS["chat"], json=body_for("chat", "x"), headers=headers)
    assert (await resp.json())["error"]["param"] == "temperature"


@pytest.mark.parametrize("route", ROUTES)
@pytest.mark.parametrize("chunks", [1, 3, 7, 100])
async def test_chunk_count_is_exact(client: Client, route: str, chunks: int) -> None:
    for text in ("hi", "a much longer question with many many words in it than seven"):
        resp = await client.post(
            PATHS[route],
            json=body_for(route, text, stream=True),
            headers={"x-mock-scenario": f"chunks={chunks}"},
        )
        deltas = text_deltas(route, await resp.read())
        assert len(deltas) == chunks  # pieces are grouped, or the text padded, to exactly N
        assert "".join(deltas).startswith("echo: " + text)


async def test_chunks_from_defaults_and_directive() -> None:
    async with TestClient(TestServer(create_app(MockDefaults(chunks=5)))) as c:
        resp = await c.post(PATHS["chat"], json=body_for("chat", "x", stream=True))
        assert len(text_deltas("chat", await resp.read())) == 5
        resp = await c.post(PATHS["chat"], json=body_for("chat", "x [mock:chunks=9]", stream=True))
        deltas = text_deltas("chat", await resp.read())
        assert len(deltas) == 9 and "".join(deltas) == "echo: x" + " lorem" * 7
        resp = await c.post(PATHS["chat"], json=body_for("chat", "x"))
        assert (await resp.json())["choices"][0]["message"]["content"] == "echo: x"  # JSON: no padding


@pytest.mark.parametrize("route", ROUTES)
async def test_delay_between_chunks(client: Client, route: str) -> None:
    start_at = time.monotonic()
    resp = await client.post(
        PATHS[route],
        json=body_for(route, "x", stream=True),
        headers={"x-mock-scenario": "chunks=6,delay_ms=20"},
    )
    assert len(text_deltas(route, await resp.read())) == 6
    assert time.monotonic() - start_at >= 0.1  # 5 gaps of 20 ms


async def test_delay_applies_to_json_answers(client: Client) -> None:
    start_at = time.monotonic()
    resp = await client.post(PATHS["chat"], json=body_for("chat", "a b c d [mock:delay_ms=30]"))
    assert resp.status == 200
    assert time.monotonic() - start_at >= 0.12  # 5 pieces, 4 gaps


@pytest.mark.parametrize("stream", [False, True])
async def test_slow_first_byte(client: Client, stream: bool) -> None:
    start_at = time.monotonic()
    async with client.post(
        PATHS["responses"],
        json=body_for("responses", "x", stream=stream),
        headers={"x-mock-scenario": "fault=slow_first_byte,delay_ms=150"},
    ) as resp:
        assert time.monotonic() - start_at >= 0.15
        assert resp.status == 200
        await resp.read()


async def read_until_broken(resp: aiohttp.ClientResponse) -> bytes:
    got = b""
    with pytest.raises(aiohttp.ClientPayloadError):
        while True:
            chunk = await resp.content.readany()
            if not chunk:
                break
            got += chunk
    return got


@pytest.mark.parametrize("route", ROUTES)
async def test_disconnect_mid_stream(client: Client, route: str) -> None:
    body = body_for(route, "x", stream=True)
    async with client.post(
        PATHS[route], json=body, headers={"x-mock-scenario": "fault=disconnect,chunks=8"}
    ) as resp:
        assert resp.status == 200
        got = await read_until_broken(resp)
    blocks = [b for b in got.decode().split("\n\n") if b]
    text = "\n\n".join(blocks) + "\n\n"
    assert len(text_deltas(route, text.encode())) == 4
    for terminal in ("response.completed", "message_stop", "[DONE]", '"finish_reason":"stop"'):
        assert terminal not in text


@pytest.mark.parametrize("route", ROUTES)
async def test_disconnect_json(client: Client, route: str) -> None:
    async with client.post(PATHS[route], json=body_for(route, "x [mock:fault=disconnect]")) as resp:
        assert resp.status == 200
        await read_until_broken(resp)


@pytest.mark.parametrize("route", ROUTES)
async def test_malformed(client: Client, route: str) -> None:
    resp = await client.post(PATHS[route], json=body_for(route, "x [mock:fault=malformed]"))
    assert resp.status == 200
    with pytest.raises(orjson.JSONDecodeError):
        orjson.loads(await resp.read())
    resp = await client.post(PATHS[route], json=body_for(route, "x y z [mock:fault=malformed]", stream=True))
    assert resp.status == 200
    parsed = frames(await resp.read())
    with pytest.raises(orjson.JSONDecodeError):
        orjson.loads(parsed[-1][1])
    for _, data in parsed[:-1]:
        orjson.loads(data)  # everything before the bad line is well-formed


async def test_stream_error_events(client: Client) -> None:
    scenario = {"x-mock-scenario": "fault=stream_error,chunks=6"}
    resp = await client.post(
        PATHS["responses"], json=body_for("responses", "x", stream=True), headers=scenario
    )
    evs = events(await resp.read())
    assert evs[-1]["type"] == "error" and evs[-1]["code"] == "server_error"
    assert evs[-1]["sequence_number"] == len(evs) - 1
    check_openai("ResponseErrorEvent", evs[-1])
    assert len([e for e in evs if e["type"] == "response.output_text.delta"]) == 3

    resp = await client.post(
        PATHS["anthropic"], json=body_for("anthropic", "x", stream=True), headers=scenario
    )
    evs = events(await resp.read())
    assert evs[-1] == {"type": "error", "error": {"type": "overloaded_error", "message": "Overloaded"}}
    assert "message_stop" not in [e["type"] for e in evs]

    resp = await client.post(PATHS["chat"], json=body_for("chat", "x", stream=True), headers=scenario)
    parsed = frames(await resp.read())
    last = orjson.loads(parsed[-1][1])
    assert last["error"]["type"] == "server_error"
    assert (None, "[DONE]") not in parsed


@pytest.mark.parametrize("route", ROUTES)
async def test_stream_error_without_stream_is_500(client: Client, route: str) -> None:
    resp = await client.post(PATHS[route], json=body_for(route, "x [mock:fault=stream_error]"))
    assert resp.status == 500
    check_error(route, resp.status, await resp.json())


@pytest.mark.parametrize("route", ROUTES)
async def test_bad_scenario_is_400(client: Client, route: str) -> None:
    resp = await client.post(
        PATHS[route], json=body_for(route, "x"), headers={"x-mock-scenario": "fault=teapot"}
    )
    assert resp.status == 400
    error = check_error(route, resp.status, await resp.json())
    assert "teapot" in error["message"]


async def test_models_and_health(client: Client) -> None:
    resp = await client.get("/v1/models")
    data = await resp.json()
    check_openai("ListModelsResponse", data)
    assert [m["id"] for m in data["data"]] == ["mock"]
    resp = await client.get("/v1/models", headers={"anthropic-version": "2023-06-01"})
    data = await resp.json()
    assert data["data"][0]["type"] == "model" and data["has_more"] is False
    resp = await client.get("/health")
    assert resp.status == 200 and (await resp.json()) == {"status": "ok"}


async def test_start_on_port_zero() -> None:
    runner = await start("127.0.0.1", 0, MockDefaults(models=("a", "b")))
    try:
        port = bound_port(runner)
        assert port > 0
        async with aiohttp.ClientSession() as session:
            async with session.get(f"http://127.0.0.1:{port}/v1/models") as resp:
                assert [m["id"] for m in (await resp.json())["data"]] == ["a", "b"]
            body = body_for("chat", "over tcp")
            async with session.post(f"http://127.0.0.1:{port}/v1/chat/completions", json=body) as resp:
                assert (await resp.json())["choices"][0]["message"]["content"] == "echo: over tcp"
    finally:
        await runner.cleanup()


async def test_repeated_requests_get_fresh_ids(client: Client) -> None:
    body = body_for("responses", "same [mock:chunks=2]")
    first = await (await client.post(PATHS["responses"], json=body)).json()
    second = await (await client.post(PATHS["responses"], json=body)).json()
    assert first["id"] != second["id"]
    assert first["output"][0]["id"] != second["output"][0]["id"]
    assert first["output"][0]["content"] == second["output"][0]["content"]
    resp = await client.post(PATHS["responses"], json=body, headers={"x-mock-scenario": "fault=500"})
    assert resp.status == 500  # the same body with another scenario header is not served from the memo


async def test_run_serves_until_cancelled() -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    task = asyncio.create_task(run("127.0.0.1", port))
    url = f"http://127.0.0.1:{port}/health"
    async with aiohttp.ClientSession() as session:
        for _ in range(200):
            try:
                async with session.get(url) as resp:
                    assert resp.status == 200
                    break
            except aiohttp.ClientConnectionError:
                await asyncio.sleep(0.01)
        else:
            raise AssertionError("mock did not start")
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
        with pytest.raises(aiohttp.ClientConnectionError):
            async with aiohttp.ClientSession() as fresh, fresh.get(url):
                pass

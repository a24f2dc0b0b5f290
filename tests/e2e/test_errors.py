"""Bad input and upstream failures: a clear error in the door's envelope, nothing hangs."""

from __future__ import annotations

from typing import Any

import aiohttp
import orjson
import pytest

from tests.e2e.sse import parse_frames, post_stream
from tests.openapi_validator import validate_error


async def raw_post(url: str, data: bytes, headers: dict[str, str] | None = None) -> tuple[int, dict[str, str], Any]:
    async with aiohttp.ClientSession() as s, s.post(url, data=data, headers={
            "content-type": "application/json", **(headers or {})}) as r:
        return r.status, {k.lower(): v for k, v in r.headers.items()}, orjson.loads(await r.read())


@pytest.mark.parametrize("path", ["/v1/responses", "/v1/chat/completions"])
async def test_malformed_json(gateway: str, path: str) -> None:
    status, _, body = await raw_post(gateway + path, b"{not json")
    assert status == 400
    validate_error(body)
    assert body["error"]["code"] == "invalid_json"


@pytest.mark.parametrize(("body", "param"), [
    ({"input": "hi"}, "model"),
    ({"model": 5, "input": "hi"}, "model"),
    ({"model": "gpt-4o", "input": 5}, "input"),
    ({"model": "gpt-4o", "input": "hi", "temperature": "hot"}, "temperature"),
    ({"model": "gpt-4o", "input": "hi", "temperature": 3}, "temperature"),
    ({"model": "gpt-4o", "input": "hi", "max_output_tokens": True}, "max_output_tokens"),
    ({"model": "gpt-4o", "input": "hi", "bogus": 1}, "bogus"),
    ({"model": "gpt-4o", "input": [{"role": "robot", "content": "x"}]}, "input[0].role"),
    ({"model": "gpt-4o", "input": [{"role": "user", "content": [{"type": "input_text"}]}]},
     "input[0].content[0].text"),
    ({"model": "gpt-4o", "input": "hi", "tools": [{"type": "function"}]}, "tools[0].name"),
    ({"model": "gpt-4o", "input": "hi", "tool_choice": {"type": "function", "name": "nope"}}, "tool_choice.name"),
    ({"model": "gpt-4o", "input": "hi", "text": {"format": {"type": "json_schema", "name": "x"}}},
     "text.format.schema"),
    ({"model": "gpt-4o", "input": [{"type": "function_call_output", "call_id": "c1", "output": "x"}]},
     "input[0].call_id"),
])
async def test_responses_validation_names_field(gateway: str, body: dict[str, Any], param: str) -> None:
    status, _, data = await raw_post(f"{gateway}/v1/responses", orjson.dumps(body))
    assert status == 400, data
    validate_error(data)
    assert data["error"]["param"] == param
    assert data["error"]["type"] == "invalid_request_error"


async def test_unknown_model_suggests(gateway: str) -> None:
    status, _, data = await raw_post(f"{gateway}/v1/responses", orjson.dumps({"model": "fsat", "input": "x"}))
    assert status == 400 and data["error"]["code"] == "model_not_found"
    assert "did you mean 'fast'" in data["error"]["message"]


async def test_unconfigured_provider_names_env_var(mock_url: str, tmp_path: Any) -> None:
    from tests.e2e.server import running_gateway
    from tollway.settings import Settings

    settings = Settings.model_validate({"database_url": f"sqlite+aiosqlite:///{tmp_path}/x.db",
                                        "providers": {"openai": {"api_key": "k", "base_url": mock_url}}})
    with running_gateway(settings) as gw:
        status, _, data = await raw_post(f"{gw}/v1/responses", orjson.dumps({"model": "claude-opus-4-1",
                                                                              "input": "x"}))
    assert status == 400 and "ANTHROPIC_API_KEY" in data["error"]["message"]


async def test_body_too_large(gateway: str) -> None:
    big = orjson.dumps({"model": "mock", "input": "x" * (17 * 1024 * 1024)})
    status, _, data = await raw_post(f"{gateway}/v1/responses", big)
    assert status == 413 and data["error"]["code"] == "request_too_large"


@pytest.mark.parametrize(("fault", "status", "code"), [
    ("429", 429, None), ("500", 502, None), ("529", 503, None), ("400", 400, None), ("401", 401, None),
    ("403", 403, None), ("404", 404, None),
])
@pytest.mark.parametrize("model", ["gpt-4o-mini", "claude-sonnet-4-5", "chatty"])
async def test_upstream_errors_map(gateway: str, model: str, fault: str, status: int, code: str | None) -> None:
    got, headers, data = await raw_post(f"{gateway}/v1/responses", orjson.dumps(
        {"model": model, "input": f"[mock:fault={fault}] hi"}))
    assert got == status, data
    validate_error(data)
    provider = {"gpt-4o-mini": "openai", "claude-sonnet-4-5": "anthropic", "chatty": "compat"}[model]
    assert data["error"]["message"].startswith(provider + ":")
    if fault == "429":
        assert headers.get("retry-after") == "2"


async def test_malformed_upstream_body(gateway: str) -> None:
    got, _, data = await raw_post(f"{gateway}/v1/responses", orjson.dumps(
        {"model": "gpt-4o-mini", "input": "[mock:fault=malformed] hi"}))
    assert got == 502 and data["error"]["code"] == "upstream_invalid_response"


async def test_connection_refused_names_provider(gateway: str) -> None:
    got, _, data = await raw_post(f"{gateway}/v1/responses", orjson.dumps({"model": "dead/x", "input": "hi"}))
    assert got == 502 and data["error"]["message"].startswith("dead:")


async def test_upstream_timeout_is_504(mock_url: str, tmp_path: Any) -> None:
    from tests.e2e.conftest import gateway_settings
    from tests.e2e.server import running_gateway

    settings = gateway_settings(mock_url, f"sqlite+aiosqlite:///{tmp_path}/t.db",
                                timeouts={"connect": 1, "read": 0.3, "total": 5})
    with running_gateway(settings) as gw:
        got, _, data = await raw_post(f"{gw}/v1/responses", orjson.dumps(
            {"model": "gpt-4o-mini", "input": "[mock:fault=slow_first_byte,delay_ms=1500] hi"}))
    assert got == 504 and data["error"]["code"] == "upstream_timeout"


async def test_stream_upstream_error_before_first_byte_is_http_error(gateway: str) -> None:
    status, _, raw = await post_stream(f"{gateway}/v1/responses", {"model": "gpt-4o-mini", "stream": True,
                                                                   "input": "[mock:fault=429] hi"})
    assert status == 429 and orjson.loads(raw)["error"]["type"] == "rate_limit_error"


async def test_chat_stream_mid_stream_failure(gateway: str) -> None:
    status, _, raw = await post_stream(f"{gateway}/v1/chat/completions", {
        "model": "gpt-4o-mini", "stream": True, "messages": [{"role": "user", "content": "[mock:fault=disconnect] x"}]})
    assert status == 200
    events, done = parse_frames(raw)
    assert done and "error" in events[-1]


async def test_request_id_honoured_and_generated(gateway: str) -> None:
    async with aiohttp.ClientSession() as s:
        async with s.get(f"{gateway}/health/live", headers={"x-request-id": "abc-123"}) as r:
            assert r.headers["x-request-id"] == "abc-123"
        async with s.get(f"{gateway}/health/live") as r:
            assert r.headers["x-request-id"].startswith("req_")
        async with s.get(f"{gateway}/health/ready") as r:
            assert r.status == 200 and (await r.json())["checks"]["store"] == "ok"
        async with s.get(f"{gateway}/nope") as r:
            assert r.status == 404
            validate_error(await r.json())
        async with s.get(f"{gateway}/v1/models") as r:
            ids = [m["id"] for m in (await r.json())["data"]]
            assert {"fast", "chatty", "mock"} <= set(ids)


async def test_client_disconnect_cancels_upstream(gateway: str) -> None:
    """The client goes away mid-stream; the gateway keeps serving (no hang, no crash)."""
    async with aiohttp.ClientSession() as s:
        r = await s.post(f"{gateway}/v1/responses", json={
            "model": "gpt-4o-mini", "stream": True, "input": "[mock:chunks=50,delay_ms=50] long"})
        await r.content.readline()
        r.close()
    async with aiohttp.ClientSession() as s, s.post(f"{gateway}/v1/responses", json={
            "model": "gpt-4o-mini", "input": "after"}) as r2:
        assert r2.status == 200

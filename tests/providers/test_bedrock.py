"""Tests for the Bedrock adapter (tollway.providers.bedrock): URL and SigV4 signing (checked against an
independent implementation of Signature Version 4, on a fixed clock and on the wire), response parsing of every
recorded Converse answer in ../shared/specs/providers/bedrock/wire, and error bodies."""

from __future__ import annotations

import datetime
import hashlib
import hmac
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlsplit

import botocore.auth
import orjson
import pytest
import yarl
from aiohttp import web
from aiohttp.test_utils import TestServer

from tollway.core import reasoning_state
from tollway.core.errors import GatewayError
from tollway.core.types import CanonicalRequest, Fidelity, Usage
from tollway.providers.base import ProviderSettings
from tollway.providers.bedrock import BedrockAdapter, model_url, region_for
from tollway.providers.client import UpstreamClient

ROOT = Path(__file__).resolve().parents[2]
WIRE = ROOT / ".." / "shared" / "specs" / "providers" / "bedrock" / "wire"
ADAPTER = BedrockAdapter()
KEY, SECRET = "AKIDEXAMPLE", "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY"
FROZEN = datetime.datetime(2026, 1, 2, 3, 4, 5)


def settings(base_url: str = "https://bedrock-runtime.eu-west-3.amazonaws.com", **options: str) -> ProviderSettings:
    return ProviderSettings(
        name="bedrock",
        kind="bedrock",
        base_url=base_url,
        api_key=KEY,
        api_key_source="AWS_ACCESS_KEY_ID",
        options={"aws_secret_access_key": SECRET, "region": "eu-west-3", **options},
    )


def hello(stream: bool = False) -> CanonicalRequest:
    return CanonicalRequest(model="m", input=[{"type": "message", "role": "user", "content": "hello"}], stream=stream)


# --------------------------------------------------------------------------------------------------
# an independent Signature Version 4 (the AWS documentation's algorithm, not botocore's code)
# --------------------------------------------------------------------------------------------------


def _hmac(key: bytes, msg: str) -> bytes:
    return hmac.new(key, msg.encode(), hashlib.sha256).digest()


def sigv4(
    method: str,
    raw_path: str,
    host: str,
    headers: dict[str, str],
    body: bytes,
    region: str,
    service: str,
    secret: str = SECRET,
    key: str = KEY,
) -> str:
    """The Authorization value for a request whose path is sent as ``raw_path``: the canonical URI of a non-S3
    service is that path URI-encoded once more; every given header and ``host`` are signed."""
    signed_headers = {k.lower(): " ".join(v.split()) for k, v in headers.items()}
    signed_headers["host"] = host
    names = sorted(signed_headers)
    canonical = "\n".join(
        [
            method,
            quote(raw_path, safe="/~"),
            "",
            "".join(f"{n}:{signed_headers[n]}\n" for n in names),
            ";".join(names),
            hashlib.sha256(body).hexdigest(),
        ]
    )
    amz_date = signed_headers["x-amz-date"]
    scope = f"{amz_date[:8]}/{region}/{service}/aws4_request"
    to_sign = "\n".join(["AWS4-HMAC-SHA256", amz_date, scope, hashlib.sha256(canonical.encode()).hexdigest()])
    k = _hmac(_hmac(_hmac(_hmac(f"AWS4{secret}".encode(), amz_date[:8]), region), service), "aws4_request")
    signature = hmac.new(k, to_sign.encode(), hashlib.sha256).hexdigest()
    return f"AWS4-HMAC-SHA256 Credential={key}/{scope}, SignedHeaders={';'.join(names)}, Signature={signature}"


def test_independent_sigv4_matches_the_aws_test_suite() -> None:
    """The 'get-vanilla' and 'post-vanilla' vectors of AWS's Signature Version 4 test suite."""
    headers = {"X-Amz-Date": "20150830T123600Z"}
    got = sigv4("GET", "/", "example.amazonaws.com", headers, b"", "us-east-1", "service")
    assert got.endswith("Signature=5fa00fa31553b73ebf1942676e86291e8372ff2a2260956d9b8aae1d763fbf31")
    got = sigv4("POST", "/", "example.amazonaws.com", headers, b"", "us-east-1", "service")
    assert got.endswith("Signature=5da7c1a2acd57cee7505fc6676e4e544621c30862966e37dddb68e92efbe5d6b")


# --------------------------------------------------------------------------------------------------
# URL and signing
# --------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("model", "path"),
    [
        ("amazon.nova-micro-v1:0", "/model/amazon.nova-micro-v1:0/converse"),
        (
            "us.anthropic.claude-sonnet-4-5-20250929-v1:0",
            "/model/us.anthropic.claude-sonnet-4-5-20250929-v1:0/converse",
        ),
        (
            "arn:aws:bedrock:us-east-1:123456789012:inference-profile/us.amazon.nova-pro-v1:0",
            "/model/arn:aws:bedrock:us-east-1:123456789012:inference-profile%2Fus.amazon.nova-pro-v1:0/converse",
        ),
    ],
)
def test_model_url_is_what_aiohttp_sends(model: str, path: str) -> None:
    url = model_url("https://bedrock-runtime.us-east-1.amazonaws.com", model, False)
    assert urlsplit(url).path == path
    # yarl (aiohttp) sends this path unchanged, so the signed path is the wire path
    assert yarl.URL(url).raw_path == path
    assert model_url("http://x", model, True).endswith("/converse-stream")


def test_region_from_options_url_or_default() -> None:
    assert region_for(settings()) == "eu-west-3"
    s = settings()
    s.options.pop("region")
    assert region_for(s) == "eu-west-3"
    assert region_for(ProviderSettings("b", "bedrock", "http://127.0.0.1:9")) == "us-east-1"


@pytest.mark.parametrize("token", [None, "FwoGZXIvYXdzEXAMPLETOKEN"])
def test_signature_on_a_fixed_clock(monkeypatch: pytest.MonkeyPatch, token: str | None) -> None:
    monkeypatch.setattr(botocore.auth, "get_current_datetime", lambda *a, **k: FROZEN)
    s = settings(**({"aws_session_token": token} if token else {}))
    s.headers["x-team"] = "search"
    model = "us.amazon.nova-micro-v1:0"
    up = BedrockAdapter().build_request(hello(stream=True), model, s, Fidelity())
    assert up.url == "https://bedrock-runtime.eu-west-3.amazonaws.com/model/us.amazon.nova-micro-v1:0/converse-stream"
    assert up.stream and up.stream_format == "eventstream" and up.method == "POST"
    headers = dict(up.headers)
    auth = headers.pop("Authorization")
    assert headers["X-Amz-Date"] == "20260102T030405Z"
    assert headers.get("X-Amz-Security-Token") == token
    assert headers["content-type"] == "application/json" and headers["x-team"] == "search"
    expected = sigv4(
        "POST",
        yarl.URL(up.url).raw_path,
        "bedrock-runtime.eu-west-3.amazonaws.com",
        headers,
        up.body,
        "eu-west-3",
        "bedrock",
    )
    assert auth == expected
    assert auth.startswith(f"AWS4-HMAC-SHA256 Credential={KEY}/20260102/eu-west-3/bedrock/aws4_request, ")
    signed = "content-type;host;x-amz-date;" + ("x-amz-security-token;" if token else "") + "x-team"
    assert f"SignedHeaders={signed}," in auth


def test_signature_changes_with_the_body_and_secret(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(botocore.auth, "get_current_datetime", lambda *a, **k: FROZEN)
    a = BedrockAdapter()
    one = a.build_request(hello(), "amazon.nova-micro-v1:0", settings(), Fidelity()).headers["Authorization"]
    other = CanonicalRequest(model="m", input=[{"type": "message", "role": "user", "content": "bye"}])
    two = a.build_request(other, "amazon.nova-micro-v1:0", settings(), Fidelity()).headers["Authorization"]
    three = a.build_request(
        hello(), "amazon.nova-micro-v1:0", settings(aws_secret_access_key="other"), Fidelity()
    ).headers["Authorization"]
    assert len({one, two, three}) == 3


async def test_signature_verifies_on_the_wire() -> None:
    """Through the shared aiohttp client to a server that checks the signature of what it received."""
    seen: list[str] = []

    async def converse(request: web.Request) -> web.Response:
        body = await request.read()
        headers = {
            k: v
            for k, v in request.headers.items()
            if k.lower() in ("content-type", "x-amz-date", "x-amz-security-token")
        }
        expected = sigv4(request.method, request.raw_path, request.host, headers, body, "eu-west-3", "bedrock")
        seen.append(request.raw_path)
        if request.headers.get("Authorization") != expected:
            return web.json_response({"message": "The request signature we calculated does not match"}, status=403)
        return web.json_response(
            {
                "output": {"message": {"role": "assistant", "content": [{"text": "ok"}]}},
                "stopReason": "end_turn",
                "usage": {"inputTokens": 1, "outputTokens": 1},
            }
        )

    app = web.Application()
    app.router.add_post("/model/{model}/converse", converse)
    client = UpstreamClient(2, 5, 10)
    await client.start()
    try:
        async with TestServer(app) as server:
            base = str(server.make_url("")).rstrip("/")
            for model in ("us.amazon.nova-micro-v1:0", "arn:aws:bedrock:us-east-1:1:inference-profile/x.y-v1:0"):
                up = ADAPTER.build_request(hello(), model, settings(base, aws_session_token="tok"), Fidelity())
                body = await client.send(up, "bedrock", ADAPTER)
                assert ADAPTER.parse_response(body).output[0]["content"][0]["text"] == "ok"
    finally:
        await client.close()
    assert seen == [
        "/model/us.amazon.nova-micro-v1:0/converse",
        "/model/arn:aws:bedrock:us-east-1:1:inference-profile%2Fx.y-v1:0/converse",
    ]


@pytest.mark.parametrize(
    ("missing", "named"), [("api_key", "AWS_ACCESS_KEY_ID"), ("aws_secret_access_key", "AWS_SECRET_ACCESS_KEY")]
)
def test_missing_credentials_name_the_variable(missing: str, named: str) -> None:
    s = settings()
    if missing == "api_key":
        s.api_key = None
    else:
        s.options.pop(missing)
    with pytest.raises(GatewayError) as err:
        BedrockAdapter().build_request(hello(), "amazon.nova-micro-v1:0", s, Fidelity())
    assert err.value.status == 400 and err.value.code == "provider_not_configured"
    assert named in err.value.message and f"providers.bedrock.{missing}" in err.value.message


# --------------------------------------------------------------------------------------------------
# responses
# --------------------------------------------------------------------------------------------------


def parse(name: str) -> Any:
    return ADAPTER.parse_response((WIRE / f"{name}.response.json").read_bytes())


def text_item(text: str) -> dict[str, Any]:
    return {
        "type": "message",
        "role": "assistant",
        "status": "completed",
        "content": [{"type": "output_text", "text": text, "annotations": []}],
    }


def test_text_answer() -> None:
    r = parse("test_bedrock_model.00")
    assert r.output == [
        text_item(
            "Hello! How can I assist you today? Whether you have questions, need information, "
            "or just want to chat, I'm here to help."
        )
    ]
    assert r.status == "completed" and r.incomplete_reason is None
    assert r.usage == Usage(input_tokens=7, output_tokens=30)
    assert r.upstream_model is None and r.upstream_id is None


def test_guardrail_trace_is_ignored() -> None:
    r = parse("test_bedrock_model_guardrail_config.00")
    assert r.status == "completed" and r.output[0]["content"][0]["text"].startswith("The capital of France is Paris.")


def test_max_tokens_is_incomplete() -> None:
    r = parse("test_bedrock_model_max_tokens.00")
    assert r.output == [text_item("The capital of France is")]
    assert (r.status, r.incomplete_reason) == ("incomplete", "max_output_tokens")
    assert r.usage == Usage(input_tokens=13, output_tokens=5)


def test_reasoning_with_signature() -> None:
    r = parse("test_bedrock_model_thinking_part_anthropic.00")
    reasoning, message = r.output
    raw = orjson.loads((WIRE / "test_bedrock_model_thinking_part_anthropic.00.response.json").read_bytes())
    recorded = raw["output"]["message"]["content"][0]["reasoningContent"]["reasoningText"]
    assert reasoning["type"] == "reasoning" and reasoning["summary"] == []
    assert reasoning["content"] == [{"type": "reasoning_text", "text": recorded["text"]}]
    assert reasoning_state.unwrap(reasoning["encrypted_content"]) == ("bedrock", {"signature": recorded["signature"]})
    assert message["content"][0]["text"].startswith("Here are the basic steps")
    assert r.usage == Usage(input_tokens=42, output_tokens=313)


@pytest.mark.parametrize(
    ("name", "usage"),
    [
        ("test_bedrock_cache_write_and_read.00", Usage(input_tokens=1324, output_tokens=5, cache_write_tokens=1322)),
        ("test_bedrock_cache_write_and_read.01", Usage(input_tokens=1324, output_tokens=5, cached_tokens=1322)),
        (
            "test_bedrock_cache_usage_includes_cache_tokens.00",
            Usage(input_tokens=1517, output_tokens=5, cached_tokens=1504),
        ),
    ],
)
def test_cache_usage_is_included_in_input(name: str, usage: Usage) -> None:
    """Bedrock's inputTokens excludes cache reads and writes (totalTokens = input + output + reads + writes)."""
    r = parse(name)
    assert r.usage == usage
    assert r.output == [text_item("21" if "write" in name else "5")]


def test_usage_already_including_cache_is_not_counted_twice() -> None:
    body = {
        "output": {"message": {"role": "assistant", "content": [{"text": "x"}]}},
        "stopReason": "end_turn",
        "usage": {"inputTokens": 100, "outputTokens": 5, "totalTokens": 105, "cacheReadInputTokens": 60},
    }
    assert ADAPTER.parse_response(orjson.dumps(body)).usage == Usage(
        input_tokens=100, output_tokens=5, cached_tokens=60
    )


def test_tool_use() -> None:
    r = parse("test_bedrock_model_structured_output.00")
    assert r.output == [
        {
            "type": "function_call",
            "call_id": "tooluse_Mj06ft-ITJik1Otgpkc1uA",
            "name": "temperature",
            "arguments": '{"city":"London","date":"2022-01-01"}',
            "status": "completed",
        }
    ]
    assert r.usage == Usage(input_tokens=571, output_tokens=22)
    r = parse("test_tool_choice_matrix[auto-bedrock].00")
    assert r.output[0]["arguments"] == '{"city":"Paris"}' and r.output[0]["name"] == "get_weather"


def test_text_then_tool_use() -> None:
    r = parse("test_bedrock_model_retry.00")
    assert [it["type"] for it in r.output] == ["message", "function_call"]
    assert r.output[0]["content"][0]["text"].startswith("<thinking> To determine the capital of France")
    assert r.output[1]["arguments"] == '{"country":"France"}'


def synthetic(content: list[Any], stop: str = "end_turn", usage: Any = None) -> Any:
    body = {"output": {"message": {"role": "assistant", "content": content}}, "stopReason": stop}
    if usage is not None:
        body["usage"] = usage
    return ADAPTER.parse_response(orjson.dumps(body))


@pytest.mark.parametrize(
    ("stop", "status", "reason"),
    [
        ("end_turn", "completed", None),
        ("tool_use", "completed", None),
        ("stop_sequence", "completed", None),
        ("max_tokens", "incomplete", "max_output_tokens"),
        ("model_context_window_exceeded", "incomplete", "max_output_tokens"),
        ("guardrail_intervened", "incomplete", "content_filter"),
        ("content_filtered", "incomplete", "content_filter"),
        ("malformed_model_output", "completed", None),
        ("something_new", "completed", None),
    ],
)
def test_stop_reasons(stop: str, status: str, reason: str | None) -> None:
    r = synthetic([{"text": "x"}], stop)
    assert (r.status, r.incomplete_reason) == (status, reason)
    assert r.usage is None


def test_redacted_reasoning_citations_and_runs_of_text() -> None:
    r = synthetic(
        [
            {"reasoningContent": {"redactedContent": "cmVkYWN0ZWQ="}},
            {"reasoningContent": {"reasoningText": {"text": "no signature"}}},
            {"text": "Paris "},
            {"citationsContent": {"content": [{"text": "is the capital"}], "citations": []}},
            {"text": ""},
            {"image": {"format": "png", "source": {"bytes": "aGk="}}},
            {"text": "."},
        ]
    )
    redacted, plain, cited, dot = r.output
    assert redacted["content"] == []
    assert reasoning_state.unwrap(redacted["encrypted_content"]) == ("bedrock", {"redacted": "cmVkYWN0ZWQ="})
    assert plain["content"] == [{"type": "reasoning_text", "text": "no signature"}] and "encrypted_content" not in plain
    assert cited == text_item("Paris is the capital")
    assert dot == text_item(".")


@pytest.mark.parametrize("body", [b"not json", b"[]", b'{"output": {}}', b'{"output": {"message": {"content": 1}}}'])
def test_malformed_response_is_a_502(body: bytes) -> None:
    with pytest.raises(GatewayError) as err:
        ADAPTER.parse_response(body)
    assert err.value.status == 502 and err.value.code == "upstream_bad_response"


# --------------------------------------------------------------------------------------------------
# errors
# --------------------------------------------------------------------------------------------------


def test_recorded_error_body() -> None:
    body = (WIRE / "test_bedrock_error.00.response.json").read_bytes()
    assert ADAPTER.error_message(body) == ("The provided model identifier is invalid.", None)


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        (
            b'{"Message": "User: arn:aws:iam::1:user/x is not authorized"}',
            ("User: arn:aws:iam::1:user/x is not authorized", None),
        ),
        (
            b'{"__type": "com.amazon.coral.service#UnrecognizedClientException", "message": "bad token"}',
            ("bad token", "UnrecognizedClientException"),
        ),
        (
            b'{"__type": "ThrottlingException:http://internal.amazon.com/coral/", "message": "slow down"}',
            ("slow down", "ThrottlingException"),
        ),
        (b"<html>Bad Gateway</html>", ("<html>Bad Gateway</html>", None)),
        (b"", ("empty error body", None)),
        (b'{"message": ""}', ('{"message": ""}', None)),
        (b"[1]", ("[1]", None)),
    ],
)
def test_error_bodies(body: bytes, expected: tuple[str, str | None]) -> None:
    assert ADAPTER.error_message(body) == expected

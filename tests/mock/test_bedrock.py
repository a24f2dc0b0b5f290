"""The mock's Bedrock Converse wire format (tollway.mock.bedrock) and its event stream encoder
(tollway.mock.bedrock_eventstream). Answers are read back with botocore's own parsers and service model."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import botocore.session
import orjson
import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient
from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials
from botocore.eventstream import EventStream, EventStreamBuffer
from botocore.exceptions import EventStreamError
from botocore.parsers import create_parser
from hypothesis import given
from hypothesis import strategies as st

from tollway.mock.bedrock import STATE_PREFIX
from tollway.mock.bedrock_eventstream import encode_message, event, exception
from tollway.mock.scenario import make_state

Client = TestClient[web.Request, web.Application]
ROOT = Path(__file__).resolve().parents[2]
WIRE = ROOT / ".." / "shared" / "specs" / "providers" / "bedrock" / "wire"
SERVICE = botocore.session.get_session().get_service_model("bedrock-runtime")
MODEL = "us.amazon.nova-micro-v1:0"
TOOLS = {
    "tools": [
        {"toolSpec": {"name": "lookup", "inputSchema": {"json": {"type": "object"}}}},
        {"toolSpec": {"name": "search", "description": "s", "inputSchema": {"json": {"type": "object"}}}},
    ]
}


# --------------------------------------------------------------------------------------------------
# the encoder
# --------------------------------------------------------------------------------------------------


def decode(raw: bytes) -> list[tuple[dict[str, Any], bytes]]:
    buffer = EventStreamBuffer()
    buffer.add_data(raw)
    return [(m.headers, m.payload) for m in buffer]


def test_encoder_reproduces_every_recorded_stream_byte_for_byte() -> None:
    paths = sorted(WIRE.glob("*.eventstream.bin"))
    assert len(paths) >= 6
    for path in paths:
        raw = path.read_bytes()
        again = b"".join(encode_message(list(h.items()), p) for h, p in decode(raw))
        assert again == raw, path.name


@given(
    st.lists(st.tuples(st.text(min_size=1, max_size=40), st.text(max_size=300)), max_size=5, unique_by=lambda h: h[0]),
    st.binary(max_size=2000),
)
def test_encoder_round_trips_through_botocore(headers: list[tuple[str, str]], payload: bytes) -> None:
    raw = encode_message(headers, payload)
    ((got_headers, got_payload),) = decode(raw)
    assert got_headers == dict(headers) and got_payload == payload


def test_event_and_exception_messages() -> None:
    ((headers, _),) = decode(event("messageStop", b'{"stopReason":"end_turn"}'))
    assert headers == {":event-type": "messageStop", ":content-type": "application/json", ":message-type": "event"}
    ((headers, _),) = decode(exception("throttlingException", b'{"message":"slow"}'))
    assert headers[":message-type"] == "exception" and headers[":exception-type"] == "throttlingException"
    with pytest.raises(ValueError):
        encode_message([("x" * 300, "v")], b"")


# --------------------------------------------------------------------------------------------------
# requests to the mock
# --------------------------------------------------------------------------------------------------


def signed_headers(url: str, body: bytes, scenario: str | None = None) -> dict[str, str]:
    request = AWSRequest(method="POST", url=url, data=body, headers={"content-type": "application/json"})
    SigV4Auth(Credentials("AKID", "secret"), "bedrock", "us-east-1").add_auth(request)
    headers = dict(request.headers.items())
    if scenario:
        headers["x-mock-scenario"] = scenario
    return headers


async def call(
    client: Client,
    body: dict[str, Any],
    stream: bool = False,
    model: str = MODEL,
    headers: dict[str, str] | None = None,
    scenario: str | None = None,
) -> tuple[int, dict[str, str], bytes]:
    path = f"/model/{model}/{'converse-stream' if stream else 'converse'}"
    raw = orjson.dumps(body)
    sent = headers if headers is not None else signed_headers(str(client.make_url(path)), raw, scenario)
    resp = await client.post(path, data=raw, headers=sent)
    return resp.status, {k.lower(): v for k, v in resp.headers.items()}, await resp.read()


def parsed(status: int, headers: dict[str, str], body: bytes) -> dict[str, Any]:
    """The answer as botocore's rest-json parser reads it against the Converse output shape."""
    result: dict[str, Any] = create_parser("rest-json").parse(
        {"status_code": status, "headers": headers, "body": body}, SERVICE.operation_model("Converse").output_shape
    )
    result.pop("ResponseMetadata")
    return result


class _Raw:
    def __init__(self, data: bytes) -> None:
        self.data = data

    def stream(self) -> Any:
        yield self.data


def stream_events(body: bytes) -> list[dict[str, Any]]:
    """The stream as botocore's event stream parser reads it against the ConverseStream output shape."""
    shape = SERVICE.operation_model("ConverseStream").output_shape.members["stream"]
    return list(EventStream(_Raw(body), shape, create_parser("rest-json")._event_stream_parser, "ConverseStream"))


async def converse(client: Client, body: dict[str, Any], **kw: Any) -> dict[str, Any]:
    status, headers, raw = await call(client, body, **kw)
    assert status == 200, raw
    return parsed(status, headers, raw)


def user(text: str) -> list[dict[str, Any]]:
    return [{"role": "user", "content": [{"text": text}]}]


async def test_text(client: Client) -> None:
    data = await converse(client, {"system": [{"text": "be kind"}], "messages": user("hello there")})
    assert data["output"] == {"message": {"role": "assistant", "content": [{"text": "echo: hello there"}]}}
    assert data["stopReason"] == "end_turn"
    assert data["usage"] == {
        "inputTokens": 4,
        "outputTokens": 3,
        "totalTokens": 7,
        "cacheReadInputTokens": 0,
        "cacheWriteInputTokens": 0,
    }


async def test_model_id_with_encoded_colon(client: Client) -> None:
    status, _, raw = await call(client, {"messages": user("hi")}, model="us.amazon.nova-micro-v1%3A0")
    assert status == 200, raw


async def test_stream_text(client: Client) -> None:
    status, headers, raw = await call(client, {"messages": user("[mock:chunks=3] a b c d")}, stream=True)
    assert status == 200 and headers["content-type"] == "application/vnd.amazon.eventstream"
    events = stream_events(raw)
    assert events[0] == {"messageStart": {"role": "assistant"}}
    texts = [e["contentBlockDelta"]["delta"]["text"] for e in events if "contentBlockDelta" in e]
    assert len(texts) == 3 and "".join(texts) == "echo: a b c d"
    assert events[-3] == {"contentBlockStop": {"contentBlockIndex": 0}}
    assert events[-2] == {"messageStop": {"stopReason": "end_turn"}}
    assert events[-1]["metadata"]["usage"]["outputTokens"] == 5
    assert all(b'"p":"' in p for _, p in decode(raw))  # every event is padded like Bedrock's


async def test_tools_parallel_and_results(client: Client) -> None:
    data = await converse(client, {"messages": user("find it in parallel"), "toolConfig": TOOLS})
    uses = [b["toolUse"] for b in data["output"]["message"]["content"]]
    assert [u["name"] for u in uses] == ["lookup", "search"] and data["stopReason"] == "tool_use"
    assert uses[0]["input"] == {"input": "find it in parallel"}
    follow = [
        *user("find it in parallel"),
        {"role": "assistant", "content": [{"toolUse": u} for u in uses]},
        {
            "role": "user",
            "content": [
                {"toolResult": {"toolUseId": u["toolUseId"], "content": [{"text": f"r{i}"}], "status": "success"}}
                for i, u in enumerate(uses)
            ],
        },
    ]
    data = await converse(client, {"messages": follow, "toolConfig": TOOLS})
    assert data["output"]["message"]["content"] == [{"text": "tool said: r0; r1"}]


async def test_tool_choice_tool_and_streamed_arguments(client: Client) -> None:
    config = {**TOOLS, "toolChoice": {"tool": {"name": "search"}}}
    _, _, raw = await call(client, {"messages": user("go"), "toolConfig": config}, stream=True)
    events = stream_events(raw)
    starts = [e["contentBlockStart"]["start"]["toolUse"] for e in events if "contentBlockStart" in e]
    assert [s["name"] for s in starts] == ["search"]
    args = "".join(e["contentBlockDelta"]["delta"]["toolUse"]["input"] for e in events if "contentBlockDelta" in e)
    assert orjson.loads(args) == {"input": "go"}
    assert {"messageStop": {"stopReason": "tool_use"}} in events


async def test_reasoning_round_trip(client: Client) -> None:
    fields = {"thinking": {"type": "enabled", "budget_tokens": 1024}}
    data = await converse(client, {"messages": user("plan"), "additionalModelRequestFields": fields})
    reasoning = data["output"]["message"]["content"][0]["reasoningContent"]["reasoningText"]
    assert reasoning["text"] == "thinking about: plan" and reasoning["signature"].startswith(STATE_PREFIX)
    history = [*user("plan"), {"role": "assistant", "content": data["output"]["message"]["content"]}, *user("next")]
    await converse(client, {"messages": history, "additionalModelRequestFields": fields})
    reasoning["signature"] = reasoning["signature"][:-1] + "0"
    status, headers, raw = await call(client, {"messages": history})
    assert status == 400 and headers["x-amzn-errortype"].startswith("ValidationException:")
    assert "signature is invalid" in orjson.loads(raw)["message"]


async def test_reasoning_stream_and_nova_reasoning_config(client: Client) -> None:
    fields = {"reasoningConfig": {"type": "enabled", "maxReasoningEffort": "low"}}
    _, _, raw = await call(client, {"messages": user("x y"), "additionalModelRequestFields": fields}, stream=True)
    events = stream_events(raw)
    reasoning = [
        e["contentBlockDelta"]["delta"]["reasoningContent"]
        for e in events
        if "reasoningContent" in e.get("contentBlockDelta", {}).get("delta", {})
    ]
    assert "".join(r.get("text", "") for r in reasoning) == "thinking about: x y"
    assert reasoning[-1]["signature"] == make_state(STATE_PREFIX, "thinking about: x y")


async def test_json_output_and_cache_points(client: Client) -> None:
    output = {"textFormat": {"type": "json_schema", "structure": {"jsonSchema": {"schema": '{"type":"object"}'}}}}
    system = [{"text": "a b c d e f"}, {"cachePoint": {"type": "default"}}]
    data = await converse(client, {"system": system, "messages": user("hi"), "outputConfig": output})
    assert orjson.loads(data["output"]["message"]["content"][0]["text"]) == {"echo": "hi"}
    assert data["usage"]["cacheReadInputTokens"] == 3 and data["usage"]["inputTokens"] == 4


async def test_max_tokens(client: Client) -> None:
    data = await converse(client, {"messages": user("a b c d"), "inferenceConfig": {"maxTokens": 2}})
    assert data["stopReason"] == "max_tokens" and data["output"]["message"]["content"] == [{"text": "echo: a"}]


@pytest.mark.parametrize(
    ("body", "needle"),
    [
        ({"messages": [{"role": "assistant", "content": [{"text": "x"}]}]}, "must start with a user message"),
        ({"messages": [*user("a"), *user("b")]}, "must alternate between user and assistant"),
        ({"messages": user("  ")}, "is blank"),
        ({"messages": user("x"), "bogus": 1}, "Unknown parameter"),
        (
            {
                "messages": [
                    *user("x"),
                    {"role": "assistant", "content": [{"toolUse": {"toolUseId": "t1", "name": "lookup", "input": {}}}]},
                ]
            },
            "toolConfig field must be defined",
        ),
        (
            {
                "messages": [
                    *user("x"),
                    {"role": "assistant", "content": [{"toolUse": {"toolUseId": "t1", "name": "lookup", "input": {}}}]},
                    {"role": "user", "content": [{"toolResult": {"toolUseId": "t2", "content": []}}]},
                ],
                "toolConfig": TOOLS,
            },
            "does not match a toolUse",
        ),
        (
            {
                "messages": [
                    *user("x"),
                    {
                        "role": "assistant",
                        "content": [{"toolUse": {"toolUseId": "bad id!", "name": "lookup", "input": {}}}],
                    },
                ],
                "toolConfig": TOOLS,
            },
            "toolUseId",
        ),
        (
            {"messages": user("x"), "toolConfig": {**TOOLS, "toolChoice": {"tool": {"name": "nope"}}}},
            "not in toolConfig",
        ),
        ({"messages": user("x"), "toolConfig": {"tools": []}}, "at least 1"),
        ({"messages": user("x"), "inferenceConfig": {"temperature": 1.5}}, "between 0 and 1"),
        (
            {
                "messages": user("x"),
                "inferenceConfig": {"maxTokens": 1000},
                "additionalModelRequestFields": {"thinking": {"type": "enabled", "budget_tokens": 1024}},
            },
            "max_tokens",
        ),
        (
            {
                "messages": [
                    *user("x"),
                    {"role": "assistant", "content": [{"reasoningContent": {"redactedContent": "cmVk"}}]},
                    *user("y"),
                ]
            },
            "redactedContent",
        ),
        (
            {"messages": [{"role": "user", "content": [{"image": {"format": "bmp", "source": {"bytes": "aGk="}}}]}]},
            "image.format",
        ),
        (
            {
                "messages": user("x"),
                "outputConfig": {
                    "textFormat": {"type": "json_schema", "structure": {"jsonSchema": {"schema": "{not json"}}}
                },
            },
            "JSON string",
        ),
    ],
)
async def test_validation_errors(client: Client, body: dict[str, Any], needle: str) -> None:
    status, headers, raw = await call(client, body)
    assert status == 400, raw
    assert headers["x-amzn-errortype"].startswith("ValidationException:")
    assert needle in orjson.loads(raw)["message"]


# --------------------------------------------------------------------------------------------------
# authentication and faults
# --------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("headers", "error_type"),
    [
        ({"content-type": "application/json"}, "MissingAuthenticationTokenException"),
        ({"Authorization": "AWS4-HMAC-SHA256 nonsense"}, "IncompleteSignatureException"),
        (
            {
                "Authorization": "AWS4-HMAC-SHA256 Credential=AKID/20260102/us-east-1/bedrock/aws4_request, "
                "SignedHeaders=content-type;host;x-amz-date, Signature=" + "0" * 64,
                "X-Amz-Date": "20250101T000000Z",
            },
            "InvalidSignatureException",
        ),
    ],
)
async def test_unsigned_requests_are_refused(client: Client, headers: dict[str, str], error_type: str) -> None:
    status, got, raw = await call(client, {"messages": user("hi")}, headers=headers)
    assert status == 403
    assert got["x-amzn-errortype"].startswith(error_type + ":")
    assert parsed(status, got, raw)["Error"]["Code"] == error_type


async def test_bearer_api_key_is_accepted(client: Client) -> None:
    status, _, _ = await call(client, {"messages": user("hi")}, headers={"Authorization": "Bearer ABSK-key"})
    assert status == 200


@pytest.mark.parametrize(
    ("fault", "status", "code"),
    [
        ("400", 400, "ValidationException"),
        ("401", 403, "UnrecognizedClientException"),
        ("403", 403, "AccessDeniedException"),
        ("404", 404, "ResourceNotFoundException"),
        ("429", 429, "ThrottlingException"),
        ("500", 500, "InternalServerException"),
        ("529", 503, "ServiceUnavailableException"),
    ],
)
async def test_http_faults(client: Client, fault: str, status: int, code: str) -> None:
    got, headers, raw = await call(client, {"messages": user(f"[mock:fault={fault}] hi")})
    assert got == status
    error = parsed(got, headers, raw)["Error"]
    assert error["Code"] == code and error["Message"]
    assert (headers.get("retry-after") == "2") is (fault == "429")


async def test_stream_error_is_an_exception_message(client: Client) -> None:
    status, _, raw = await call(client, {"messages": user("[mock:fault=stream_error] a b c d e f")}, stream=True)
    assert status == 200
    frames = decode(raw)
    assert frames[-1][0][":exception-type"] == "modelStreamErrorException"
    with pytest.raises(EventStreamError) as err:
        stream_events(raw)
    assert "mock stream error" in str(err.value)


async def test_malformed(client: Client) -> None:
    _, _, raw = await call(client, {"messages": user("[mock:fault=malformed] a b c d")}, stream=True)
    headers, payload = decode(raw)[-1]
    assert headers[":event-type"] == "contentBlockDelta"
    with pytest.raises(orjson.JSONDecodeError):
        orjson.loads(payload)
    _, _, raw = await call(client, {"messages": user("[mock:fault=malformed] a")})
    with pytest.raises(orjson.JSONDecodeError):
        orjson.loads(raw)

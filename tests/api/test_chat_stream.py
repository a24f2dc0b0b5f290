"""Canonical deltas -> ``chat.completion.chunk`` SSE frames: framing, chunk sequence, finish/usage/[DONE],
errors, and conformance with OpenAI's OpenAPI schema and the official SDK (models, stream reader and the
chunk accumulator)."""

from __future__ import annotations

from decimal import Decimal
from functools import cache
from pathlib import Path
from typing import Any

import httpx
import openai
import orjson
import pytest
import yaml
from jsonschema import Draft202012Validator  # type: ignore[import-untyped]
from openai.lib.streaming.chat import ChatCompletionStreamState
from openai.types.chat import ChatCompletionChunk
from referencing import Registry
from referencing.jsonschema import DRAFT202012

from tollway.api.chat_stream import ChatStreamEncoder
from tollway.core.errors import GatewayError, upstream_error
from tollway.core.types import (
    Delta,
    Finish,
    ItemDone,
    ReasoningDelta,
    ReasoningState,
    RefusalDelta,
    StreamError,
    TextDelta,
    ToolCallArgsDelta,
    ToolCallStart,
    Usage,
    UsageUpdate,
)

SHARED = Path(__file__).resolve().parents[2] / ".." / "shared"
OPENAPI = SHARED / "specs" / "open-responses" / "openai-openapi" / "openapi.yaml"
RECORDED_STREAM = (
    SHARED / "specs" / "providers" / "openai" / "wire" / "test_run_stream_sync_streams_real_model.00.response.sse"
)
DOC_URI = "urn:openai-openapi"
ID, CREATED, MODEL = "chatcmpl-abc", 1_700_000_000, "claude-sonnet-4"


def _nullable(node: Any) -> Any:
    """OpenAPI 3.0 ``nullable: true`` (still used in places of this 3.1 document) -> JSON Schema null union."""
    if isinstance(node, list):
        return [_nullable(n) for n in node]
    if not isinstance(node, dict):
        return node
    out = {k: _nullable(v) for k, v in node.items() if k != "nullable"}
    if node.get("nullable") is True:
        return {"anyOf": [out, {"type": "null"}]}
    return out


@cache
def validator(name: str) -> Draft202012Validator:
    loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
    doc = _nullable(yaml.load(OPENAPI.read_text(), Loader=loader))
    registry: Registry[Any] = Registry().with_resource(DOC_URI, DRAFT202012.create_resource(doc))
    return Draft202012Validator({"$ref": f"{DOC_URI}#/components/schemas/{name}"}, registry=registry)


def frames(raw: bytes) -> list[bytes]:
    """Split an SSE byte stream into frame payloads, asserting the chat framing exactly."""
    assert raw.endswith(b"\n\n")
    out = []
    for block in raw[:-2].split(b"\n\n"):
        assert block.startswith(b"data: "), block
        assert b"\n" not in block, "every frame must be a single data: line"
        out.append(block[len(b"data: ") :])
    return out


def chunks(raw: bytes) -> list[dict[str, Any]]:
    payloads = frames(raw)
    assert payloads[-1] == b"[DONE]"
    assert b"[DONE]" not in payloads[:-1]
    objs = []
    for payload in payloads[:-1]:
        obj = orjson.loads(payload)
        assert isinstance(obj, dict)
        objs.append(obj)
    return objs


def conforms(obj: dict[str, Any]) -> None:
    errors = sorted(validator("CreateChatCompletionStreamResponse").iter_errors(obj), key=str)
    assert not errors, [f"{list(e.absolute_path)}: {e.message}" for e in errors]
    ChatCompletionChunk.model_validate(obj)


def run(
    deltas: list[Delta],
    *,
    include_usage: bool = False,
    status: str = "completed",
    reason: str | None = None,
    usage: Usage | None = None,
    cost: orjson.Fragment | None = None,
    tollway: dict[str, Any] | None = None,
) -> tuple[bytes, list[dict[str, Any]]]:
    enc = ChatStreamEncoder(ID, CREATED, MODEL, include_usage)
    raw = b"".join(enc.feed(d) for d in deltas) + enc.finish(status, reason, usage, cost, tollway)
    objs = chunks(raw)
    for obj in objs:
        conforms(obj)
        assert obj["id"] == ID and obj["object"] == "chat.completion.chunk"
        assert obj["created"] == CREATED and obj["model"] == MODEL
    return raw, objs


def deltas_of(objs: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [o["choices"][0]["delta"] for o in objs if o["choices"]]


def accumulate(objs: list[dict[str, Any]]) -> Any:
    state: ChatCompletionStreamState = ChatCompletionStreamState()
    for obj in objs:
        state.handle_chunk(ChatCompletionChunk.model_validate(obj))
    return state.get_final_completion()


USAGE = Usage(input_tokens=53, output_tokens=15, cached_tokens=10, reasoning_tokens=4)


def test_text_stream() -> None:
    raw, objs = run(
        [TextDelta(0, "Hel"), TextDelta(0, ""), TextDelta(0, "lo"), ItemDone(0), UsageUpdate(output_tokens=3), Finish()]
    )
    assert deltas_of(objs) == [{"role": "assistant", "content": ""}, {"content": "Hel"}, {"content": "lo"}, {}]
    for obj in objs[:-1]:
        assert obj["choices"] == [
            {"index": 0, "delta": obj["choices"][0]["delta"], "logprobs": None, "finish_reason": None}
        ]
        assert "usage" not in obj
    assert objs[-1]["choices"][0]["finish_reason"] == "stop"
    assert raw.endswith(b"data: [DONE]\n\n")
    final = accumulate(objs)
    assert final.choices[0].message.content == "Hello"
    assert final.choices[0].finish_reason == "stop"


def test_parallel_tool_calls_stream() -> None:
    _, objs = run(
        [
            TextDelta("t", "Checking."),
            ToolCallStart("a", "call_a", "get_weather"),
            ToolCallArgsDelta("a", '{"city":'),
            ToolCallStart("b", "call_b", "get_time"),
            ToolCallArgsDelta("b", '{"tz":"CET"}'),
            ToolCallArgsDelta("a", '"Paris"}'),
            ToolCallArgsDelta("a", ""),
            ToolCallArgsDelta("unknown", "ignored"),
            ItemDone("a"),
            ItemDone("b"),
        ]
    )
    assert deltas_of(objs)[1:] == [
        {"content": "Checking."},
        {
            "tool_calls": [
                {"index": 0, "id": "call_a", "type": "function", "function": {"name": "get_weather", "arguments": ""}}
            ]
        },
        {"tool_calls": [{"index": 0, "function": {"arguments": '{"city":'}}]},
        {
            "tool_calls": [
                {"index": 1, "id": "call_b", "type": "function", "function": {"name": "get_time", "arguments": ""}}
            ]
        },
        {"tool_calls": [{"index": 1, "function": {"arguments": '{"tz":"CET"}'}}]},
        {"tool_calls": [{"index": 0, "function": {"arguments": '"Paris"}'}}]},
        {},
    ]
    assert objs[-1]["choices"][0]["finish_reason"] == "tool_calls"
    final = accumulate(objs)
    calls = final.choices[0].message.tool_calls
    assert [(c.id, c.function.name, c.function.arguments) for c in calls] == [
        ("call_a", "get_weather", '{"city":"Paris"}'),
        ("call_b", "get_time", '{"tz":"CET"}'),
    ]
    assert final.choices[0].message.content == "Checking."


def test_reasoning_and_refusal_stream() -> None:
    _, objs = run(
        [
            ReasoningDelta("r", "think "),
            ReasoningDelta("r", "more", summary=True),
            ReasoningState("r", "tw1.anthropic.abc"),
            ItemDone("r"),
            RefusalDelta("m", "No."),
            RefusalDelta("m", ""),
        ]
    )
    assert deltas_of(objs)[1:] == [
        {"reasoning_content": "think "},
        {"reasoning_content": "more"},
        {"refusal": "No."},
        {},
    ]
    final = accumulate(objs)
    assert final.choices[0].message.refusal == "No."


@pytest.mark.parametrize(
    ("status", "reason", "deltas", "expected"),
    [
        ("incomplete", "max_output_tokens", [TextDelta(0, "x")], "length"),
        ("incomplete", "content_filter", [TextDelta(0, "x")], "content_filter"),
        ("incomplete", "max_output_tokens", [ToolCallStart(1, "c", "f")], "length"),
        ("completed", None, [ToolCallStart(1, "c", "f")], "tool_calls"),
        ("completed", None, [], "stop"),
    ],
)
def test_finish_reasons(status: str, reason: str | None, deltas: list[Delta], expected: str) -> None:
    _, objs = run(deltas, status=status, reason=reason)
    assert objs[-1]["choices"][0]["finish_reason"] == expected
    assert objs[-1]["choices"][0]["delta"] == {}


def test_empty_stream_still_sends_role_then_finish() -> None:
    _, objs = run([UsageUpdate(input_tokens=1), Finish()])
    assert deltas_of(objs) == [{"role": "assistant", "content": ""}, {}]


def test_usage_chunk_only_with_include_usage() -> None:
    _, objs = run([TextDelta(0, "hi")], usage=USAGE, cost=orjson.Fragment(b"0.0012"))
    assert all("usage" not in o for o in objs)
    assert all(o["choices"] for o in objs)

    raw, objs = run([TextDelta(0, "hi")], include_usage=True, usage=USAGE, cost=orjson.Fragment(b"0.0012"))
    assert [o["usage"] for o in objs[:-1]] == [None, None, None]
    last = objs[-1]
    assert last["choices"] == []
    assert last["usage"] == {
        "prompt_tokens": 53,
        "completion_tokens": 15,
        "total_tokens": 68,
        "prompt_tokens_details": {"cached_tokens": 10, "cache_write_tokens": 0},
        "completion_tokens_details": {"reasoning_tokens": 4},
        "cost_usd": 0.0012,
    }
    assert b'"cost_usd":0.0012}' in raw
    assert objs[-2]["choices"][0]["finish_reason"] == "stop"

    _, objs = run([TextDelta(0, "hi")], include_usage=True, usage=USAGE, cost=None)
    assert objs[-1]["usage"]["cost_usd"] is None
    _, objs = run([TextDelta(0, "hi")], include_usage=True, usage=None)
    assert objs[-1]["choices"] == [] and objs[-1]["usage"] is None


def test_tollway_object_goes_on_the_last_chunk() -> None:
    tollway = {"provider": "anthropic", "cost_usd": Decimal("0.000150"), "fidelity": {"dropped": ["n"]}}
    raw, objs = run([TextDelta(0, "hi")], tollway=tollway)
    assert [("tollway" in o) for o in objs] == [False, False, True]
    assert b'"cost_usd":0.000150' in raw
    assert objs[-1]["tollway"]["fidelity"] == {"dropped": ["n"]}
    _, objs = run([TextDelta(0, "hi")], include_usage=True, usage=USAGE, tollway={"provider": "x"})
    assert [("tollway" in o) for o in objs] == [False, False, False, True]
    assert objs[-1]["choices"] == []


def test_error_frame_then_done() -> None:
    enc = ChatStreamEncoder(ID, CREATED, MODEL, True)
    head = enc.feed(TextDelta(0, "partial"))
    assert enc.feed(StreamError("upstream broke", code="overloaded")) == b""
    err = upstream_error("anthropic", 529, "Overloaded")
    tail = enc.error(err)
    payloads = frames(head + tail)
    assert payloads[-1] == b"[DONE]"
    assert orjson.loads(payloads[-2]) == {
        "error": {
            "message": "anthropic: Overloaded",
            "type": "overloaded_error",
            "param": None,
            "code": "provider_overloaded",
        }
    }
    # nothing after the stream is closed
    assert enc.feed(TextDelta(0, "late")) == b""
    assert enc.finish("completed", None, None, None, None) == b""
    assert enc.error(err) == b""


def test_finish_is_terminal() -> None:
    enc = ChatStreamEncoder(ID, CREATED, MODEL, False)
    assert enc.finish("completed", None, None, None, None).endswith(b"data: [DONE]\n\n")
    assert enc.feed(TextDelta(0, "late")) == b""
    assert enc.finish("completed", None, None, None, None) == b""
    assert enc.error(GatewayError(500, "x")) == b""


def test_json_stays_on_one_line_and_model_id_is_escaped() -> None:
    enc = ChatStreamEncoder('id"\n', CREATED, "we\nird\u2028", False)
    raw = enc.feed(TextDelta(0, "line1\nline2\r\n\u2028")) + enc.finish("completed", None, None, None, None)
    objs = chunks(raw)
    assert objs[1]["choices"][0]["delta"]["content"] == "line1\nline2\r\n\u2028"
    assert objs[0]["model"] == "we\nird\u2028" and objs[0]["id"] == 'id"\n'
    assert b"\r" not in raw


def test_chunk_shape_mirrors_a_recorded_openai_stream() -> None:
    """Same keys per chunk kind as a real OpenAI tool-call stream with include_usage (minus the fields we
    never have: system_fingerprint, service_tier, obfuscation)."""
    real = chunks(RECORDED_STREAM.read_bytes())
    _, ours = run(
        [ToolCallStart(0, "call_1", "get_capital"), ToolCallArgsDelta(0, '{"country":"UK"}')],
        include_usage=True,
        usage=USAGE,
    )
    unavailable = {"system_fingerprint", "service_tier", "obfuscation"}
    for obj in real:
        conforms(obj)
    assert {k for k in real[-1] if k not in unavailable} == set(ours[-1]) - {"tollway"}
    assert real[-1]["choices"] == [] == ours[-1]["choices"]
    assert {k for k in real[-2] if k not in unavailable} == set(ours[-2])
    assert real[-2]["choices"][0]["finish_reason"] == ours[-2]["choices"][0]["finish_reason"] == "tool_calls"
    assert set(real[1]["choices"][0]["delta"]["tool_calls"][0]) == set(ours[2]["choices"][0]["delta"]["tool_calls"][0])


def _client(body: bytes) -> openai.OpenAI:
    def handler(request: httpx.Request) -> httpx.Response:
        return httpx.Response(200, content=body, headers={"content-type": "text/event-stream"})

    return openai.OpenAI(
        api_key="k", base_url="http://tollway.test/v1", http_client=httpx.Client(transport=httpx.MockTransport(handler))
    )


def test_official_sdk_stream_reader() -> None:
    raw, _ = run(
        [TextDelta(0, "Hi "), TextDelta(0, "there"), ToolCallStart(1, "call_9", "f"), ToolCallArgsDelta(1, "{}")],
        include_usage=True,
        usage=USAGE,
        cost=orjson.Fragment(b"0.5"),
    )
    stream = _client(raw).chat.completions.create(
        model="m", messages=[{"role": "user", "content": "q"}], stream=True, stream_options={"include_usage": True}
    )
    got = list(stream)
    assert "".join(c.choices[0].delta.content or "" for c in got if c.choices) == "Hi there"
    assert got[-1].usage is not None and got[-1].usage.total_tokens == 68
    assert got[-2].choices[0].finish_reason == "tool_calls"


def test_official_sdk_raises_on_error_frame() -> None:
    enc = ChatStreamEncoder(ID, CREATED, MODEL, False)
    raw = enc.feed(TextDelta(0, "par")) + enc.error(GatewayError(502, "upstream went away", type="server_error"))
    stream = _client(raw).chat.completions.create(model="m", messages=[{"role": "user", "content": "q"}], stream=True)
    seen: list[str] = []
    with pytest.raises(openai.APIError, match="upstream went away"):
        for chunk in stream:
            seen.append(chunk.choices[0].delta.content or "")
    assert "".join(seen) == "par"

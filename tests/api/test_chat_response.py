"""Canonical response -> ``chat.completion``: shape, finish reasons, usage/cost, and conformance with OpenAI's
OpenAPI schema and the official SDK models."""

from __future__ import annotations

import json
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
from openai.types.chat import ChatCompletion
from referencing import Registry
from referencing.jsonschema import DRAFT202012

from tollway.api.chat_response import chat_completion_json, finish_reason
from tollway.core.types import CanonicalResponse, Usage

SHARED = Path(__file__).resolve().parents[2] / ".." / "shared"
OPENAPI = SHARED / "specs" / "open-responses" / "openai-openapi" / "openapi.yaml"
DOC_URI = "urn:openai-openapi"


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
    doc = _nullable(yaml.load(OPENAPI.read_text(), Loader=getattr(yaml, "CSafeLoader", yaml.SafeLoader)))
    registry: Registry[Any] = Registry().with_resource(DOC_URI, DRAFT202012.create_resource(doc))
    return Draft202012Validator({"$ref": f"{DOC_URI}#/components/schemas/{name}"}, registry=registry)


def roundtrip(obj: dict[str, Any]) -> dict[str, Any]:
    data = orjson.loads(orjson.dumps(obj))
    assert isinstance(data, dict)
    return data


def conforms(obj: dict[str, Any]) -> dict[str, Any]:
    data = roundtrip(obj)
    errors = sorted(validator("CreateChatCompletionResponse").iter_errors(data), key=str)
    assert not errors, [f"{list(e.absolute_path)}: {e.message}" for e in errors]
    ChatCompletion.model_validate(data)
    return data


def render(resp: CanonicalResponse, **kw: Any) -> dict[str, Any]:
    args: dict[str, Any] = {
        "completion_id": "chatcmpl-123",
        "created": 1_700_000_000,
        "model": "gpt-4o-mini",
        "cost_usd": orjson.Fragment(b"0.000123450"),
        "tollway": None,
    }
    args.update(kw)
    return conforms(chat_completion_json(resp, **args))


def text_msg(*texts: str, annotations: list[dict[str, Any]] | None = None) -> dict[str, Any]:
    return {
        "type": "message",
        "role": "assistant",
        "id": "msg_1",
        "status": "completed",
        "content": [{"type": "output_text", "text": t, "annotations": annotations or []} for t in texts],
    }


def fcall(call_id: str, name: str, args: str) -> dict[str, Any]:
    return {"type": "function_call", "call_id": call_id, "name": name, "arguments": args, "status": "completed"}


USAGE = Usage(input_tokens=100, output_tokens=20, cached_tokens=40, cache_write_tokens=5, reasoning_tokens=8)


def test_text_completion() -> None:
    data = render(CanonicalResponse(output=[text_msg("Hello ", "world")], usage=USAGE))
    assert data["id"] == "chatcmpl-123"
    assert data["object"] == "chat.completion"
    assert data["created"] == 1_700_000_000
    assert data["model"] == "gpt-4o-mini"
    (choice,) = data["choices"]
    assert choice == {
        "index": 0,
        "message": {"role": "assistant", "content": "Hello world", "refusal": None, "annotations": []},
        "logprobs": None,
        "finish_reason": "stop",
    }
    assert data["usage"] == {
        "prompt_tokens": 100,
        "completion_tokens": 20,
        "total_tokens": 120,
        "prompt_tokens_details": {"cached_tokens": 40, "cache_write_tokens": 5},
        "completion_tokens_details": {"reasoning_tokens": 8},
        "cost_usd": 0.00012345,
    }
    assert "tollway" not in data and "service_tier" not in data and "system_fingerprint" not in data


def test_cost_is_emitted_as_exact_decimal_text() -> None:
    out = chat_completion_json(
        CanonicalResponse(output=[text_msg("x")], usage=USAGE),
        completion_id="c",
        created=1,
        model="m",
        cost_usd=orjson.Fragment(b"0.000123450"),
        tollway=None,
    )
    assert b'"cost_usd":0.000123450' in orjson.dumps(out)


def test_parallel_tool_calls() -> None:
    resp = CanonicalResponse(
        output=[fcall("call_a", "get_weather", '{"city":"Paris"}'), fcall("call_b", "get_time", "{}")],
        usage=USAGE,
    )
    data = render(resp)
    message = data["choices"][0]["message"]
    assert message["content"] is None
    assert message["tool_calls"] == [
        {"id": "call_a", "type": "function", "function": {"name": "get_weather", "arguments": '{"city":"Paris"}'}},
        {"id": "call_b", "type": "function", "function": {"name": "get_time", "arguments": "{}"}},
    ]
    assert data["choices"][0]["finish_reason"] == "tool_calls"
    sdk = ChatCompletion.model_validate(data)
    tool_calls = sdk.choices[0].message.tool_calls
    assert tool_calls is not None and [tc.id for tc in tool_calls] == ["call_a", "call_b"]


def test_text_then_tool_call() -> None:
    data = render(CanonicalResponse(output=[text_msg("Let me check."), fcall("c1", "f", "{}")]))
    message = data["choices"][0]["message"]
    assert message["content"] == "Let me check."
    assert len(message["tool_calls"]) == 1
    assert data["choices"][0]["finish_reason"] == "tool_calls"


def test_reasoning_content() -> None:
    reasoning = {
        "type": "reasoning",
        "id": "rs_1",
        "summary": [{"type": "summary_text", "text": "summary"}],
        "content": [{"type": "reasoning_text", "text": "step 1. "}, {"type": "reasoning_text", "text": "step 2."}],
        "encrypted_content": "tw1.anthropic.xyz",
    }
    data = render(CanonicalResponse(output=[reasoning, text_msg("42")], usage=USAGE))
    message = data["choices"][0]["message"]
    assert message["reasoning_content"] == "step 1. step 2."
    assert message["content"] == "42"
    summary_only = {"type": "reasoning", "summary": [{"type": "summary_text", "text": "**Plan** do it"}], "content": []}
    data = render(CanonicalResponse(output=[summary_only, text_msg("ok")]))
    assert data["choices"][0]["message"]["reasoning_content"] == "**Plan** do it"
    opaque = {"type": "reasoning", "summary": [], "encrypted_content": "gAAA"}
    data = render(CanonicalResponse(output=[opaque, text_msg("ok")]))
    assert "reasoning_content" not in data["choices"][0]["message"]


def test_length_and_content_filter() -> None:
    data = render(
        CanonicalResponse(output=[text_msg("trunc")], status="incomplete", incomplete_reason="max_output_tokens")
    )
    assert data["choices"][0]["finish_reason"] == "length"
    data = render(CanonicalResponse(output=[text_msg("")], status="incomplete", incomplete_reason="content_filter"))
    assert data["choices"][0]["finish_reason"] == "content_filter"
    # a tool call cut short by the token limit is a length stop, not a tool_calls one
    data = render(
        CanonicalResponse(output=[fcall("c", "f", '{"a":')], status="incomplete", incomplete_reason="max_output_tokens")
    )
    assert data["choices"][0]["finish_reason"] == "length"


@pytest.mark.parametrize(
    ("status", "reason", "tools", "expected"),
    [
        ("completed", None, False, "stop"),
        ("completed", None, True, "tool_calls"),
        ("incomplete", "max_output_tokens", False, "length"),
        ("incomplete", "max_output_tokens", True, "length"),
        ("incomplete", "content_filter", False, "content_filter"),
        ("incomplete", "something_else", False, "stop"),
        ("failed", None, True, "stop"),
    ],
)
def test_finish_reason_table(status: str, reason: str | None, tools: bool, expected: str) -> None:
    assert finish_reason(status, reason, tools) == expected


def test_refusal() -> None:
    refusal = {"type": "message", "role": "assistant", "content": [{"type": "refusal", "refusal": "I can't help."}]}
    data = render(CanonicalResponse(output=[refusal]))
    message = data["choices"][0]["message"]
    assert message["content"] is None
    assert message["refusal"] == "I can't help."


def test_empty_answer_has_empty_string_content() -> None:
    data = render(CanonicalResponse(output=[]))
    assert data["choices"][0]["message"]["content"] == ""
    assert data["choices"][0]["finish_reason"] == "stop"


def test_unpriced_cost_is_null_and_unknown_usage_is_omitted() -> None:
    data = render(
        CanonicalResponse(output=[text_msg("x")], usage=Usage(input_tokens=3, output_tokens=1)), cost_usd=None
    )
    assert data["usage"]["cost_usd"] is None
    assert data["usage"]["total_tokens"] == 4
    data = render(CanonicalResponse(output=[text_msg("x")], usage=None), cost_usd=None)
    assert "usage" not in data


def test_url_citations_are_converted_with_offsets() -> None:
    cite = {"type": "url_citation", "start_index": 0, "end_index": 4, "url": "https://a.test", "title": "A"}
    msg = text_msg("abc ", "Site", annotations=[cite])
    data = render(CanonicalResponse(output=[msg]))
    message = data["choices"][0]["message"]
    assert message["content"] == "abc Site"
    assert message["annotations"] == [
        {
            "type": "url_citation",
            "url_citation": {"start_index": 0, "end_index": 4, "url": "https://a.test", "title": "A"},
        },
        {
            "type": "url_citation",
            "url_citation": {"start_index": 4, "end_index": 8, "url": "https://a.test", "title": "A"},
        },
    ]


def test_tollway_and_service_tier() -> None:
    tollway = {"provider": "anthropic", "fidelity": {"dropped": ["logit_bias"], "approximated": []}}
    data = render(CanonicalResponse(output=[text_msg("x")]), tollway=tollway, service_tier="fast")
    assert data["tollway"] == tollway
    assert data["service_tier"] == "priority"
    assert render(CanonicalResponse(output=[text_msg("x")]), service_tier="default")["service_tier"] == "default"


def test_recorded_openai_responses_conform_to_the_same_schema() -> None:
    """Guard for the schema loader itself: real OpenAI chat bodies must validate, and a broken one must not."""
    wire = SHARED / "specs" / "providers" / "openai" / "wire"
    real = json.loads((wire / "test_max_completion_tokens[o3-mini].00.response.json").read_text())
    real["choices"][0]["logprobs"] = None
    assert not list(validator("CreateChatCompletionResponse").iter_errors(real))
    real["choices"][0]["finish_reason"] = "done"
    assert list(validator("CreateChatCompletionResponse").iter_errors(real))


def test_official_sdk_client_reads_the_body() -> None:
    """The whole JSON body through ``openai.OpenAI`` (mock transport, no network)."""
    resp = CanonicalResponse(
        output=[text_msg("Paris"), fcall("call_1", "lookup", '{"q":"x"}')],
        usage=USAGE,
    )
    payload = orjson.dumps(
        chat_completion_json(
            resp,
            completion_id="chatcmpl-9",
            created=5,
            model="m",
            cost_usd=orjson.Fragment(str(Decimal("0.5")).encode()),
            tollway={"provider": "mock"},
        )
    )

    def handler(request: httpx.Request) -> httpx.Response:
        return httpx.Response(200, content=payload, headers={"content-type": "application/json"})

    client = openai.OpenAI(
        api_key="k", base_url="http://tollway.test/v1", http_client=httpx.Client(transport=httpx.MockTransport(handler))
    )
    completion = client.chat.completions.create(model="m", messages=[{"role": "user", "content": "q"}])
    assert completion.id == "chatcmpl-9"
    assert completion.choices[0].message.content == "Paris"
    assert completion.choices[0].finish_reason == "tool_calls"
    assert completion.usage is not None and completion.usage.prompt_tokens_details is not None
    assert completion.usage.prompt_tokens_details.cached_tokens == 40
    assert completion.model_extra == {"tollway": {"provider": "mock"}}

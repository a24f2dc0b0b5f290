"""MistralAdapter, request side: every recorded Mistral request reproduced from an equivalent canonical request,
and Mistral's differences from OpenAI (fields, tool choice, call ids, prefix, reasoning round trip, errors).
Responses and streams are in test_mistral_response.py."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import orjson
import pytest

from tests.mock.test_mistral_spec import check_mistral
from tollway.core import reasoning_state
from tollway.core.types import CanonicalRequest, Fidelity, FunctionTool, Item, TextFormat, ToolChoice
from tollway.providers.base import ProviderSettings
from tollway.providers.mistral import MistralAdapter, mistral_call_id
from tollway.providers.registry import adapter_for

WIRE = Path(__file__).resolve().parents[2] / ".." / "shared" / "specs" / "providers" / "mistral" / "wire"
ADAPTER = MistralAdapter()
SETTINGS = ProviderSettings(name="mistral", kind="mistral", base_url="https://api.mistral.ai/v1", api_key="mk")
MISTRAL_STATE = reasoning_state.wrap("mistral", {})


def _recorded(base: str) -> Any:
    return json.loads((WIRE / f"{base}.request.json").read_bytes())


def _build(req: CanonicalRequest, model: str | None = None) -> tuple[dict[str, Any], Fidelity]:
    fidelity = Fidelity()
    upstream = ADAPTER.build_request(req, model or req.model, SETTINGS, fidelity)
    body = orjson.loads(upstream.body)
    assert isinstance(body, dict)
    check_mistral("ChatCompletionRequest", body)  # Mistral refuses anything outside its schema
    return body, fidelity


def _user(text: str) -> Item:
    return {"type": "message", "role": "user", "content": [{"type": "input_text", "text": text}]}


def _system(text: str) -> Item:
    return {"type": "message", "role": "system", "content": [{"type": "input_text", "text": text}]}


def _assistant(text: str) -> Item:
    return {
        "type": "message",
        "role": "assistant",
        "content": [{"type": "output_text", "text": text, "annotations": []}],
    }


def _call(call_id: str, name: str = "get_weather", arguments: str = '{"city": "Paris"}') -> Item:
    return {"type": "function_call", "call_id": call_id, "name": name, "arguments": arguments}


def _output(call_id: str, output: str) -> Item:
    return {"type": "function_call_output", "call_id": call_id, "output": output}


def _reasoning(*texts: str, state: str | None = MISTRAL_STATE) -> Item:
    item: Item = {"type": "reasoning", "summary": [], "content": [{"type": "reasoning_text", "text": t} for t in texts]}
    if state is not None:
        item["encrypted_content"] = state
    return item


def _normalize(body: dict[str, Any]) -> dict[str, Any]:
    """Spell both sides the same way where Mistral's spec gives defaults: null fields are unset, ``prefix:
    false``/empty ``tool_calls``/a tool call's ``index`` are defaults, a tool's ``type`` defaults to
    ``function``, an assistant message with tool calls has no content ([] and null alike), and a content list
    of text chunks only is the same text as one string (joined by newlines)."""
    out = {k: v for k, v in body.items() if v is not None}
    messages = []
    for message in out["messages"]:
        m = {k: v for k, v in message.items() if v is not None}
        if m.get("prefix") is False:
            del m["prefix"]
        if m.get("tool_calls") == []:
            del m["tool_calls"]
        if "tool_calls" in m:
            m["tool_calls"] = [
                {"type": "function", **{k: v for k, v in c.items() if k != "index"}} for c in m["tool_calls"]
            ]
            if m.get("content") in ([], "", None):
                m.pop("content", None)
        content = m.get("content")
        if isinstance(content, list) and content and all(c.get("type") == "text" for c in content):
            m["content"] = "\n".join(c["text"] for c in content)
        messages.append(m)
    out["messages"] = messages
    if "tools" in out:
        out["tools"] = [{"type": "function", **t} for t in out["tools"]]
    return out


WEATHER_STRICT = FunctionTool(
    "get_weather",
    "Get the current weather for a city.",
    {"additionalProperties": False, "properties": {"city": {"type": "string"}}, "required": ["city"], "type": "object"},
)
WEATHER = FunctionTool(
    "get_weather",
    "Get weather for a city",
    {"properties": {"city": {"type": "string"}}, "required": ["city"], "type": "object"},
)
PREFIX = " ".join(["Retain this instruction prefix for the entire conversation."] * 24)


def _cases() -> dict[str, CanonicalRequest]:
    thinking = _recorded("test_mistral_model_thinking_part.01")["messages"][1]["content"]
    thoughts = [t["text"] for t in thinking[0]["thinking"]]
    common: dict[str, Any] = {"top_p": 1.0, "extra": {"n": 1}}
    return {
        "test_mistral_forwards_penalties.00": CanonicalRequest(
            "mistral-large-latest", [_user("hello")], presence_penalty=0.5, frequency_penalty=0.25, **common
        ),
        "test_mistral_history_uses_prompt_cache.00": CanonicalRequest(
            "mistral-large-latest",
            [_system(PREFIX), _user("Reply with exactly: cache probe one.")],
            prompt_cache_key="pydantic-ai-test-mistral-history-cache",
            **common,
        ),
        "test_mistral_history_uses_prompt_cache.01": CanonicalRequest(
            "mistral-large-latest",
            [
                _system(PREFIX),
                _user("Reply with exactly: cache probe one."),
                _assistant("cache probe one."),
                _user("Reply with exactly: cache probe two."),
            ],
            prompt_cache_key="pydantic-ai-test-mistral-history-cache",
            **common,
        ),
        "test_mistral_model_thinking_part.01": CanonicalRequest(
            "magistral-medium-latest",
            [
                _user("How do I cross the street?"),
                _reasoning(*thoughts),
                _assistant(thinking[1]["text"]),
                _user("Considering the way to cross the street, analogously, how do I cross the river?"),
            ],
            **common,
        ),
        "test_mistral_model_thinking_part_iter.00": CanonicalRequest(
            "magistral-medium-latest", [_user("How do I cross the street?")], stream=True
        ),
        "test_text_document_as_binary_content_input.00": CanonicalRequest(
            "mistral-large-latest",
            [
                {
                    "type": "message",
                    "role": "user",
                    "content": [
                        {"type": "input_text", "text": "What is the main content on this document?"},
                        {
                            "type": "input_text",
                            "text": '-----BEGIN FILE id="f58746" type="text/plain"-----\nDummy TXT file\n\n'
                            '-----END FILE id="f58746"-----',
                        },
                    ],
                }
            ],
            **common,
        ),
        "test_tool_choice_matrix[auto-mistral].00": CanonicalRequest(
            "mistral-large-latest", [_user("What's the weather in Paris?")], tools=[WEATHER_STRICT], **common
        ),
        "test_tool_choice_matrix[auto-mistral].01": CanonicalRequest(
            "mistral-large-latest",
            [_user("What's the weather in Paris?"), _call("KikbB849t"), _output("KikbB849t", "Sunny, 22C in Paris")],
            tools=[WEATHER_STRICT],
            **common,
        ),
        "test_tool_choice_matrix[required-mistral].00": CanonicalRequest(
            "mistral-large-latest",
            [_user("What's the weather in Paris?")],
            tools=[WEATHER],
            tool_choice=ToolChoice("required", raw="required"),
            **common,
        ),
        "test_tool_choice_matrix[list_single-mistral].00": CanonicalRequest(
            "mistral-large-latest",
            [_user("What's the weather in Paris?")],
            tools=[WEATHER],
            tool_choice=ToolChoice("required", raw="required"),
            **common,
        ),
        "test_tool_choice_matrix[none-mistral].00": CanonicalRequest(
            "mistral-large-latest", [_user("What's the weather in Paris?")], **common
        ),
    }


def _mistral_entries() -> list[str]:
    index = json.loads((WIRE / "INDEX.json").read_bytes())
    return [e["file_base"].removeprefix("wire/") for e in index if "api.mistral.ai/v1/chat/completions" in e["uri"]]


def test_every_recorded_request_has_a_case() -> None:
    assert sorted(_mistral_entries()) == sorted(_cases())


@pytest.mark.parametrize("base", _mistral_entries())
def test_recorded_request_reproduced(base: str) -> None:
    req = _cases()[base]
    body, fidelity = _build(req)
    assert _normalize(body) == _normalize(_recorded(base))
    assert fidelity.dropped == [] and fidelity.approximated == []


def test_request_envelope() -> None:
    upstream = ADAPTER.build_request(CanonicalRequest("m", [_user("x")]), "mistral-small-latest", SETTINGS, Fidelity())
    assert upstream.method == "POST" and upstream.url == "https://api.mistral.ai/v1/chat/completions"
    assert upstream.headers["authorization"] == "Bearer mk"
    assert upstream.stream_format == "sse"
    assert adapter_for("mistral").kind == "mistral"


def test_openai_fields_renamed_or_reported() -> None:
    req = CanonicalRequest(
        "m",
        [{"type": "message", "role": "developer", "content": [{"type": "input_text", "text": "be brief"}]}, _user("x")],
        instructions="sys",
        max_output_tokens=50,
        seed=7,
        user="u-1",
        stream=True,
        temperature=0.3,
        stop=["END"],
        top_logprobs=2,
        include=["message.output_text.logprobs", "reasoning.encrypted_content"],
        service_tier="flex",
        text_format=TextFormat("json_schema", "answer", {"type": "object"}, True),
        extra={"safe_prompt": True, "random_seed": 99, "logit_bias": {"1": 2}, "prompt_mode": "reasoning"},
    )
    fidelity = Fidelity(dropped=list(req.extra))  # what the pipeline reports before building
    body = orjson.loads(ADAPTER.build_request(req, "mistral-small-latest", SETTINGS, fidelity).body)
    check_mistral("ChatCompletionRequest", body)
    assert body["messages"][:2] == [{"role": "system", "content": "sys"}, {"role": "system", "content": "be brief"}]
    assert body["max_tokens"] == 50 and "max_completion_tokens" not in body
    assert body["random_seed"] == 7 and "seed" not in body
    assert body["stream"] is True and "stream_options" not in body
    assert body["response_format"] == {
        "type": "json_schema",
        "json_schema": {"name": "answer", "schema": {"type": "object"}, "strict": True},
    }
    assert body["safe_prompt"] is True and body["prompt_mode"] == "reasoning"
    for absent in ("user", "logprobs", "top_logprobs", "logit_bias", "service_tier"):
        assert absent not in body
    assert set(fidelity.dropped) == {
        "user",
        "top_logprobs",
        "include[0] (message.output_text.logprobs)",
        "service_tier",
        "logit_bias",
    }
    assert fidelity.approximated == []


@pytest.mark.parametrize(
    ("tier", "sent", "approximated"), [("auto", "auto", False), ("default", "standard_only", True)]
)
def test_service_tier(tier: str, sent: str, approximated: bool) -> None:
    body, fidelity = _build(CanonicalRequest("m", [_user("x")], service_tier=tier))
    assert body["service_tier"] == sent
    assert fidelity.approximated == (["service_tier"] if approximated else [])


@pytest.mark.parametrize(
    ("effort", "sent", "report"),
    [
        ("high", "high", None),
        ("none", "none", None),
        ("minimal", "none", "approx"),
        ("low", "high", "approx"),
        ("medium", "high", "approx"),
        ("xhigh", "high", "approx"),
    ],
)
def test_reasoning_effort_adjustable_models(effort: str, sent: str, report: str | None) -> None:
    body, fidelity = _build(CanonicalRequest("m", [_user("x")], reasoning_effort=effort), "mistral-small-latest")
    assert body["reasoning_effort"] == sent
    assert fidelity.approximated == (["reasoning.effort"] if report else [])


@pytest.mark.parametrize(
    ("effort", "dropped", "approximated"),
    [("high", [], []), ("none", ["reasoning.effort"], []), ("low", [], ["reasoning.effort"])],
)
def test_reasoning_effort_magistral_not_sent(effort: str, dropped: list[str], approximated: list[str]) -> None:
    body, fidelity = _build(CanonicalRequest("m", [_user("x")], reasoning_effort=effort), "magistral-small-latest")
    assert "reasoning_effort" not in body
    assert fidelity.dropped == dropped and fidelity.approximated == approximated


def test_tool_choice_forms() -> None:
    tools = [WEATHER, FunctionTool("get_time")]
    cases = [
        (ToolChoice("auto"), "auto", 2),
        (ToolChoice("none"), "none", 2),
        (ToolChoice("required"), "any", 2),
        (ToolChoice("required", ["get_time"]), {"type": "function", "function": {"name": "get_time"}}, 2),
        (ToolChoice("auto", ["get_time"]), "auto", 1),
    ]
    for choice, sent, count in cases:
        body, _ = _build(
            CanonicalRequest("m", [_user("x")], tools=tools, tool_choice=choice, parallel_tool_calls=False)
        )
        assert body["tool_choice"] == sent
        assert len(body["tools"]) == count and body["parallel_tool_calls"] is False
    body, _ = _build(CanonicalRequest("m", [_user("x")], tools=tools))
    assert body["tools"][1] == {
        "type": "function",
        "function": {"name": "get_time", "parameters": {"type": "object", "properties": {}}},
    }


@pytest.mark.parametrize(
    ("given", "sent", "approximated"), [(0.7, 0.7, []), (1.5, 1.5, []), (2.0, 1.5, ["temperature"])]
)
def test_temperature_capped_at_mistral_maximum(given: float, sent: float, approximated: list[str]) -> None:
    body, fidelity = _build(CanonicalRequest("m", [_user("x")], temperature=given))
    assert body["temperature"] == sent and fidelity.approximated == approximated


def test_call_ids_mapped_deterministically() -> None:
    assert mistral_call_id("KikbB849t") == "KikbB849t"
    foreign = ["call_8f2a9c1d0e", "toolu_01A2B3C4D5E6", "abc", "KikbB849t1", "a-b_c.d:e"]
    mapped = [mistral_call_id(x) for x in foreign]
    assert all(re.fullmatch(r"[A-Za-z0-9]{9}", m) for m in mapped)
    assert len(set(mapped)) == len(mapped)
    assert mapped == [mistral_call_id(x) for x in foreign]  # stable
    req = CanonicalRequest(
        "m",
        [
            _user("weather in two cities"),
            _call("toolu_01A"),
            _call("call_B", arguments='{"city": "Rome"}'),
            _output("call_B", "rainy"),
            _output("toolu_01A", "sunny"),
        ],
    )
    body, fidelity = _build(req)
    calls = body["messages"][1]["tool_calls"]
    ids = [c["id"] for c in calls]
    assert ids == [mistral_call_id("toolu_01A"), mistral_call_id("call_B")]
    assert [m["tool_call_id"] for m in body["messages"][2:]] == [ids[1], ids[0]]
    assert fidelity.dropped == []
    assert req.input[1]["call_id"] == "toolu_01A"  # the client's items are not modified


def test_trailing_assistant_message_is_a_prefix() -> None:
    body, fidelity = _build(CanonicalRequest("m", [_user("Write a haiku"), _assistant("Autumn")]))
    assert body["messages"][-1] == {"role": "assistant", "content": "Autumn", "prefix": True}
    assert fidelity.approximated == ["input[1] (assistant prefix)"]
    body, fidelity = _build(CanonicalRequest("m", [_user("a"), _assistant("b"), _user("c")]))
    assert all("prefix" not in m for m in body["messages"]) and fidelity.approximated == []


def test_reasoning_round_trip_with_tool_calls() -> None:
    signed = reasoning_state.wrap("mistral", {"signature": "sig-123"})
    req = CanonicalRequest(
        "magistral-medium-latest",
        [
            _user("plan"),
            _reasoning("first ", "thought", state=signed),
            _call("AbCdE1234"),
            _output("AbCdE1234", "sunny"),
            _reasoning("second"),
            _assistant("done"),
            _user("next"),
        ],
    )
    body, fidelity = _build(req)
    assert body["messages"][1] == {
        "role": "assistant",
        "content": [
            {
                "type": "thinking",
                "thinking": [{"type": "text", "text": "first "}, {"type": "text", "text": "thought"}],
                "signature": "sig-123",
            }
        ],
        "tool_calls": [
            {
                "id": "AbCdE1234",
                "type": "function",
                "function": {"name": "get_weather", "arguments": '{"city": "Paris"}'},
            }
        ],
    }
    assert body["messages"][3] == {
        "role": "assistant",
        "content": [
            {"type": "thinking", "thinking": [{"type": "text", "text": "second"}]},
            {"type": "text", "text": "done"},
        ],
    }
    assert body["messages"][4]["role"] == "user"
    assert fidelity.dropped == [] and fidelity.approximated == []


def test_foreign_and_stateless_reasoning_dropped_and_reported() -> None:
    anthropic = reasoning_state.wrap("anthropic", {"signature": "s"})
    req = CanonicalRequest(
        "m",
        [
            _user("a"),
            _reasoning("claude thought", state=anthropic),
            _assistant("x"),
            _reasoning("openai thought", state="gAAAAopaque"),
            _reasoning("plain thought", state=None),
            _reasoning(state=None),  # empty: nothing to report
            _reasoning("broken", state="tw1.mistral.!!!"),
            _assistant("y"),
            _user("b"),
        ],
    )
    body, fidelity = _build(req)
    assert fidelity.dropped == [
        "input[1].reasoning (state from anthropic)",
        "input[3].reasoning (state from openai)",
        "input[4].reasoning (no provider state)",
        "input[6].reasoning (corrupt state)",
    ]
    assert [m["role"] for m in body["messages"]] == ["user", "assistant", "assistant", "user"]
    assert all("thinking" not in orjson.dumps(m).decode() for m in body["messages"])


def test_reasoning_alone_before_user_message() -> None:
    body, _ = _build(CanonicalRequest("m", [_user("a"), _reasoning("hmm"), _user("b")]))
    assert body["messages"][1] == {
        "role": "assistant",
        "content": [{"type": "thinking", "thinking": [{"type": "text", "text": "hmm"}]}],
    }


def test_image_input() -> None:
    url = "data:image/png;base64,iVBORw0KGgo="
    item = {
        "type": "message",
        "role": "user",
        "content": [
            {"type": "input_text", "text": "what is it"},
            {"type": "input_image", "image_url": url, "detail": "low"},
        ],
    }
    body, fidelity = _build(CanonicalRequest("pixtral-large-latest", [item]))
    assert body["messages"][0]["content"] == [
        {"type": "text", "text": "what is it"},
        {"type": "image_url", "image_url": {"url": url, "detail": "low"}},
    ]
    assert fidelity.dropped == []


# --------------------------------------------------------------------------------------------------
# errors
# --------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("body", "message", "code"),
    [
        (
            {
                "object": "error",
                "message": "Invalid model: nope",
                "type": "invalid_model",
                "param": None,
                "code": "1500",
            },
            "Invalid model: nope",
            "1500",
        ),
        (
            {
                "object": "error",
                "message": {
                    "detail": [
                        {
                            "type": "float_type",
                            "loc": ["body", "top_p"],
                            "msg": "Input should be a valid number",
                            "input": None,
                        }
                    ]
                },
                "type": "invalid_request_message_error",
                "param": None,
                "code": None,
            },
            "body.top_p: Input should be a valid number",
            "invalid_request_message_error",
        ),
        (
            {
                "detail": [
                    {
                        "type": "extra_forbidden",
                        "loc": ["body", "stream_options"],
                        "msg": "Extra inputs are not permitted",
                        "input": {},
                    }
                ]
            },
            "body.stream_options: Extra inputs are not permitted",
            None,
        ),
        ({"detail": "Forbidden"}, "Forbidden", None),
        ({"message": "Unauthorized", "request_id": "abc"}, "Unauthorized", None),
        (
            {"object": "error", "message": "Service tier capacity exceeded for this model.", "type": "x", "code": 3505},
            "Service tier capacity exceeded for this model.",
            "x",
        ),
        ({"message": "Requests rate limit exceeded"}, "Requests rate limit exceeded", None),
    ],
)
def test_error_bodies_keep_message(body: dict[str, Any], message: str, code: str | None) -> None:
    assert ADAPTER.error_message(orjson.dumps(body)) == (message, code)


def test_error_integer_code_kept_when_no_type() -> None:
    body = {"object": "error", "message": "capacity", "code": 3505}
    assert ADAPTER.error_message(orjson.dumps(body)) == ("capacity", "3505")


def test_error_non_json_body() -> None:
    assert ADAPTER.error_message(b"<html>Bad gateway</html>") == ("<html>Bad gateway</html>", None)
    assert ADAPTER.error_message(b"") == ("upstream returned an empty error body", None)

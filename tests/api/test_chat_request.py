"""Chat Completions request -> canonical request: validation (errors name the field) and mapping."""

from __future__ import annotations

import copy
import json
import re
from pathlib import Path
from typing import Any

import pytest

from tollway.api.chat_request import DOOR_EXTRA_KEYS, include_usage, parse_chat_request
from tollway.core.errors import GatewayError
from tollway.core.types import FunctionTool, TextFormat, ToolChoice

OPENAI = Path(__file__).resolve().parents[2] / ".." / "shared" / "specs" / "providers" / "openai"

WEATHER_TOOL = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "Weather for a city",
        "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]},
        "strict": True,
    },
}


def body(**overrides: Any) -> dict[str, Any]:
    base: dict[str, Any] = {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "hi"}]}
    base.update(overrides)
    return base


def with_tools(**overrides: Any) -> dict[str, Any]:
    return body(tools=[copy.deepcopy(WEATHER_TOOL)], **overrides)


def user(content: Any) -> dict[str, Any]:
    return body(messages=[{"role": "user", "content": content}])


def msgs(*messages: Any) -> dict[str, Any]:
    return body(messages=list(messages))


def call(call_id: str = "call_1", name: str = "get_weather", args: str = '{"city":"Paris"}') -> dict[str, Any]:
    return {"id": call_id, "type": "function", "function": {"name": name, "arguments": args}}


def reject(raw: object) -> GatewayError:
    with pytest.raises(GatewayError) as info:
        parse_chat_request(raw)
    err = info.value
    assert err.status == 400
    assert err.type == "invalid_request_error"
    return err


# --------------------------------------------------------------------------------------------------
# validation: every bad body names the offending field
# --------------------------------------------------------------------------------------------------

BAD_BODIES: list[tuple[str, object, str | None]] = [
    ("body is a list", [], None),
    ("body is a string", "hello", None),
    ("model missing", {"messages": [{"role": "user", "content": "x"}]}, "model"),
    ("model not a string", body(model=4), "model"),
    ("model empty", body(model=""), "model"),
    ("messages missing", {"model": "m"}, "messages"),
    ("messages not a list", body(messages={"role": "user"}), "messages"),
    ("messages empty", body(messages=[]), "messages"),
    ("message not an object", body(messages=["hi"]), "messages[0]"),
    ("role missing", msgs({"content": "x"}), "messages[0].role"),
    ("role unknown", msgs({"role": "user", "content": "x"}, {"role": "robot", "content": "x"}), "messages[1].role"),
    ("role not a string", msgs({"role": 3, "content": "x"}), "messages[0].role"),
    ("function role", msgs({"role": "function", "name": "f", "content": "x"}), "messages[0].role"),
    ("user content missing", msgs({"role": "user"}), "messages[0].content"),
    ("user content number", user(12), "messages[0].content"),
    ("user content empty list", user([]), "messages[0].content"),
    ("part not an object", user(["hello"]), "messages[0].content[0]"),
    ("part type missing", user([{"text": "x"}]), "messages[0].content[0].type"),
    ("part type unknown", user([{"type": "video", "url": "x"}]), "messages[0].content[0].type"),
    ("text part without text", user([{"type": "text"}]), "messages[0].content[0].text"),
    ("text part text number", user([{"type": "text", "text": 1}]), "messages[0].content[0].text"),
    ("image without image_url", user([{"type": "image_url"}]), "messages[0].content[0].image_url"),
    ("image_url a string", user([{"type": "image_url", "image_url": "http://x"}]), "messages[0].content[0].image_url"),
    (
        "image url missing",
        user([{"type": "text", "text": "a"}, {"type": "image_url", "image_url": {"detail": "low"}}]),
        "messages[0].content[1].image_url.url",
    ),
    (
        "image url number",
        user([{"type": "image_url", "image_url": {"url": 5}}]),
        "messages[0].content[0].image_url.url",
    ),
    (
        "image detail bad",
        user([{"type": "image_url", "image_url": {"url": "http://x/a.png", "detail": "ultra"}}]),
        "messages[0].content[0].image_url.detail",
    ),
    ("audio part unsupported", user([{"type": "input_audio", "input_audio": {}}]), "messages[0].content[0].type"),
    ("file part unsupported", user([{"type": "file", "file": {"file_id": "f"}}]), "messages[0].content[0].type"),
    ("image in system", msgs({"role": "system", "content": [{"type": "image_url"}]}), "messages[0].content[0].type"),
    ("refusal part in user", user([{"type": "refusal", "refusal": "no"}]), "messages[0].content[0].type"),
    ("developer content null", msgs({"role": "developer", "content": None}), "messages[0].content"),
    ("name not a string", msgs({"role": "user", "content": "x", "name": 1}), "messages[0].name"),
    ("tool without tool_call_id", msgs({"role": "tool", "content": "x"}), "messages[0].tool_call_id"),
    ("tool_call_id number", msgs({"role": "tool", "content": "x", "tool_call_id": 1}), "messages[0].tool_call_id"),
    ("tool content missing", msgs({"role": "tool", "tool_call_id": "c"}), "messages[0].content"),
    (
        "tool content image",
        msgs({"role": "tool", "tool_call_id": "c", "content": [{"type": "image_url", "image_url": {"url": "u"}}]}),
        "messages[0].content[0].type",
    ),
    ("assistant without content", msgs({"role": "assistant"}), "messages[0].content"),
    ("assistant content number", msgs({"role": "assistant", "content": 1}), "messages[0].content"),
    (
        "assistant image part",
        msgs({"role": "assistant", "content": [{"type": "image_url", "image_url": {"url": "u"}}]}),
        "messages[0].content[0].type",
    ),
    ("assistant refusal number", msgs({"role": "assistant", "refusal": 1}), "messages[0].refusal"),
    ("tool_calls not a list", msgs({"role": "assistant", "tool_calls": {}}), "messages[0].tool_calls"),
    ("tool call not an object", msgs({"role": "assistant", "tool_calls": ["x"]}), "messages[0].tool_calls[0]"),
    (
        "tool call id missing",
        msgs({"role": "assistant", "tool_calls": [{"type": "function", "function": {"name": "f", "arguments": "{}"}}]}),
        "messages[0].tool_calls[0].id",
    ),
    (
        "tool call type custom",
        msgs({"role": "assistant", "tool_calls": [{**call(), "type": "custom"}]}),
        "messages[0].tool_calls[0].type",
    ),
    (
        "tool call function missing",
        msgs({"role": "assistant", "tool_calls": [call(), {"id": "c2", "type": "function"}]}),
        "messages[0].tool_calls[1].function",
    ),
    (
        "tool call name missing",
        msgs({"role": "assistant", "tool_calls": [{"id": "c", "type": "function", "function": {"arguments": "{}"}}]}),
        "messages[0].tool_calls[0].function.name",
    ),
    (
        "tool call arguments object",
        msgs(
            {
                "role": "assistant",
                "tool_calls": [{"id": "c", "type": "function", "function": {"name": "f", "arguments": {}}}],
            }
        ),
        "messages[0].tool_calls[0].function.arguments",
    ),
    (
        "legacy function_call",
        msgs({"role": "assistant", "content": None, "function_call": {"name": "f", "arguments": "{}"}}),
        "messages[0].function_call",
    ),
    ("temperature string", body(temperature="0.5"), "temperature"),
    ("temperature bool", body(temperature=True), "temperature"),
    ("temperature too high", body(temperature=2.5), "temperature"),
    ("temperature negative", body(temperature=-0.1), "temperature"),
    ("top_p too high", body(top_p=1.01), "top_p"),
    ("top_p bool", body(top_p=False), "top_p"),
    ("presence_penalty range", body(presence_penalty=3), "presence_penalty"),
    ("frequency_penalty type", body(frequency_penalty="1"), "frequency_penalty"),
    ("n zero", body(n=0), "n"),
    ("n bool", body(n=True), "n"),
    ("stream not bool", body(stream="yes"), "stream"),
    ("stream number", body(stream=1), "stream"),
    ("stream_options without stream", body(stream_options={"include_usage": True}), "stream_options"),
    ("stream_options with stream false", body(stream=False, stream_options={}), "stream_options"),
    ("stream_options not object", body(stream=True, stream_options=True), "stream_options"),
    (
        "include_usage not bool",
        body(stream=True, stream_options={"include_usage": "yes"}),
        "stream_options.include_usage",
    ),
    ("max_tokens float", body(max_tokens=10.5), "max_tokens"),
    ("max_tokens bool", body(max_tokens=True), "max_tokens"),
    ("max_tokens zero", body(max_tokens=0), "max_tokens"),
    ("max_completion_tokens string", body(max_completion_tokens="5"), "max_completion_tokens"),
    ("both max token fields", body(max_tokens=5, max_completion_tokens=6), "max_tokens"),
    ("seed string", body(seed="1"), "seed"),
    ("seed bool", body(seed=False), "seed"),
    ("stop number", body(stop=1), "stop"),
    ("stop list with number", body(stop=["a", 2]), "stop[1]"),
    ("user number", body(user=1), "user"),
    ("safety_identifier number", body(safety_identifier=1), "safety_identifier"),
    ("reasoning_effort bad", body(reasoning_effort="extreme"), "reasoning_effort"),
    ("reasoning_effort number", body(reasoning_effort=1), "reasoning_effort"),
    ("service_tier bad", body(service_tier="gold"), "service_tier"),
    ("metadata not object", body(metadata=[1]), "metadata"),
    ("metadata value number", body(metadata={"a": 1}), "metadata.a"),
    ("metadata too many", body(metadata={f"k{i}": "v" for i in range(17)}), "metadata"),
    ("metadata value too long", body(metadata={"k": "v" * 513}), "metadata.k"),
    ("store not bool", body(store="no"), "store"),
    ("parallel_tool_calls not bool", with_tools(parallel_tool_calls=1), "parallel_tool_calls"),
    ("prompt_cache_key number", body(prompt_cache_key=1), "prompt_cache_key"),
    ("logprobs not bool", body(logprobs="true"), "logprobs"),
    ("top_logprobs without logprobs", body(top_logprobs=2), "top_logprobs"),
    ("top_logprobs out of range", body(logprobs=True, top_logprobs=21), "top_logprobs"),
    ("logit_bias not object", body(logit_bias=[1]), "logit_bias"),
    ("logit_bias value out of range", body(logit_bias={"50256": 101}), "logit_bias.50256"),
    ("logit_bias value string", body(logit_bias={"1": "x"}), "logit_bias.1"),
    ("tools not a list", body(tools={}), "tools"),
    ("tool not an object", body(tools=["x"]), "tools[0]"),
    ("tool type missing", body(tools=[{"function": {"name": "f"}}]), "tools[0].type"),
    ("tool type web search", body(tools=[WEATHER_TOOL, {"type": "web_search"}]), "tools[1].type"),
    ("tool type custom", body(tools=[{"type": "custom", "custom": {"name": "x"}}]), "tools[0].type"),
    ("tool function missing", body(tools=[{"type": "function"}]), "tools[0].function"),
    ("tool name missing", body(tools=[{"type": "function", "function": {}}]), "tools[0].function.name"),
    ("tool name number", body(tools=[{"type": "function", "function": {"name": 1}}]), "tools[0].function.name"),
    ("tool name bad chars", body(tools=[{"type": "function", "function": {"name": "a b"}}]), "tools[0].function.name"),
    ("tool name duplicate", body(tools=[WEATHER_TOOL, WEATHER_TOOL]), "tools[1].function.name"),
    (
        "tool parameters not object",
        body(tools=[{"type": "function", "function": {"name": "f", "parameters": "x"}}]),
        "tools[0].function.parameters",
    ),
    (
        "tool strict not bool",
        body(tools=[{"type": "function", "function": {"name": "f", "strict": "yes"}}]),
        "tools[0].function.strict",
    ),
    (
        "tool description number",
        body(tools=[{"type": "function", "function": {"name": "f", "description": 3}}]),
        "tools[0].function.description",
    ),
    ("tool_choice bad string", with_tools(tool_choice="any"), "tool_choice"),
    ("tool_choice number", with_tools(tool_choice=1), "tool_choice"),
    ("tool_choice required without tools", body(tool_choice="required"), "tool_choice"),
    (
        "tool_choice unknown tool",
        with_tools(tool_choice={"type": "function", "function": {"name": "get_time"}}),
        "tool_choice.function.name",
    ),
    (
        "tool_choice named without tools",
        body(tool_choice={"type": "function", "function": {"name": "get_weather"}}),
        "tool_choice.function.name",
    ),
    ("tool_choice function missing", with_tools(tool_choice={"type": "function"}), "tool_choice.function"),
    ("tool_choice type missing", with_tools(tool_choice={"function": {"name": "x"}}), "tool_choice.type"),
    ("tool_choice custom", with_tools(tool_choice={"type": "custom", "custom": {"name": "x"}}), "tool_choice.type"),
    (
        "allowed_tools bad mode",
        with_tools(tool_choice={"type": "allowed_tools", "allowed_tools": {"mode": "none", "tools": []}}),
        "tool_choice.allowed_tools.mode",
    ),
    (
        "allowed_tools unknown tool",
        with_tools(
            tool_choice={
                "type": "allowed_tools",
                "allowed_tools": {"mode": "auto", "tools": [{"type": "function", "function": {"name": "nope"}}]},
            }
        ),
        "tool_choice.allowed_tools.tools[0].function.name",
    ),
    ("response_format not object", body(response_format="json"), "response_format"),
    ("response_format type missing", body(response_format={}), "response_format.type"),
    ("response_format type unknown", body(response_format={"type": "xml"}), "response_format.type"),
    ("json_schema missing", body(response_format={"type": "json_schema"}), "response_format.json_schema"),
    (
        "json_schema without name",
        body(response_format={"type": "json_schema", "json_schema": {"schema": {"type": "object"}}}),
        "response_format.json_schema.name",
    ),
    (
        "json_schema without schema",
        body(response_format={"type": "json_schema", "json_schema": {"name": "answer"}}),
        "response_format.json_schema.schema",
    ),
    (
        "json_schema schema not object",
        body(response_format={"type": "json_schema", "json_schema": {"name": "a", "schema": "x"}}),
        "response_format.json_schema.schema",
    ),
    (
        "json_schema strict not bool",
        body(response_format={"type": "json_schema", "json_schema": {"name": "a", "schema": {}, "strict": 1}}),
        "response_format.json_schema.strict",
    ),
]


@pytest.mark.parametrize(("raw", "param"), [(b, p) for _, b, p in BAD_BODIES], ids=[c[0] for c in BAD_BODIES])
def test_bad_bodies_name_the_field(raw: object, param: str | None) -> None:
    err = reject(raw)
    assert err.param == param
    assert err.message
    if param is not None:
        assert f"'{param}'" in err.message


def test_n_greater_than_one_is_unsupported() -> None:
    err = reject(body(n=2))
    assert (err.param, err.code) == ("n", "unsupported_value")
    assert parse_chat_request(body(n=1)).model == "gpt-4o-mini"
    assert parse_chat_request(body(n=None)).model == "gpt-4o-mini"


def test_error_codes() -> None:
    assert reject(body(temperature="x")).code == "invalid_type"
    assert reject({"model": "m"}).code == "missing_required_parameter"
    assert reject(body(temperature=9)).code == "invalid_value"
    assert reject(body(tools=[{"type": "web_search"}])).code == "unsupported_value"
    assert reject(body(messages=[])).code == "empty_array"


def test_error_renders_openai_envelope() -> None:
    env = reject(body(top_p=2)).to_json()
    assert set(env) == {"error"}
    assert set(env["error"]) == {"message", "type", "param", "code"}
    assert env["error"]["param"] == "top_p"


# --------------------------------------------------------------------------------------------------
# mapping
# --------------------------------------------------------------------------------------------------


def test_minimal_request_defaults() -> None:
    req = parse_chat_request(body())
    assert req.model == "gpt-4o-mini"
    assert req.input == [{"type": "message", "role": "user", "content": [{"type": "input_text", "text": "hi"}]}]
    assert req.instructions is None
    assert req.store is False
    assert req.stream is False
    assert req.tools == []
    assert req.tool_choice == ToolChoice()
    assert req.text_format == TextFormat()
    assert req.extra == {}
    assert req.max_output_tokens is None and req.temperature is None and req.stop is None


def test_every_role_and_part_kind() -> None:
    req = parse_chat_request(
        msgs(
            {"role": "system", "content": "be brief"},
            {"role": "developer", "content": [{"type": "text", "text": "dev 1"}, {"type": "text", "text": "dev 2"}]},
            {
                "role": "user",
                "content": [
                    {"type": "text", "text": "what is this?"},
                    {"type": "image_url", "image_url": {"url": "https://x.test/a.png"}},
                    {"type": "image_url", "image_url": {"url": "data:image/png;base64,AAAA", "detail": "high"}},
                ],
            },
            {"role": "assistant", "content": "a cat"},
            {"role": "assistant", "content": [{"type": "text", "text": "t"}, {"type": "refusal", "refusal": "r1"}]},
            {"role": "assistant", "content": None, "refusal": "I can't"},
            {"role": "system", "content": [{"type": "text", "text": "sys parts"}]},
        )
    )
    assert req.input == [
        {"type": "message", "role": "system", "content": [{"type": "input_text", "text": "be brief"}]},
        {
            "type": "message",
            "role": "developer",
            "content": [{"type": "input_text", "text": "dev 1"}, {"type": "input_text", "text": "dev 2"}],
        },
        {
            "type": "message",
            "role": "user",
            "content": [
                {"type": "input_text", "text": "what is this?"},
                {"type": "input_image", "image_url": "https://x.test/a.png", "detail": "auto"},
                {"type": "input_image", "image_url": "data:image/png;base64,AAAA", "detail": "high"},
            ],
        },
        {
            "type": "message",
            "role": "assistant",
            "content": [{"type": "output_text", "text": "a cat", "annotations": []}],
        },
        {
            "type": "message",
            "role": "assistant",
            "content": [{"type": "output_text", "text": "t", "annotations": []}, {"type": "refusal", "refusal": "r1"}],
        },
        {"type": "message", "role": "assistant", "content": [{"type": "refusal", "refusal": "I can't"}]},
        {"type": "message", "role": "system", "content": [{"type": "input_text", "text": "sys parts"}]},
    ]
    assert req.instructions is None


def test_tool_call_round_trip() -> None:
    req = parse_chat_request(
        msgs(
            {"role": "user", "content": "weather in Paris and Rome?"},
            {
                "role": "assistant",
                "content": "",
                "tool_calls": [call("call_a"), call("call_b", args='{"city":"Rome"}')],
            },
            {"role": "tool", "tool_call_id": "call_a", "content": "sunny"},
            {
                "role": "tool",
                "tool_call_id": "call_b",
                "content": [{"type": "text", "text": "rain"}, {"type": "text", "text": "y"}],
            },
            {"role": "assistant", "content": "Paris sunny", "tool_calls": [call("call_c")]},
        )
    )
    assert req.input[1:] == [
        {"type": "function_call", "call_id": "call_a", "name": "get_weather", "arguments": '{"city":"Paris"}'},
        {"type": "function_call", "call_id": "call_b", "name": "get_weather", "arguments": '{"city":"Rome"}'},
        {"type": "function_call_output", "call_id": "call_a", "output": "sunny"},
        {"type": "function_call_output", "call_id": "call_b", "output": "rainy"},
        {
            "type": "message",
            "role": "assistant",
            "content": [{"type": "output_text", "text": "Paris sunny", "annotations": []}],
        },
        {"type": "function_call", "call_id": "call_c", "name": "get_weather", "arguments": '{"city":"Paris"}'},
    ]


def test_assistant_empty_tool_calls_and_empty_text_are_kept_as_message() -> None:
    req = parse_chat_request(msgs({"role": "assistant", "content": "", "tool_calls": []}))
    assert req.input == [
        {"type": "message", "role": "assistant", "content": [{"type": "output_text", "text": "", "annotations": []}]}
    ]


def test_message_names_and_assistant_audio_are_reported_in_extra() -> None:
    req = parse_chat_request(
        msgs(
            {"role": "system", "content": "s", "name": "policy"},
            {"role": "user", "content": "u", "name": "alice"},
            {"role": "assistant", "content": "a", "audio": {"id": "audio_1"}},
        )
    )
    assert req.extra == {
        "messages[0].name": "policy",
        "messages[1].name": "alice",
        "messages[2].audio": {"id": "audio_1"},
    }
    assert all("name" not in item for item in req.input)


def test_tools_and_tool_choice_variants() -> None:
    req = parse_chat_request(with_tools(parallel_tool_calls=False))
    assert req.tools == [
        FunctionTool(
            name="get_weather",
            description="Weather for a city",
            parameters=WEATHER_TOOL["function"]["parameters"],  # type: ignore[index]
            strict=True,
        )
    ]
    assert req.parallel_tool_calls is False
    assert req.tool_choice == ToolChoice("auto", None, "auto")
    for mode in ("auto", "none", "required"):
        assert parse_chat_request(with_tools(tool_choice=mode)).tool_choice == ToolChoice(mode, None, mode)
    named = {"type": "function", "function": {"name": "get_weather"}}
    assert parse_chat_request(with_tools(tool_choice=named)).tool_choice == ToolChoice(
        "required", ["get_weather"], named
    )
    allowed = {
        "type": "allowed_tools",
        "allowed_tools": {"mode": "auto", "tools": [{"type": "function", "function": {"name": "get_weather"}}]},
    }
    assert parse_chat_request(with_tools(tool_choice=allowed)).tool_choice == ToolChoice(
        "auto", ["get_weather"], allowed
    )
    assert parse_chat_request(body(tool_choice="none")).tool_choice.mode == "none"
    minimal = parse_chat_request(body(tools=[{"type": "function", "function": {"name": "noop"}}])).tools
    assert minimal == [FunctionTool(name="noop")]


def test_response_format_variants() -> None:
    assert parse_chat_request(body(response_format={"type": "text"})).text_format == TextFormat("text")
    assert parse_chat_request(body(response_format={"type": "json_object"})).text_format == TextFormat("json_object")
    schema = {"type": "object", "properties": {"a": {"type": "integer"}}, "required": ["a"]}
    fmt = parse_chat_request(
        body(
            response_format={
                "type": "json_schema",
                "json_schema": {"name": "answer", "schema": schema, "strict": True, "description": "d"},
            }
        )
    ).text_format
    assert fmt == TextFormat("json_schema", name="answer", schema=schema, strict=True, description="d")
    loose = parse_chat_request(
        body(response_format={"type": "json_schema", "json_schema": {"name": "x", "schema": {}}})
    ).text_format
    assert (loose.strict, loose.description) == (None, None)


def test_scalar_fields_map() -> None:
    req = parse_chat_request(
        body(
            temperature=0,
            top_p=1,
            presence_penalty=-2,
            frequency_penalty=1.5,
            stop="END",
            seed=42,
            user="u-1",
            reasoning_effort="high",
            metadata={"team": "a"},
            stream=True,
            stream_options={"include_usage": True},
            prompt_cache_key="pck",
            service_tier="flex",
            max_tokens=100,
            logprobs=True,
            top_logprobs=3,
        )
    )
    assert (req.temperature, req.top_p, req.presence_penalty, req.frequency_penalty) == (0.0, 1.0, -2.0, 1.5)
    assert isinstance(req.temperature, float)
    assert req.stop == ["END"]
    assert (req.seed, req.user, req.reasoning_effort) == (42, "u-1", "high")
    assert req.metadata == {"team": "a"}
    assert req.stream is True
    assert (req.prompt_cache_key, req.service_tier, req.max_output_tokens, req.top_logprobs) == ("pck", "flex", 100, 3)
    assert req.extra == {"stream_options": {"include_usage": True}, "logprobs": True}
    assert include_usage(req)
    assert "stream_options" in DOOR_EXTRA_KEYS


def test_max_completion_tokens_and_stop_list() -> None:
    req = parse_chat_request(body(max_completion_tokens=64, stop=["a", "b"], max_tokens=None))
    assert req.max_output_tokens == 64
    assert req.stop == ["a", "b"]
    assert parse_chat_request(body(max_tokens=7.0)).max_output_tokens == 7


def test_stream_options_and_include_usage() -> None:
    assert not include_usage(parse_chat_request(body(stream=True)))
    assert not include_usage(parse_chat_request(body(stream=True, stream_options={"include_usage": False})))
    assert not include_usage(parse_chat_request(body(stream=True, stream_options=None)))
    assert parse_chat_request(body(stream_options=None)).extra == {}


def test_safety_identifier_becomes_user_when_user_absent() -> None:
    assert parse_chat_request(body(safety_identifier="sid")).user == "sid"
    req = parse_chat_request(body(safety_identifier="sid", user="u"))
    assert req.user == "u"
    assert req.extra == {"safety_identifier": "sid"}


def test_store_is_never_canonical_but_true_is_reported() -> None:
    assert parse_chat_request(body(store=False)).extra == {}
    req = parse_chat_request(body(store=True))
    assert req.store is False
    assert req.extra == {"store": True}


def test_unknown_and_unsupported_fields_land_in_extra() -> None:
    raw = body(
        logit_bias={"50256": -100},
        modalities=["text", "audio"],
        audio={"voice": "alloy", "format": "wav"},
        prediction={"type": "content", "content": "x"},
        web_search_options={},
        functions=[{"name": "f"}],
        verbosity="low",
        something_new={"a": 1},
        ignored_null=None,
        logprobs=False,
    )
    req = parse_chat_request(raw)
    assert req.extra == {
        "logit_bias": {"50256": -100},
        "modalities": ["text", "audio"],
        "audio": {"voice": "alloy", "format": "wav"},
        "prediction": {"type": "content", "content": "x"},
        "web_search_options": {},
        "functions": [{"name": "f"}],
        "verbosity": "low",
        "something_new": {"a": 1},
    }


def test_parse_does_not_mutate_body() -> None:
    raw = with_tools(messages=[{"role": "assistant", "content": "", "tool_calls": [call()]}], stop="x")
    snapshot = copy.deepcopy(raw)
    parse_chat_request(raw)
    assert raw == snapshot


# --------------------------------------------------------------------------------------------------
# recorded real requests and the OpenAI docs examples all parse
# --------------------------------------------------------------------------------------------------


def _recorded_chat_requests() -> list[Path]:
    index = json.loads((OPENAI / "wire" / "INDEX.json").read_text())
    return [
        OPENAI / f"{entry['file_base']}.request.json" for entry in index if entry["uri"].endswith("/chat/completions")
    ]


@pytest.mark.parametrize("path", _recorded_chat_requests(), ids=lambda p: p.name)
def test_recorded_requests_parse(path: Path) -> None:
    raw = json.loads(path.read_text())
    req = parse_chat_request(raw)
    assert req.model == raw["model"]
    roles = [m["role"] for m in raw["messages"]]
    n_tool = roles.count("tool")
    assert sum(1 for i in req.input if i["type"] == "function_call_output") == n_tool
    n_calls = sum(len(m.get("tool_calls") or ()) for m in raw["messages"])
    assert sum(1 for i in req.input if i["type"] == "function_call") == n_calls
    assert [t.name for t in req.tools] == [t["function"]["name"] for t in raw.get("tools", [])]
    assert req.stream is bool(raw.get("stream"))
    top_level = {key for key in req.extra if not key.startswith("messages[")}
    assert top_level <= set(raw)
    assert top_level <= {"stream_options", "web_search_options", "prompt_cache_options"}


def test_recorded_prompt_cache_request_reports_what_it_cannot_carry() -> None:
    raw = json.loads((OPENAI / "wire" / "test_openai_chat_prompt_cache_e2e.00.request.json").read_text())
    req = parse_chat_request(raw)
    assert req.prompt_cache_key == "pydantic-ai-prompt-cache-e2e-chat"
    assert req.extra["prompt_cache_options"] == {"mode": "explicit", "ttl": "30m"}
    assert req.extra["messages[0].content[0].prompt_cache_breakpoint"] == {"mode": "explicit"}
    assert req.input[0]["content"][0] == {"type": "input_text", "text": raw["messages"][0]["content"][0]["text"]}


def test_recorded_tool_conversation_maps_in_order() -> None:
    raw = json.loads((OPENAI / "wire" / "test_multiple_agent_tool_calls.03.request.json").read_text())
    types = [(i["type"], i.get("role")) for i in parse_chat_request(raw).input]
    assert types == [
        ("message", "user"),
        ("function_call", None),
        ("function_call_output", None),
        ("message", "assistant"),
        ("message", "user"),
        ("function_call", None),
        ("function_call_output", None),
    ]


def test_docs_examples_parse() -> None:
    doc = json.loads((OPENAI / "openapi-examples" / "chat.completions.create.x-oaiMeta.examples.json").read_text())
    parsed = 0
    for example in doc["examples"]:
        match = re.search(r"-d '(.*)'\s*$", example["request_curl"], re.S)
        if match is None:
            continue
        req = parse_chat_request(json.loads(match.group(1)))
        assert req.input
        parsed += 1
    assert parsed >= 4

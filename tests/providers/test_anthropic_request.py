"""Tests for the Anthropic request mapping (tollway.providers.anthropic_request), including every recorded
Messages request in ../shared/specs/providers/anthropic/wire."""

from __future__ import annotations

import copy
import itertools
from collections.abc import Callable
from pathlib import Path
from typing import Any

import orjson
import pytest
from hypothesis import given
from hypothesis import strategies as st

from tollway.core import reasoning_state
from tollway.core.errors import GatewayError
from tollway.core.types import (
    CanonicalRequest,
    Fidelity,
    FunctionTool,
    Item,
    TextFormat,
    ToolChoice,
)
from tollway.providers.anthropic import AnthropicAdapter
from tollway.providers.anthropic_request import THINKING_BUDGETS
from tollway.providers.base import ProviderSettings

ROOT = Path(__file__).resolve().parents[2]
ANTHROPIC = ROOT / ".." / "shared" / "specs" / "providers" / "anthropic"
WIRE = ANTHROPIC / "wire"

ADAPTER = AnthropicAdapter()
SETTINGS = ProviderSettings(
    name="anthropic", kind="anthropic", base_url="https://api.anthropic.com/v1", api_key="sk-ant-test"
)
JSONDict = dict[str, Any]


# --------------------------------------------------------------------------------------------------
# helpers
# --------------------------------------------------------------------------------------------------


def load(name: str, folder: Path = WIRE) -> Any:
    return orjson.loads((folder / name).read_bytes())


def user(text: str) -> Item:
    return {"type": "message", "role": "user", "content": [{"type": "input_text", "text": text}]}


def assistant(text: str) -> Item:
    return {"type": "message", "role": "assistant", "content": [{"type": "output_text", "text": text}]}


def output_of(name: str) -> list[Item]:
    return ADAPTER.parse_response((WIRE / name).read_bytes()).output


def call_output(call_id: str, output: str) -> Item:
    return {"type": "function_call_output", "call_id": call_id, "output": output}


def tools_of(recorded: JSONDict) -> list[FunctionTool]:
    return [
        FunctionTool(name=t["name"], description=t.get("description"), parameters=t["input_schema"])
        for t in recorded["tools"]
    ]


def body_of(req: CanonicalRequest, fidelity: Fidelity | None = None) -> JSONDict:
    up = ADAPTER.build_request(req, req.model, SETTINGS, fidelity or Fidelity())
    parsed: JSONDict = orjson.loads(up.body)
    return parsed


def first_user_text(recorded: JSONDict) -> str:
    text: str = recorded["messages"][0]["content"][0]["text"]
    return text


# --------------------------------------------------------------------------------------------------
# build_request against the recorded requests
# --------------------------------------------------------------------------------------------------

# Recorded requests not used here, and why:
# * test_anthropic_web_search_tool.*, test_anthropic_web_search_tool_stream.*: Anthropic server tools
#   (web_search_20250305) have no canonical form (tollway sends function tools only).
# * test_anthropic_count_tokens_error.00: a /v1/messages/count_tokens call, not a Messages request.
# * test_anthropic_explicit_effort_xhigh_unsupported_model_errors.00: uses output_config.effort (the
#   newer effort API); tollway maps reasoning effort to a thinking budget. Its error body is used below.

Builder = Callable[[JSONDict], tuple[CanonicalRequest, JSONDict]]


def _instructions(rec: JSONDict) -> tuple[CanonicalRequest, JSONDict]:
    req = CanonicalRequest(model=rec["model"], input=[user(first_user_text(rec))], instructions=rec["system"])
    return req, rec


def _thinking_part_0(rec: JSONDict) -> tuple[CanonicalRequest, JSONDict]:
    # budget 1024 is Anthropic's minimum, tollway's budget for effort "minimal"
    return CanonicalRequest(model=rec["model"], input=[user(first_user_text(rec))], reasoning_effort="minimal"), rec


def _thinking_part_1(rec: JSONDict) -> tuple[CanonicalRequest, JSONDict]:
    # the previous turn is what tollway parsed from the recorded response: the thinking block (with its
    # signature) must go back byte for byte
    history = output_of("test_anthropic_model_thinking_part.00.response.json")
    question = rec["messages"][2]["content"][0]["text"]
    inp = [user(first_user_text(rec)), *history, user(question)]
    return CanonicalRequest(model=rec["model"], input=inp, reasoning_effort="minimal"), rec


def _thinking_stream(rec: JSONDict) -> tuple[CanonicalRequest, JSONDict]:
    req = CanonicalRequest(
        model=rec["model"], input=[user(first_user_text(rec))], reasoning_effort="minimal", stream=True
    )
    return req, rec


def _sampling(rec: JSONDict) -> tuple[CanonicalRequest, JSONDict]:
    req = CanonicalRequest(model=rec["model"], input=[user("hello")], temperature=0.2, extra={"top_k": 40})
    return req, rec


def _tool_output_0(rec: JSONDict) -> tuple[CanonicalRequest, JSONDict]:
    req = CanonicalRequest(
        model=rec["model"],
        input=[user(first_user_text(rec))],
        tools=tools_of(rec),
        tool_choice=ToolChoice(mode="required", raw="required"),
    )
    return req, rec


def _tool_output_1(rec: JSONDict) -> tuple[CanonicalRequest, JSONDict]:
    history = output_of("test_anthropic_tool_output.00.response.json")
    inp = [user(first_user_text(rec)), *history, call_output("toolu_01X9wcHKKAZD9tBC711xipPa", "Mexico")]
    req = CanonicalRequest(model=rec["model"], input=inp, tools=tools_of(rec), tool_choice=ToolChoice(mode="required"))
    return req, rec


def _tool_with_thinking(history: list[Item]) -> Builder:
    def build(rec: JSONDict) -> tuple[CanonicalRequest, JSONDict]:
        req = CanonicalRequest(
            model=rec["model"],
            input=[user(first_user_text(rec)), *history],
            tools=tools_of(rec),
            reasoning_effort="low",
        )
        # The recording asked for an explicit 3000-token budget, which no effort level maps to.
        expected = copy.deepcopy(rec)
        expected["thinking"]["budget_tokens"] = THINKING_BUDGETS["low"]
        return req, expected

    return build


def _parallel(history: list[Item]) -> Builder:
    def build(rec: JSONDict) -> tuple[CanonicalRequest, JSONDict]:
        req = CanonicalRequest(
            model=rec["model"],
            input=[user(first_user_text(rec)), *history],
            instructions=rec["system"],
            tools=tools_of(rec),
        )
        return req, rec

    return build


def _choice(choice: ToolChoice, history: list[Item] | None = None) -> Builder:
    def build(rec: JSONDict) -> tuple[CanonicalRequest, JSONDict]:
        inp = [user(first_user_text(rec)), *(history or [])]
        req = CanonicalRequest(model=rec["model"], input=inp, tools=tools_of(rec), tool_choice=choice)
        expected = rec
        if choice.allowed is not None:
            # tollway enforces an allowed subset by sending only those tools (the recording sent all)
            expected = copy.deepcopy(rec)
            expected["tools"] = [t for t in rec["tools"] if t["name"] in choice.allowed]
        return req, expected

    return build


def _image(rec: JSONDict) -> tuple[CanonicalRequest, JSONDict]:
    url = rec["messages"][0]["content"][1]["source"]["url"]
    part = {"type": "input_image", "image_url": url, "detail": "auto"}
    msg = {"type": "message", "role": "user", "content": [{"type": "input_text", "text": first_user_text(rec)}, part]}
    return CanonicalRequest(model=rec["model"], input=[msg]), rec


def _cache(turn: int) -> Builder:
    def build(rec: JSONDict) -> tuple[CanonicalRequest, JSONDict]:
        inp = [user(first_user_text(rec))]
        if turn == 1:
            inp += [
                *output_of("test_anthropic_cache_real_api.00.response.json"),
                user(rec["messages"][2]["content"][0]["text"]),
            ]
        req = CanonicalRequest(model=rec["model"], input=inp, instructions=rec["system"])
        # top-level cache_control (automatic prompt caching) is pydantic-ai's opt-in; tollway doesn't send it
        expected = copy.deepcopy(rec)
        del expected["cache_control"]
        return req, expected

    return build


def _parallel_history() -> list[Item]:
    calls = output_of("test_multiple_parallel_tool_calls.00.response.json")
    rec = load("test_multiple_parallel_tool_calls.01.request.json")
    results = [call_output(b["tool_use_id"], b["content"]) for b in rec["messages"][2]["content"]]
    return [*calls, *results]


RECORDED_CASES: dict[str, Callable[[], Builder]] = {
    "test_anthropic_model_instructions.00": lambda: _instructions,
    "test_anthropic_model_thinking_part.00": lambda: _thinking_part_0,
    "test_anthropic_model_thinking_part.01": lambda: _thinking_part_1,
    "test_anthropic_model_thinking_part_stream.00": lambda: _thinking_stream,
    "test_anthropic_model_thinking_part_redacted_stream.00": lambda: _thinking_stream,
    "test_anthropic_sampling_settings_reach_the_wire.00": lambda: _sampling,
    "test_anthropic_tool_output.00": lambda: _tool_output_0,
    "test_anthropic_tool_output.01": lambda: _tool_output_1,
    "test_anthropic_tool_with_thinking.00": lambda: _tool_with_thinking([]),
    "test_anthropic_tool_with_thinking.01": lambda: _tool_with_thinking(
        [
            *output_of("test_anthropic_tool_with_thinking.00.response.json"),
            call_output("toolu_01YGzqpRE16Vricda3Aqcejo", "Mexico"),
        ]
    ),
    "test_multiple_parallel_tool_calls.00": lambda: _parallel([]),
    "test_multiple_parallel_tool_calls.01": lambda: _parallel(_parallel_history()),
    "test_tool_choice_matrix[auto-anthropic].00": lambda: _choice(ToolChoice()),
    "test_tool_choice_matrix[auto-anthropic].01": lambda: _choice(
        ToolChoice(),
        [
            *output_of("test_tool_choice_matrix[auto-anthropic].00.response.json"),
            call_output("toolu_01WN4AuToBnJyXNQXwQBBebj", "Sunny, 22C in Paris"),
        ],
    ),
    "test_tool_choice_matrix[list_single-anthropic].00": lambda: _choice(
        ToolChoice(mode="required", allowed=["get_weather"], raw={"type": "function", "name": "get_weather"})
    ),
    "test_tool_choice_matrix[none-anthropic].00": lambda: _choice(ToolChoice(mode="none", raw="none")),
    "test_tool_choice_matrix[required-anthropic].00": lambda: _choice(ToolChoice(mode="required")),
    "test_image_url_input.00": lambda: _image,
    "test_anthropic_cache_real_api.00": lambda: _cache(0),
    "test_anthropic_cache_real_api.01": lambda: _cache(1),
}


@pytest.mark.parametrize("base", sorted(RECORDED_CASES))
def test_build_request_matches_recorded_request(base: str) -> None:
    recorded = load(f"{base}.request.json")
    req, expected = RECORDED_CASES[base]()(recorded)
    fidelity = Fidelity()
    up = ADAPTER.build_request(req, req.model, SETTINGS, fidelity)
    assert orjson.loads(up.body) == expected
    assert up.stream is expected["stream"]
    assert fidelity.dropped == []
    assert fidelity.approximated == (["reasoning.effort"] if "thinking" in expected else [])


def test_every_recorded_messages_request_is_covered_or_explained() -> None:
    skipped = {
        "test_anthropic_web_search_tool.00",
        "test_anthropic_web_search_tool.01",
        "test_anthropic_web_search_tool_stream.00",
        "test_anthropic_count_tokens_error.00",
        "test_anthropic_explicit_effort_xhigh_unsupported_model_errors.00",
    }
    recorded = {p.name.removesuffix(".request.json") for p in WIRE.glob("*.request.json")}
    assert recorded == set(RECORDED_CASES) | skipped


# --------------------------------------------------------------------------------------------------
# reasoning state
# --------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("encrypted", "reason"),
    [
        ("gAAAAABo-bare-openai-state", "state from openai"),
        (reasoning_state.wrap("openai", {"encrypted_content": "x"}), "state from openai"),
        (reasoning_state.wrap("gemini", {"thought_signature": "abc"}), "state from gemini"),
        ("tw1.anthropic.!!!not-base64", "corrupt state"),
        (None, "no provider state"),
    ],
)
def test_foreign_reasoning_dropped_and_reported(encrypted: str | None, reason: str) -> None:
    reasoning: Item = {"type": "reasoning", "summary": [{"type": "summary_text", "text": "thought"}]}
    if encrypted is not None:
        reasoning["encrypted_content"] = encrypted
    inp = [user("q"), reasoning, assistant("answer"), user("more")]
    fidelity = Fidelity()
    body = body_of(CanonicalRequest(model="m", input=inp), fidelity)
    assert body["messages"][1] == {"role": "assistant", "content": [{"type": "text", "text": "answer"}]}
    assert fidelity.dropped == [f"input[1].reasoning ({reason})"]


def test_effort_with_foreign_history_in_tool_loop_disables_thinking() -> None:
    # Anthropic rejects thinking when the tool-loop assistant turn has no thinking block
    reasoning: Item = {"type": "reasoning", "summary": [], "encrypted_content": "gAAAA-openai"}
    call: Item = {"type": "function_call", "call_id": "call_1", "name": "f", "arguments": "{}"}
    inp = [user("q"), reasoning, call, call_output("call_1", "ok")]
    fidelity = Fidelity()
    body = body_of(CanonicalRequest(model="m", input=inp, tools=[FunctionTool("f")], reasoning_effort="low"), fidelity)
    assert "thinking" not in body
    assert fidelity.dropped == ["input[1].reasoning (state from openai)", "reasoning.effort"]


# --------------------------------------------------------------------------------------------------
# request mapping details
# --------------------------------------------------------------------------------------------------


def test_system_instructions_and_developer_messages_in_order() -> None:
    inp: list[Item] = [
        {"type": "message", "role": "developer", "content": [{"type": "input_text", "text": "Be brief."}]},
        user("hi"),
        {"type": "message", "role": "system", "content": [{"type": "input_text", "text": "Use French."}]},
        user("again"),
    ]
    body = body_of(CanonicalRequest(model="m", input=inp, instructions="You are tollway."))
    assert body["system"] == "You are tollway.\n\nBe brief.\n\nUse French."
    # the two user turns around the hoisted system message merge into one message
    assert body["messages"] == [
        {"role": "user", "content": [{"type": "text", "text": "hi"}, {"type": "text", "text": "again"}]}
    ]


def test_phase_is_not_sent_and_not_reported() -> None:
    msg = {**assistant("thinking out loud"), "phase": "commentary"}
    fidelity = Fidelity()
    body = body_of(CanonicalRequest(model="m", input=[user("q"), msg, user("go on")]), fidelity)
    assert body["messages"][1] == {"role": "assistant", "content": [{"type": "text", "text": "thinking out loud"}]}
    assert fidelity.dropped == [] and fidelity.approximated == []


def test_images() -> None:
    parts = [
        {"type": "input_image", "image_url": "data:image/png;base64,iVBORw0KGgo=", "detail": "auto"},
        {"type": "input_image", "image_url": "https://example.com/cat.jpg", "detail": "high"},
    ]
    fidelity = Fidelity()
    body = body_of(CanonicalRequest(model="m", input=[{"type": "message", "role": "user", "content": parts}]), fidelity)
    assert body["messages"][0]["content"] == [
        {"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": "iVBORw0KGgo="}},
        {"type": "image", "source": {"type": "url", "url": "https://example.com/cat.jpg"}},
    ]
    assert fidelity.dropped == ["input[0].content[1].detail"]


@pytest.mark.parametrize("url", ["data:image/tiff;base64,AAAA", "data:image/png,notbase64", "ftp://x/y.png"])
def test_unsupported_images_are_client_errors(url: str) -> None:
    msg = {"type": "message", "role": "user", "content": [{"type": "input_image", "image_url": url}]}
    with pytest.raises(GatewayError) as err:
        body_of(CanonicalRequest(model="m", input=[msg]))
    assert err.value.status == 400 and err.value.param == "input[0].content[0].image_url"


@pytest.mark.parametrize("arguments", ["{not json", "[1, 2]", "42"])
def test_invalid_function_call_arguments(arguments: str) -> None:
    call: Item = {"type": "function_call", "call_id": "call_1", "name": "f", "arguments": arguments}
    with pytest.raises(GatewayError) as err:
        body_of(CanonicalRequest(model="m", input=[user("q"), call]))
    assert err.value.status == 400
    assert err.value.param == "input[1].arguments"


def test_parallel_results_grouped_and_call_ids_made_valid() -> None:
    inp: list[Item] = [
        user("q"),
        {"type": "function_call", "call_id": "call:1", "name": "f", "arguments": '{"a": 1}'},
        {"type": "function_call", "call_id": "call:2", "name": "f", "arguments": '{"a": 2}'},
        call_output("call:1", "one"),
        call_output("call:2", "two"),
        user("and?"),
    ]
    body = body_of(CanonicalRequest(model="m", input=inp, tools=[FunctionTool("f")]))
    assert [m["role"] for m in body["messages"]] == ["user", "assistant", "user"]
    assert [b["id"] for b in body["messages"][1]["content"]] == ["call_1", "call_2"]
    assert body["messages"][1]["content"][0]["input"] == {"a": 1}
    results = body["messages"][2]["content"]
    assert [(b["type"], b.get("tool_use_id")) for b in results] == [
        ("tool_result", "call_1"),
        ("tool_result", "call_2"),
        ("text", None),
    ]


def test_tools_and_tool_choice_mapping() -> None:
    tools = [
        FunctionTool("a", "A tool", {"type": "object", "properties": {"x": {"type": "string"}}}),
        FunctionTool("b"),
        FunctionTool("c"),
    ]

    def build(choice: ToolChoice, parallel: bool | None = None) -> JSONDict:
        return body_of(
            CanonicalRequest(
                model="m", input=[user("q")], tools=tools, tool_choice=choice, parallel_tool_calls=parallel
            )
        )

    body = build(ToolChoice())
    assert body["tools"] == [
        {
            "name": "a",
            "description": "A tool",
            "input_schema": {"type": "object", "properties": {"x": {"type": "string"}}},
        },
        {"name": "b", "input_schema": {"type": "object", "properties": {}}},
        {"name": "c", "input_schema": {"type": "object", "properties": {}}},
    ]
    assert body["tool_choice"] == {"type": "auto"}
    assert build(ToolChoice(mode="required"))["tool_choice"] == {"type": "any"}
    assert build(ToolChoice(mode="none"))["tool_choice"] == {"type": "none"}
    named = build(ToolChoice(mode="required", allowed=["b"]))
    assert named["tool_choice"] == {"type": "tool", "name": "b"}
    assert [t["name"] for t in named["tools"]] == ["b"]
    subset = build(ToolChoice(mode="auto", allowed=["a", "c"]))
    assert subset["tool_choice"] == {"type": "auto"} and [t["name"] for t in subset["tools"]] == ["a", "c"]
    assert build(ToolChoice(mode="required", allowed=["a", "c"]))["tool_choice"] == {"type": "any"}
    assert build(ToolChoice(), parallel=False)["tool_choice"] == {"type": "auto", "disable_parallel_tool_use": True}
    assert build(ToolChoice(mode="none"), parallel=False)["tool_choice"] == {"type": "none"}
    no_tools = body_of(CanonicalRequest(model="m", input=[user("q")], tool_choice=ToolChoice(mode="required")))
    assert "tools" not in no_tools and "tool_choice" not in no_tools
    with pytest.raises(GatewayError):
        build(ToolChoice(mode="required", allowed=["zzz"]))


def test_thinking_budget_and_max_tokens() -> None:
    def build(**kw: Any) -> tuple[JSONDict, Fidelity]:
        fidelity = Fidelity()
        return body_of(CanonicalRequest(model="m", input=[user("q")], **kw), fidelity), fidelity

    body, fidelity = build(reasoning_effort="medium")
    assert body["thinking"] == {"type": "enabled", "budget_tokens": 8192} and body["max_tokens"] == 8192 + 4096
    assert fidelity.approximated == ["reasoning.effort"]
    body, _ = build(reasoning_effort="medium", max_output_tokens=3000)
    assert body["thinking"]["budget_tokens"] == 1500 and body["max_tokens"] == 3000
    body, _ = build(reasoning_effort="low", max_output_tokens=50000)
    assert body["thinking"]["budget_tokens"] == 2048 and body["max_tokens"] == 50000
    body, fidelity = build(reasoning_effort="low", max_output_tokens=1500)  # half is under Anthropic's 1024
    assert "thinking" not in body and fidelity.dropped == ["reasoning.effort"] and body["max_tokens"] == 1500
    body, fidelity = build(reasoning_effort="none")
    assert "thinking" not in body and fidelity.dropped == [] and fidelity.approximated == []
    body, fidelity = build(reasoning_effort="high", tools=[FunctionTool("f")], tool_choice=ToolChoice(mode="required"))
    assert "thinking" not in body and body["tool_choice"] == {"type": "any"}
    assert fidelity.dropped == ["reasoning.effort"]
    body, fidelity = build(reasoning_effort="low", temperature=0.3, top_p=0.9, extra={"top_k": 5})
    assert "thinking" in body and not {"temperature", "top_p", "top_k"} & set(body)
    assert fidelity.dropped == ["temperature", "top_p", "top_k"]


def test_sampling_and_dropped_fields() -> None:
    fidelity = Fidelity()
    req = CanonicalRequest(
        model="m",
        input=[user("q")],
        temperature=1.5,
        top_p=0.5,
        stop=["END", "STOP"],
        user="user-42",
        seed=7,
        presence_penalty=0.5,
        frequency_penalty=0.1,
        top_logprobs=3,
        service_tier="flex",
        prompt_cache_key="k",
        max_output_tokens=100,
        extra={"logit_bias": {"1": 2}},
        metadata={"tag": "x"},
    )
    body = body_of(req, fidelity)
    assert body["temperature"] == 1.0 and body["top_p"] == 0.5 and body["max_tokens"] == 100
    assert body["stop_sequences"] == ["END", "STOP"]
    assert body["metadata"] == {"user_id": "user-42"}
    assert fidelity.approximated == ["temperature"]
    assert sorted(fidelity.dropped) == sorted(
        [
            "logit_bias",
            "seed",
            "presence_penalty",
            "frequency_penalty",
            "top_logprobs",
            "service_tier",
            "prompt_cache_key",
        ]
    )
    quiet = Fidelity()
    body_of(CanonicalRequest(model="m", input=[user("q")], service_tier="auto", presence_penalty=0.0), quiet)
    assert quiet.dropped == [] and quiet.approximated == []


def test_text_format_is_approximated_in_system() -> None:
    schema = {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}
    fidelity = Fidelity()
    req = CanonicalRequest(
        model="m",
        input=[user("q")],
        instructions="Be helpful.",
        text_format=TextFormat(type="json_schema", name="City", schema=schema, strict=True),
    )
    body = body_of(req, fidelity)
    assert body["system"].startswith("Be helpful.\n\n")
    assert orjson.dumps(schema).decode() in body["system"] and "'City'" in body["system"]
    assert fidelity.approximated == ["text.format"]
    fidelity = Fidelity()
    body = body_of(CanonicalRequest(model="m", input=[user("q")], text_format=TextFormat(type="json_object")), fidelity)
    assert "JSON object" in body["system"] and fidelity.approximated == ["text.format"]


def test_input_without_messages_is_rejected() -> None:
    sys_only: Item = {"type": "message", "role": "system", "content": [{"type": "input_text", "text": "x"}]}
    with pytest.raises(GatewayError) as err:
        body_of(CanonicalRequest(model="m", input=[sys_only]))
    assert err.value.status == 400 and err.value.param == "input"


# --------------------------------------------------------------------------------------------------
# properties
# --------------------------------------------------------------------------------------------------


@given(st.lists(st.tuples(st.sampled_from(["user", "assistant"]), st.text(min_size=1)), min_size=1))
def test_turns_alternate_and_keep_order(turns: list[tuple[str, str]]) -> None:
    inp = [user(t) if role == "user" else assistant(t) for role, t in turns]
    body = body_of(CanonicalRequest(model="m", input=inp))
    roles = [m["role"] for m in body["messages"]]
    assert all(a != b for a, b in itertools.pairwise(roles))
    assert [b["text"] for m in body["messages"] for b in m["content"]] == [t for _, t in turns]


def test_truncation_auto_is_reported_dropped() -> None:
    from tollway.core.types import CanonicalRequest, Fidelity
    from tollway.providers.anthropic import AnthropicAdapter
    from tollway.providers.base import ProviderSettings

    fidelity = Fidelity()
    req = CanonicalRequest(model="claude-sonnet-4-5", input=[
        {"type": "message", "role": "user", "content": [{"type": "input_text", "text": "hi"}]}], truncation="auto")
    AnthropicAdapter().build_request(req, "claude-sonnet-4-5", ProviderSettings("anthropic", "anthropic", "http://x"),
                                     fidelity)
    assert "truncation" in fidelity.dropped

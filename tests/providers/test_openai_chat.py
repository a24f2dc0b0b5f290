"""OpenAIChatAdapter: request building against recorded wire fixtures, and error bodies. Responses and
streams are in test_openai_chat_response.py and test_openai_chat_stream.py."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import orjson
import pytest

from tollway.core.types import (
    CanonicalRequest,
    Fidelity,
    FunctionTool,
    Item,
    TextFormat,
    ToolChoice,
    Usage,
)
from tollway.providers.base import Adapter, ProviderSettings
from tollway.providers.openai_chat import OpenAIChatAdapter

PROVIDERS = Path(__file__).resolve().parents[2] / ".." / "shared" / "specs" / "providers"
OPENAI_WIRE = PROVIDERS / "openai" / "wire"

ADAPTER = OpenAIChatAdapter()
SETTINGS = ProviderSettings(name="openai", kind="openai_chat", base_url="https://api.openai.com/v1", api_key="sk-x")


def _wire(provider: str, base: str, suffix: str) -> Path:
    return PROVIDERS / provider / "wire" / f"{base}.{suffix}"


def _load(provider: str, base: str, suffix: str = "request.json") -> Any:
    return json.loads(_wire(provider, base, suffix).read_bytes())


def _chat_entries() -> list[dict[str, Any]]:
    index = json.loads((OPENAI_WIRE / "INDEX.json").read_bytes())
    return [e for e in index if e["uri"].endswith("/chat/completions")]


def _build(req: CanonicalRequest, adapter: OpenAIChatAdapter = ADAPTER) -> tuple[dict[str, Any], Fidelity]:
    fidelity = Fidelity()
    upstream = adapter.build_request(req, req.model, SETTINGS, fidelity)
    body = orjson.loads(upstream.body)
    assert isinstance(body, dict)
    return body, fidelity


def _user(text: str) -> Item:
    return {"type": "message", "role": "user", "content": [{"type": "input_text", "text": text}]}


def _assistant(text: str) -> Item:
    return {
        "type": "message",
        "role": "assistant",
        "content": [{"type": "output_text", "text": text, "annotations": []}],
    }


def _call(call_id: str, name: str, arguments: str) -> Item:
    return {"type": "function_call", "call_id": call_id, "name": name, "arguments": arguments}


def _output(call_id: str, output: str) -> Item:
    return {"type": "function_call_output", "call_id": call_id, "output": output}


def _tools_from(recorded: dict[str, Any]) -> list[FunctionTool]:
    """The canonical tools a client would have sent to produce the recorded ``tools``."""
    tools = []
    for tool in recorded.get("tools", []):
        fn = tool["function"]
        tools.append(FunctionTool(fn["name"], fn.get("description"), fn.get("parameters"), fn.get("strict")))
    return tools


def _normalise(body: dict[str, Any]) -> dict[str, Any]:
    """Differences that carry no meaning: an assistant message with only tool_calls may omit
    ``content`` or send null; other null message fields equal absent ones; ``tools: []`` equals no
    tools."""
    body = json.loads(json.dumps(body))
    for i, msg in enumerate(body["messages"]):
        msg = body["messages"][i] = {k: v for k, v in msg.items() if v is not None or k == "content"}
        if msg["role"] == "assistant" and msg.get("tool_calls") and not msg.get("content"):
            msg["content"] = None
    if body.get("tools") == []:
        del body["tools"]
    return body


# --------------------------------------------------------------------------------------------------
# Every recorded OpenAI chat request, as the canonical request that must produce it.
# --------------------------------------------------------------------------------------------------

UK_QUESTION = "What is the capital of the UK? Use the tool, then answer."
FRANCE_HISTORY = [
    _user("What is the capital of France?"),
    _call("pyd_ai_504f8147f83f44f3a5f14d87bfd01bda", "get_capital", '{"country":"France"}'),
    _output("pyd_ai_504f8147f83f44f3a5f14d87bfd01bda", "Paris"),
    _assistant("The capital of France is Paris.\n"),
    _user("What is the capital of England?"),
]
PARIS = _user("What's the weather in Paris?")


def _cache_input(recorded: dict[str, Any]) -> list[Item]:
    parts = []
    for part in recorded["messages"][0]["content"]:
        canonical = {"type": "input_text", "text": part["text"]}
        if "prompt_cache_breakpoint" in part:
            canonical["prompt_cache_breakpoint"] = part["prompt_cache_breakpoint"]
        parts.append(canonical)
    return [{"type": "message", "role": "user", "content": parts}]


CANONICAL: dict[str, Callable[[dict[str, Any]], CanonicalRequest]] = {
    "test_text_response.00": lambda r: CanonicalRequest("gpt-4o", [_user("What is the capital of France?")]),
    "test_run_stream_sync_streams_real_model.00": lambda r: CanonicalRequest(
        "gpt-4o-mini", [_user(UK_QUESTION)], tools=_tools_from(r), stream=True
    ),
    "test_run_stream_sync_streams_real_model.01": lambda r: CanonicalRequest(
        "gpt-4o-mini",
        [
            _user(UK_QUESTION),
            _call("call_ZR5UUuTt3pf61kjwAJIYdVMj", "get_capital", '{"country":"UK"}'),
            _output("call_ZR5UUuTt3pf61kjwAJIYdVMj", "London"),
        ],
        tools=_tools_from(r),
        stream=True,
    ),
    "test_multiple_agent_tool_calls.02": lambda r: CanonicalRequest(
        "gpt-4o-mini", list(FRANCE_HISTORY), tools=_tools_from(r), extra={"n": 1}
    ),
    "test_multiple_agent_tool_calls.03": lambda r: CanonicalRequest(
        "gpt-4o-mini",
        [
            *FRANCE_HISTORY,
            _call("call_SkEQ3ZGSJC8m6AvaIGNuuKdm", "get_capital", '{"country":"England"}'),
            _output("call_SkEQ3ZGSJC8m6AvaIGNuuKdm", "London"),
        ],
        tools=_tools_from(r),
        extra={"n": 1},
    ),
    "test_reasoning_model_with_temperature.00": lambda r: CanonicalRequest(
        "o3-mini", [_user("What is the capital of Mexico?")]
    ),
    "test_max_completion_tokens[o3-mini].00": lambda r: CanonicalRequest(
        "o3-mini", [_user("hello")], max_output_tokens=100
    ),
    "test_openai_web_search_tool_model_not_supported.00": lambda r: CanonicalRequest(
        "gpt-4o",
        [_user("What day is today?")],
        instructions="You are a helpful assistant.",
        extra={"web_search_options": {"search_context_size": "low"}},
    ),
    "test_openai_o1_mini_system_role[developer].00": lambda r: CanonicalRequest(
        "o1-mini",
        [
            {
                "type": "message",
                "role": "developer",
                "content": [{"type": "input_text", "text": "You are a helpful assistant."}],
            },
            _user("Hello"),
        ],
        extra={"n": 1},
    ),
    "test_user_id.00": lambda r: CanonicalRequest("gpt-4o", [_user("hello")], user="user_id", extra={"n": 1}),
    "test_openai_chat_prompt_cache_e2e.00": lambda r: CanonicalRequest(
        "gpt-5.6-sol",
        _cache_input(r),
        prompt_cache_key="pydantic-ai-prompt-cache-e2e-chat",
        extra={"prompt_cache_options": {"mode": "explicit", "ttl": "30m"}},
    ),
    "test_openai_chat_prompt_cache_e2e.01": lambda r: CanonicalRequest(
        "gpt-5.6-sol",
        _cache_input(r),
        prompt_cache_key="pydantic-ai-prompt-cache-e2e-chat",
        extra={"prompt_cache_options": {"mode": "explicit", "ttl": "30m"}},
    ),
    "test_openai_model_thinking_part.01": lambda r: CanonicalRequest(
        "o3-mini",
        [
            _user("How do I cross the street?"),
            _assistant(r["messages"][1]["content"]),
            _user("Considering the way to cross the street, analogously, how do I cross the river?"),
        ],
        reasoning_effort="high",
    ),
    "test_tool_choice_matrix[auto-openai].00": lambda r: CanonicalRequest("gpt-5-mini", [PARIS], tools=_tools_from(r)),
    "test_tool_choice_matrix[auto-openai].01": lambda r: CanonicalRequest(
        "gpt-5-mini",
        [
            PARIS,
            _call("call_aDdJTteHrpMdhdkEkyxjxEHH", "get_weather", '{"city":"Paris"}'),
            _output("call_aDdJTteHrpMdhdkEkyxjxEHH", "Sunny, 22C in Paris"),
        ],
        tools=_tools_from(r),
    ),
    "test_tool_choice_matrix[required-openai].00": lambda r: CanonicalRequest(
        "gpt-5-mini", [PARIS], tools=_tools_from(r), tool_choice=ToolChoice("required", raw="required")
    ),
    "test_tool_choice_matrix[none-openai].00": lambda r: CanonicalRequest(
        "gpt-5-mini", [PARIS], tools=_tools_from(r), tool_choice=ToolChoice("none", raw="none")
    ),
    "test_tool_choice_matrix[list_single-openai].00": lambda r: CanonicalRequest(
        "gpt-5-mini",
        [PARIS],
        tools=_tools_from(r),
        tool_choice=ToolChoice("required", ["get_weather"], raw=r["tool_choice"]),
    ),
}


def test_every_recorded_chat_request_is_covered() -> None:
    assert {e["file_base"].removeprefix("wire/") for e in _chat_entries()} == set(CANONICAL)


@pytest.mark.parametrize("base", sorted(CANONICAL))
def test_recorded_openai_request(base: str) -> None:
    recorded = _load("openai", base)
    req = CANONICAL[base](recorded)
    fidelity = Fidelity(dropped=list(req.extra))  # what the pipeline reports before building
    upstream = ADAPTER.build_request(req, recorded["model"], SETTINGS, fidelity)
    assert upstream.method == "POST"
    assert upstream.url == "https://api.openai.com/v1/chat/completions"
    assert upstream.headers["authorization"] == "Bearer sk-x"
    assert upstream.headers["content-type"] == "application/json"
    assert upstream.stream is req.stream
    assert _normalise(orjson.loads(upstream.body)) == _normalise(recorded)
    assert fidelity.dropped == [] and fidelity.approximated == []


def test_headers_without_key_and_extra_headers() -> None:
    settings = ProviderSettings("vllm", "openai_chat", "http://localhost:8000/v1/", headers={"x-org": "a"})
    upstream = ADAPTER.build_request(CanonicalRequest("m", [_user("hi")]), "m", settings, Fidelity())
    assert upstream.url == "http://localhost:8000/v1/chat/completions"
    assert "authorization" not in upstream.headers
    assert upstream.headers["x-org"] == "a"


class _MaxTokensAdapter(OpenAIChatAdapter):
    max_tokens_field = "max_tokens"
    include_stream_usage = False


def test_compatible_shapes_huggingface_and_mistral() -> None:
    hf = _load("huggingface", "test_max_completion_tokens.00")
    body, _ = _build(CanonicalRequest(hf["model"], [_user("hello")], max_output_tokens=100), _MaxTokensAdapter())
    assert _normalise(body) == _normalise(hf)

    hf = _load("huggingface", "test_request_structured_response.00")
    req = CanonicalRequest(
        hf["model"],
        [_user(hf["messages"][0]["content"])],
        tools=_tools_from(hf),
        tool_choice=ToolChoice("required", raw="required"),
    )
    assert _normalise(_build(req)[0]) == _normalise(hf)

    mistral = _load("mistral", "test_mistral_forwards_penalties.00")
    req = CanonicalRequest(
        mistral["model"],
        [_user("hello")],
        top_p=1.0,
        presence_penalty=0.5,
        frequency_penalty=0.25,
        extra={"n": 1},
    )
    assert _build(req)[0] == mistral


def test_stream_hook_without_usage_option() -> None:
    body, _ = _build(CanonicalRequest("m", [_user("hi")], stream=True), _MaxTokensAdapter())
    assert body["stream"] is True and "stream_options" not in body


# --------------------------------------------------------------------------------------------------
# Request mapping details
# --------------------------------------------------------------------------------------------------


def test_all_scalar_fields_and_formats() -> None:
    req = CanonicalRequest(
        "gpt-4.1",
        [_user("hi")],
        instructions="Be brief.",
        text_format=TextFormat("json_schema", "answer", {"type": "object"}, True),
        max_output_tokens=50,
        temperature=0.2,
        top_p=0.9,
        presence_penalty=0.1,
        frequency_penalty=0.3,
        stop=["END"],
        seed=7,
        user="u1",
        service_tier="flex",
        top_logprobs=3,
        reasoning_effort="low",
        reasoning_summary="auto",
        prompt_cache_key="k",
        truncation="auto",
        max_tool_calls=2,
        include=["message.output_text.logprobs", "reasoning.encrypted_content"],
        extra={"logit_bias": {"1": 2}, "unknown_knob": True},
        metadata={"a": "b"},
        stream=True,
    )
    fidelity = Fidelity(dropped=list(req.extra))  # what the pipeline reports before building
    body = orjson.loads(ADAPTER.build_request(req, "gpt-4.1", SETTINGS, fidelity).body)
    assert body == {
        "model": "gpt-4.1",
        "messages": [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "hi"}],
        "max_completion_tokens": 50,
        "temperature": 0.2,
        "top_p": 0.9,
        "presence_penalty": 0.1,
        "frequency_penalty": 0.3,
        "stop": ["END"],
        "seed": 7,
        "user": "u1",
        "service_tier": "flex",
        "response_format": {
            "type": "json_schema",
            "json_schema": {"name": "answer", "schema": {"type": "object"}, "strict": True},
        },
        "logprobs": True,
        "top_logprobs": 3,
        "reasoning_effort": "low",
        "prompt_cache_key": "k",
        "logit_bias": {"1": 2},
        "stream": True,
        "stream_options": {"include_usage": True},
    }
    assert fidelity.dropped == ["unknown_knob", "reasoning.summary", "truncation", "max_tool_calls"]
    body, fidelity = _build(CanonicalRequest("m", [_user("x")], text_format=TextFormat("json_object")))
    assert body["response_format"] == {"type": "json_object"}
    assert body["stream"] is False and "stream_options" not in body
    _, fidelity = _build(CanonicalRequest("m", [_user("x")], truncation="disabled"))
    assert fidelity.dropped == []


def test_message_content_conversion() -> None:
    req = CanonicalRequest(
        "m",
        [
            {
                "type": "message",
                "role": "user",
                "content": [
                    {"type": "input_text", "text": "look"},
                    {"type": "input_image", "image_url": "data:image/png;base64,AAA", "detail": "low"},
                    {"type": "input_file", "file_id": "f1"},
                ],
            },
            {"type": "message", "role": "user", "content": [_text("a"), _text("b")]},
            {
                "type": "message",
                "role": "assistant",
                "content": [
                    {"type": "output_text", "text": "I won't", "annotations": []},
                    {"type": "refusal", "refusal": "cannot help"},
                ],
            },
            {
                "type": "message",
                "role": "system",
                "content": [{"type": "input_image", "image_url": "http://x/i.png"}],
            },
        ],
    )
    body, fidelity = _build(req)
    assert body["messages"] == [
        {
            "role": "user",
            "content": [
                {"type": "text", "text": "look"},
                {"type": "image_url", "image_url": {"url": "data:image/png;base64,AAA", "detail": "low"}},
            ],
        },
        {"role": "user", "content": "a\nb"},
        {"role": "assistant", "content": "I won't\ncannot help"},
        {"role": "system", "content": ""},
    ]
    assert fidelity.dropped == ["input[0].content[2] (input_file)", "input[3].content[0] (input_image)"]


def _text(text: str) -> dict[str, str]:
    return {"type": "input_text", "text": text}


def test_developer_role_hook() -> None:
    class SystemOnly(OpenAIChatAdapter):
        developer_role = "system"

    item = {"type": "message", "role": "developer", "content": [_text("rules")]}
    assert _build(CanonicalRequest("m", [item]))[0]["messages"] == [{"role": "developer", "content": "rules"}]
    assert _build(CanonicalRequest("m", [item]), SystemOnly())[0]["messages"] == [
        {"role": "system", "content": "rules"}
    ]


def test_reasoning_input_dropped_and_reported() -> None:
    reasoning = {
        "type": "reasoning",
        "summary": [{"type": "summary_text", "text": "thinking about tools"}],
        "content": [],
        "encrypted_content": "gAAAA",
    }
    empty = {"type": "reasoning", "summary": [], "content": []}
    req = CanonicalRequest(
        "m",
        [
            _user("go"),
            empty,
            reasoning,
            _assistant("Calling."),
            reasoning,
            _call("c1", "f", "{}"),
            _output("c1", "ok"),
            {"type": "item_reference", "id": "msg_1"},
        ],
    )
    body, fidelity = _build(req)
    assert body["messages"] == [
        {"role": "user", "content": "go"},
        {
            "role": "assistant",
            "content": "Calling.",
            "tool_calls": [{"id": "c1", "type": "function", "function": {"name": "f", "arguments": "{}"}}],
        },
        {"role": "tool", "tool_call_id": "c1", "content": "ok"},
    ]
    assert fidelity.dropped == ["input[2] (reasoning)", "input[4] (reasoning)", "input[7] (item_reference)"]


WEATHER = FunctionTool("get_weather", "Weather", {"type": "object"}, True)
TIME = FunctionTool("get_time", None, {"type": "object"})
NEWS = FunctionTool("get_news")


def test_allowed_tools_subset_is_a_hard_constraint() -> None:
    req = CanonicalRequest(
        "m",
        [_user("x")],
        tools=[WEATHER, TIME, NEWS],
        tool_choice=ToolChoice("auto", ["get_weather", "get_news"], raw={"type": "allowed_tools"}),
        parallel_tool_calls=False,
    )
    body, _ = _build(req)
    assert body["tools"] == [
        {
            "type": "function",
            "function": {
                "name": "get_weather",
                "description": "Weather",
                "parameters": {"type": "object"},
                "strict": True,
            },
        },
        {"type": "function", "function": {"name": "get_news"}},
    ]
    assert body["tool_choice"] == "auto"
    assert body["parallel_tool_calls"] is False

    req.tool_choice = ToolChoice("required", ["get_time", "get_news"])
    body, _ = _build(req)
    assert [t["function"]["name"] for t in body["tools"]] == ["get_time", "get_news"]
    assert body["tool_choice"] == "required"

    req.tool_choice = ToolChoice("required", ["get_time"])
    body, _ = _build(req)
    assert [t["function"]["name"] for t in body["tools"]] == ["get_weather", "get_time", "get_news"]
    assert body["tool_choice"] == {"type": "function", "function": {"name": "get_time"}}

    req.tool_choice = ToolChoice("auto", ["get_time"])
    body, _ = _build(req)
    assert [t["function"]["name"] for t in body["tools"]] == ["get_time"]
    assert body["tool_choice"] == "auto"


def test_no_tools_means_no_tool_fields() -> None:
    req = CanonicalRequest("m", [_user("x")], tool_choice=ToolChoice("required"), parallel_tool_calls=True)
    body, _ = _build(req)
    assert "tools" not in body and "tool_choice" not in body and "parallel_tool_calls" not in body


def test_tool_round_trip_parallel_calls() -> None:
    response = {
        "id": "chatcmpl-1",
        "model": "gpt-4o",
        "choices": [
            {
                "index": 0,
                "finish_reason": "tool_calls",
                "message": {
                    "role": "assistant",
                    "content": "Checking both.",
                    "tool_calls": [
                        {
                            "id": "call_a",
                            "type": "function",
                            "function": {"name": "get_weather", "arguments": '{"city":"Paris"}'},
                        },
                        {
                            "id": "call_b",
                            "type": "function",
                            "function": {"name": "get_time", "arguments": '{"tz":"CET"}'},
                        },
                    ],
                },
            }
        ],
        "usage": {"prompt_tokens": 20, "completion_tokens": 30},
    }
    parsed = ADAPTER.parse_response(orjson.dumps(response))
    assert parsed.status == "completed"
    assert parsed.output == [
        {
            "type": "message",
            "role": "assistant",
            "status": "completed",
            "content": [{"type": "output_text", "text": "Checking both.", "annotations": []}],
        },
        {
            "type": "function_call",
            "call_id": "call_a",
            "name": "get_weather",
            "arguments": '{"city":"Paris"}',
            "status": "completed",
        },
        {
            "type": "function_call",
            "call_id": "call_b",
            "name": "get_time",
            "arguments": '{"tz":"CET"}',
            "status": "completed",
        },
    ]
    assert parsed.usage == Usage(20, 30, 0, 0, 0)
    req = CanonicalRequest(
        "gpt-4o",
        [
            _user("Weather and time in Paris?"),
            *parsed.output,
            _output("call_a", "Sunny"),
            _output("call_b", "10:00"),
        ],
        tools=[WEATHER, TIME],
    )
    body, fidelity = _build(req)
    assert body["messages"] == [
        {"role": "user", "content": "Weather and time in Paris?"},
        {
            "role": "assistant",
            "content": "Checking both.",
            "tool_calls": [
                {
                    "id": "call_a",
                    "type": "function",
                    "function": {"name": "get_weather", "arguments": '{"city":"Paris"}'},
                },
                {
                    "id": "call_b",
                    "type": "function",
                    "function": {"name": "get_time", "arguments": '{"tz":"CET"}'},
                },
            ],
        },
        {"role": "tool", "tool_call_id": "call_a", "content": "Sunny"},
        {"role": "tool", "tool_call_id": "call_b", "content": "10:00"},
    ]
    assert fidelity.dropped == []


def test_sequential_calls_make_separate_assistant_messages() -> None:
    req = CanonicalRequest(
        "m",
        [_call("a", "f", ""), _output("a", "1"), _call("b", "f", '{"x":1}'), _output("b", "2")],
    )
    messages = _build(req)[0]["messages"]
    assert [m["role"] for m in messages] == ["assistant", "tool", "assistant", "tool"]
    assert messages[0] == {
        "role": "assistant",
        "content": None,
        "tool_calls": [{"id": "a", "type": "function", "function": {"name": "f", "arguments": "{}"}}],
    }


# --------------------------------------------------------------------------------------------------
# Error bodies
# --------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        (
            _wire("openai", "test_openai_o1_mini_system_role[developer].00", "response.json").read_bytes(),
            (
                "Unsupported value: 'messages[0].role' does not support 'developer' with this model.",
                "unsupported_value",
            ),
        ),
        (
            _wire("openai", "test_openai_web_search_tool_model_not_supported.00", "response.json").read_bytes(),
            ("Web search options not supported with this model.", "invalid_request_error"),
        ),
        (
            b'{"error": {"object": "error", "message": "model not found", "type": "NotFoundError", "code": 404}}',
            ("model not found", "NotFoundError"),
        ),
        (b'{"detail": "Not Found"}', ("Not Found", None)),
        (
            b'{"detail": [{"loc": ["body", "messages"], "msg": "Field required", "type": "missing"}]}',
            ("body.messages: Field required", None),
        ),
        (
            b'{"object": "error", "message": "Unauthorized", "type": "unauthorized", "code": "1000"}',
            ("Unauthorized", "1000"),
        ),
        (b'{"message": {"detail": [{"loc": ["x"], "msg": "bad"}]}}', ("x: bad", None)),
        (
            b'{"error": "Model is overloaded", "error_type": "overloaded"}',
            ("Model is overloaded", "overloaded"),
        ),
        (b'[{"error": {"message": "quota", "code": "429"}}]', ("quota", "429")),
        (b"Bad Gateway\n", ("Bad Gateway", None)),
        (b'{"unexpected": 1}', ('{"unexpected": 1}', None)),
        (b"", ("upstream returned an empty error body", None)),
        (b"\xff\xfe oops", ("\ufffd\ufffd oops", None)),
    ],
)
def test_error_message(body: bytes, expected: tuple[str, str | None]) -> None:
    assert ADAPTER.error_message(body) == expected


def test_satisfies_adapter_protocol() -> None:
    adapter: Adapter = OpenAIChatAdapter()
    assert adapter.kind == "openai_chat"

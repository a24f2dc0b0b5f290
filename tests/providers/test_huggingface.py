"""HuggingFaceAdapter: requests reproduced from the recorded router exchanges, recorded responses parsed to
concrete output and usage, the router/TGI quirks, and error bodies. Streams: test_huggingface_stream.py."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import orjson
import pytest

from tollway.core import reasoning_state
from tollway.core.errors import GatewayError, upstream_error
from tollway.core.types import CanonicalRequest, Fidelity, FunctionTool, Item, TextFormat, ToolChoice
from tollway.providers.base import ProviderSettings
from tollway.providers.huggingface import HuggingFaceAdapter
from tollway.providers.huggingface_stream import split_think, synth_call_id
from tollway.providers.registry import adapter_for

WIRE = Path(__file__).resolve().parents[2] / ".." / "shared" / "specs" / "providers" / "huggingface" / "wire"
ADAPTER = HuggingFaceAdapter()
SETTINGS = ProviderSettings(
    name="huggingface", kind="huggingface", base_url="https://router.huggingface.co/v1", api_key="hf_x"
)
R1 = "deepseek-ai/DeepSeek-R1"
SCOUT = "meta-llama/Llama-4-Scout-17B-16E-Instruct"


def _recorded(base: str, suffix: str = "request.json") -> Any:
    return json.loads((WIRE / f"{base}.{suffix}").read_bytes())


def _response(base: str) -> bytes:
    return (WIRE / f"{base}.response.json").read_bytes()


def _build(req: CanonicalRequest, settings: ProviderSettings = SETTINGS) -> tuple[dict[str, Any], Fidelity]:
    fidelity = Fidelity()
    upstream = ADAPTER.build_request(req, req.model, settings, fidelity)
    body = orjson.loads(upstream.body)
    assert isinstance(body, dict)
    return body, fidelity


def _user(text: str) -> Item:
    return {"type": "message", "role": "user", "content": [{"type": "input_text", "text": text}]}


def _assistant(text: str) -> Item:
    return {"type": "message", "role": "assistant", "content": [{"type": "output_text", "text": text}]}


def _meaningful(body: dict[str, Any]) -> dict[str, Any]:
    """What matters in a chat request: null fields, an empty ``tools`` list and our usage opt-in aside."""
    out = {k: v for k, v in body.items() if v is not None and k != "stream_options" and not (k == "tools" and v == [])}
    out["messages"] = [{k: v for k, v in m.items() if v is not None} for m in body["messages"]]
    return out


def _tools(recorded: dict[str, Any]) -> list[FunctionTool]:
    return [
        FunctionTool(t["function"]["name"], t["function"].get("description"), t["function"].get("parameters"))
        for t in recorded["tools"]
    ]


# -- requests: every recorded request ----------------------------------------------------------------------


def test_registry_and_kind() -> None:
    assert isinstance(adapter_for("huggingface"), HuggingFaceAdapter)
    assert ADAPTER.kind == "huggingface"


def test_request_url_and_auth() -> None:
    upstream = ADAPTER.build_request(CanonicalRequest(R1, [_user("hello")]), R1, SETTINGS, Fidelity())
    assert upstream.url == "https://router.huggingface.co/v1/chat/completions"
    assert upstream.headers["authorization"] == "Bearer hf_x"
    assert upstream.method == "POST" and upstream.stream is False and upstream.stream_format == "sse"


@pytest.mark.parametrize(
    ("base", "user", "instructions"),
    [
        ("test_simple_completion.00", "hello", None),
        ("test_request_simple_usage.00", "Hello", None),
        ("test_hf_model_thinking_part.00", "How do I cross the street?", None),
        ("test_hf_model_instructions.00", "What is the capital of France?", "You are a helpful assistant."),
    ],
)
def test_recorded_plain_requests(base: str, user: str, instructions: str | None) -> None:
    body, fidelity = _build(CanonicalRequest(R1, [_user(user)], instructions=instructions))
    assert _meaningful(body) == _meaningful(_recorded(base))
    assert fidelity.dropped == [] and fidelity.approximated == []


def test_recorded_max_tokens_request() -> None:
    body, _ = _build(CanonicalRequest(R1, [_user("hello")], max_output_tokens=100))
    assert _meaningful(body) == _meaningful(_recorded("test_max_completion_tokens.00"))
    assert body["max_tokens"] == 100 and "max_completion_tokens" not in body


def test_recorded_stream_request_adds_usage_opt_in_only() -> None:
    body, _ = _build(CanonicalRequest(R1, [_user("How do I cross the street?")], stream=True))
    assert _meaningful(body) == _meaningful(_recorded("test_hf_model_thinking_part_iter.00"))
    assert body["stream"] is True and body["stream_options"] == {"include_usage": True}


def test_recorded_tool_required_request() -> None:
    recorded = _recorded("test_request_structured_response.00")
    req = CanonicalRequest(
        R1, [_user(recorded["messages"][0]["content"])], tools=_tools(recorded), tool_choice=ToolChoice("required")
    )
    body, _ = _build(req)
    assert _meaningful(body) == _meaningful(recorded)


@pytest.mark.parametrize(
    ("case", "choice"),
    [
        ("required", ToolChoice("required")),
        ("none", ToolChoice("none")),
        ("list_single", ToolChoice("required", ["get_weather"])),
    ],
)
def test_recorded_tool_choice_matrix(case: str, choice: ToolChoice) -> None:
    recorded = _recorded(f"test_tool_choice_matrix[{case}-huggingface].00")
    body, _ = _build(
        CanonicalRequest(SCOUT, [_user("What's the weather in Paris?")], tools=_tools(recorded), tool_choice=choice)
    )
    assert _meaningful(body) == _meaningful(recorded)


def test_recorded_multi_turn_with_reasoning_sent_back_as_think_block() -> None:
    """Parse recorded answer 00, send its items back: request 01 carries the same reasoning and answer."""
    first = ADAPTER.parse_response(_response("test_hf_model_thinking_part.00"))
    question = "Considering the way to cross the street, analogously, how do I cross the river?"
    req = CanonicalRequest(R1, [_user("How do I cross the street?"), *first.output, _user(question)])
    body, fidelity = _build(req)
    recorded = _recorded("test_hf_model_thinking_part.01")
    assert fidelity.dropped == []
    assert [m["role"] for m in body["messages"]] == [m["role"] for m in recorded["messages"]]
    assert body["messages"][0] == {"role": "user", "content": recorded["messages"][0]["content"]}
    assert body["messages"][2] == {"role": "user", "content": question}
    sent, want = body["messages"][1]["content"], recorded["messages"][1]["content"]
    assert sent.startswith("<think>\n")
    assert split_think(sent) == split_think(want)
    assert [kind for kind, _ in split_think(sent)] == ["reasoning", "text"]


# -- requests: quirks ----------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "model",
    [
        "meta-llama/Llama-3.1-8B-Instruct",
        "meta-llama/Llama-3.1-8B-Instruct:novita",
        "deepseek-ai/DeepSeek-R1:fastest",
        "org/name-with.dots_and:suffix",
    ],
)
def test_model_ids_pass_unchanged(model: str) -> None:
    upstream = ADAPTER.build_request(
        CanonicalRequest("huggingface/" + model, [_user("x")]), model, SETTINGS, Fidelity()
    )
    assert orjson.loads(upstream.body)["model"] == model


def test_structured_output_uses_router_json_schema_shape() -> None:
    schema = {"type": "object", "properties": {"a": {"type": "integer"}}, "required": ["a"]}
    body, fidelity = _build(
        CanonicalRequest(R1, [_user("x")], text_format=TextFormat("json_schema", "out", schema, True))
    )
    assert body["response_format"] == {
        "type": "json_schema",
        "json_schema": {"name": "out", "schema": schema, "strict": True},
    }
    assert fidelity.dropped == []
    body, _ = _build(CanonicalRequest(R1, [_user("x")], text_format=TextFormat("json_object")))
    assert body["response_format"] == {"type": "json_object"}


def test_unsupported_fields_are_reported() -> None:
    req = CanonicalRequest(
        R1,
        [_user("x")],
        user="u1",
        service_tier="flex",
        prompt_cache_key="k",
        reasoning_effort="low",
        extra={"tool_prompt": "Use tools:", "verbosity": "low"},
    )
    fidelity = Fidelity(dropped=["tool_prompt", "verbosity"])  # the pipeline reports every extra field first
    body = orjson.loads(ADAPTER.build_request(req, R1, SETTINGS, fidelity).body)
    assert "user" not in body and "service_tier" not in body and "prompt_cache_key" not in body
    assert body["reasoning_effort"] == "low" and body["tool_prompt"] == "Use tools:"
    assert sorted(fidelity.dropped) == ["prompt_cache_key", "service_tier", "user", "verbosity"]


def test_developer_role_becomes_system_and_images_are_sent() -> None:
    image = {"type": "input_image", "image_url": "data:image/png;base64,AAAA", "detail": "auto"}
    req = CanonicalRequest(
        SCOUT,
        [
            {"type": "message", "role": "developer", "content": [{"type": "input_text", "text": "be brief"}]},
            {"type": "message", "role": "user", "content": [{"type": "input_text", "text": "what is it"}, image]},
        ],
    )
    body, fidelity = _build(req)
    assert body["messages"][0] == {"role": "system", "content": "be brief"}
    assert body["messages"][1]["content"][1] == {
        "type": "image_url",
        "image_url": {"url": "data:image/png;base64,AAAA", "detail": "auto"},
    }
    assert fidelity.dropped == []


def test_tool_results_and_parallel_calls_round_trip() -> None:
    req = CanonicalRequest(
        SCOUT,
        [
            _user("weather and time"),
            {"type": "function_call", "call_id": "c1", "name": "get_weather", "arguments": '{"city":"Paris"}'},
            {"type": "function_call", "call_id": "c2", "name": "get_time", "arguments": "{}"},
            {"type": "function_call_output", "call_id": "c1", "output": "sunny"},
            {"type": "function_call_output", "call_id": "c2", "output": "noon"},
        ],
        tools=[FunctionTool("get_weather"), FunctionTool("get_time")],
        parallel_tool_calls=True,
    )
    body, _ = _build(req)
    assistant = body["messages"][1]
    assert assistant["content"] is None  # TGI reads a message with content as text-only
    assert [c["id"] for c in assistant["tool_calls"]] == ["c1", "c2"]
    assert body["messages"][2:] == [
        {"role": "tool", "tool_call_id": "c1", "content": "sunny"},
        {"role": "tool", "tool_call_id": "c2", "content": "noon"},
    ]
    assert body["tool_choice"] == "auto" and body["parallel_tool_calls"] is True


def test_reasoning_before_tool_calls_opens_the_assistant_message() -> None:
    reasoning = {"type": "reasoning", "summary": [], "content": [{"type": "reasoning_text", "text": "look it up"}]}
    call = {"type": "function_call", "call_id": "c1", "name": "get_weather", "arguments": "{}"}
    body, fidelity = _build(
        CanonicalRequest(
            SCOUT, [_user("w?"), reasoning, call, {"type": "function_call_output", "call_id": "c1", "output": "ok"}]
        )
    )
    assert body["messages"][1] == {
        "role": "assistant",
        "content": "<think>\nlook it up\n</think>\n",
        "tool_calls": [{"id": "c1", "type": "function", "function": {"name": "get_weather", "arguments": "{}"}}],
    }
    assert fidelity.dropped == []


def test_reasoning_summary_used_when_no_raw_text_and_runs_merge() -> None:
    items: list[Item] = [
        _user("q"),
        {"type": "reasoning", "summary": [{"type": "summary_text", "text": "first"}], "content": []},
        {"type": "reasoning", "summary": [], "content": [{"type": "reasoning_text", "text": "second"}]},
        _assistant("answer"),
        {"type": "reasoning", "summary": [], "content": []},
        _user("again"),
    ]
    body, fidelity = _build(CanonicalRequest(SCOUT, items))
    assert body["messages"] == [
        {"role": "user", "content": "q"},
        {"role": "assistant", "content": "<think>\nfirst\nsecond\n</think>\n\nanswer"},
        {"role": "user", "content": "again"},
    ]
    assert fidelity.dropped == []


def test_foreign_reasoning_state_is_dropped_and_reported() -> None:
    state = reasoning_state.wrap("anthropic", {"signature": "sig"})
    items: list[Item] = [
        _user("q"),
        {
            "type": "reasoning",
            "summary": [],
            "content": [{"type": "reasoning_text", "text": "mull"}],
            "encrypted_content": state,
        },
        _assistant("a"),
        {"type": "reasoning", "summary": [], "content": [], "encrypted_content": "gAAAA-openai-opaque"},
        _user("next"),
        {"type": "reasoning", "summary": [], "content": [], "encrypted_content": "tw1.bad.%%%"},
    ]
    body, fidelity = _build(CanonicalRequest(SCOUT, items))
    assert body["messages"][1] == {"role": "assistant", "content": "<think>\nmull\n</think>\n\na"}
    assert body["messages"][2] == {"role": "user", "content": "next"}
    assert len(body["messages"]) == 3
    assert fidelity.dropped == [
        "input[1].encrypted_content (reasoning state from anthropic)",
        "input[3].encrypted_content (reasoning state from openai)",
        "input[5].encrypted_content (corrupt state)",
    ]


def test_input_is_not_mutated() -> None:
    items = [
        _user("q"),
        {"type": "reasoning", "summary": [], "content": [{"type": "reasoning_text", "text": "t"}]},
        _assistant("a"),
    ]
    snapshot = orjson.dumps(items)
    req = CanonicalRequest(SCOUT, items)
    _build(req)
    assert orjson.dumps(req.input) == snapshot and req.input is items


# -- responses: every recorded response -------------------------------------------------------------------


@pytest.mark.parametrize(
    ("base", "reasoning_start", "reasoning_end", "text", "usage"),
    [
        (
            "test_simple_completion.00",
            'Hmm, the user just said "hello".',
            "feels right here.",
            "Hello! 👋 How can I help you today?",
            (4, 197),
        ),
        (
            "test_request_simple_usage.00",
            'Okay, the user just said "Hello".',
            "treat it as genuine.",
            "Hello! 😊  \nHow can I help you today? Whether",
            (4, 258),
        ),
        (
            "test_hf_model_instructions.00",
            "Okay, the user is asking about the capital of France.",
            "For now, brevity wins.",
            "The capital of France is **Paris**.",
            (16, 216),
        ),
        (
            "test_hf_model_thinking_part.00",
            'Okay, the user asked "How do I cross the street?"',
            "Lives depend on it.",
            "Crossing the street safely requires",
            (10, 995),
        ),
        (
            "test_hf_model_thinking_part.01",
            "Okay, the user is asking how to cross a river",
            "arrogance.",
            "Crossing a river is **far more dangerous**",
            (32, 1425),
        ),
    ],
)
def test_recorded_think_responses(
    base: str, reasoning_start: str, reasoning_end: str, text: str, usage: tuple[int, int]
) -> None:
    resp = ADAPTER.parse_response(_response(base))
    assert resp.status == "completed" and resp.incomplete_reason is None
    assert [item["type"] for item in resp.output] == ["reasoning", "message"]
    thought = resp.output[0]["content"][0]["text"]
    assert thought.startswith(reasoning_start) and thought.endswith(reasoning_end)
    assert "<think>" not in thought and "</think>" not in thought
    answer = resp.output[1]["content"][0]["text"]
    assert answer.startswith(text) and "</think>" not in answer
    assert resp.usage is not None
    assert (resp.usage.input_tokens, resp.usage.output_tokens, resp.usage.cached_tokens) == (*usage, 0)
    assert resp.upstream_model == R1 and resp.upstream_id and resp.upstream_id.startswith("oV1")


def test_recorded_length_cut_inside_reasoning() -> None:
    resp = ADAPTER.parse_response(_response("test_max_completion_tokens.00"))
    assert resp.status == "incomplete" and resp.incomplete_reason == "max_output_tokens"
    assert [item["type"] for item in resp.output] == ["reasoning"]
    text = resp.output[0]["content"][0]["text"]
    assert text.startswith('Hmm, the user just said "hello".') and text.endswith("- Acknowledge")
    assert resp.usage is not None and (resp.usage.input_tokens, resp.usage.output_tokens) == (4, 100)


def test_recorded_tool_call_responses() -> None:
    resp = ADAPTER.parse_response(_response("test_request_structured_response.00"))
    assert resp.output == [
        {
            "type": "function_call",
            "call_id": "call_7qxjvbuxpm6017n3jcq1uqwt",
            "name": "final_result",
            "arguments": '{"response":[2,3,5]}',
            "status": "completed",
        }
    ]
    assert resp.usage is not None and (resp.usage.input_tokens, resp.usage.output_tokens) == (19, 29)
    for case, call_id in (
        ("required", "call_fd883226aed04dee83ca77e0"),
        ("list_single", "call_99570319d73645dcb2075755"),
    ):
        resp = ADAPTER.parse_response(_response(f"test_tool_choice_matrix[{case}-huggingface].00"))
        assert resp.output == [
            {
                "type": "function_call",
                "call_id": call_id,
                "name": "get_weather",
                "arguments": '{"city": "Paris"}',
                "status": "completed",
            }
        ]  # content "" → no message
        assert resp.usage is not None and (resp.usage.input_tokens, resp.usage.output_tokens) == (608, 30)
        assert resp.upstream_model == SCOUT


def test_recorded_plain_text_response() -> None:
    resp = ADAPTER.parse_response(_response("test_tool_choice_matrix[none-huggingface].00"))
    assert [item["type"] for item in resp.output] == ["message"]
    text = resp.output[0]["content"][0]["text"]
    assert text.startswith("I'm not able to provide real-time information") and text.endswith("feel free to ask!")
    assert resp.usage is not None and (resp.usage.input_tokens, resp.usage.output_tokens) == (17, 210)


# -- responses: quirks ----------------------------------------------------------------------------------------


def _body(message: dict[str, Any], finish: str = "stop", usage: Any = None, rid: str = "r1") -> bytes:
    data: dict[str, Any] = {
        "id": rid,
        "model": "m",
        "choices": [{"index": 0, "message": message, "finish_reason": finish}],
    }
    if usage is not None:
        data["usage"] = usage
    return orjson.dumps(data)


def test_tgi_tool_calls_object_arguments_missing_ids_and_type() -> None:
    message = {
        "role": "assistant",
        "tool_calls": [
            {"function": {"name": "get_weather", "arguments": {"city": "Paris", "units": ["c"]}, "description": None}},
            {"id": "", "function": {"name": "get_time", "arguments": {}}},
        ],
    }
    first = ADAPTER.parse_response(_body(message, "eos_token", rid=""))
    again = ADAPTER.parse_response(_body(message, "eos_token", rid=""))
    assert first.status == "completed"
    calls = first.output
    assert [c["arguments"] for c in calls] == ['{"city":"Paris","units":["c"]}', "{}"]
    assert calls[0]["call_id"] == synth_call_id(None, 0, "get_weather")
    assert calls[1]["call_id"] == synth_call_id(None, 1, "get_time")
    assert calls[0]["call_id"] != calls[1]["call_id"]
    assert [c["call_id"] for c in again.output] == [c["call_id"] for c in calls]  # deterministic
    other = ADAPTER.parse_response(_body(message, "eos_token", rid="r2"))
    assert other.output[0]["call_id"] != calls[0]["call_id"]


def test_repeated_tool_call_ids_are_made_unique() -> None:
    message = {
        "role": "assistant",
        "tool_calls": [
            {"id": "0", "type": "function", "function": {"name": "a", "arguments": "{}"}},
            {"id": "0", "type": "function", "function": {"name": "b", "arguments": "{}"}},
        ],
    }
    ids = [c["call_id"] for c in ADAPTER.parse_response(_body(message, "tool_calls")).output]
    assert ids == ["0", synth_call_id("r1", 1, "b")]


@pytest.mark.parametrize(
    ("finish", "status", "reason"),
    [
        ("eos_token", "completed", None),
        ("stop_sequence", "completed", None),
        ("stop", "completed", None),
        ("tool_calls", "completed", None),
        ("length", "incomplete", "max_output_tokens"),
        ("content_filter", "incomplete", "content_filter"),
        (None, "completed", None),
    ],
)
def test_finish_reasons(finish: str | None, status: str, reason: str | None) -> None:
    resp = ADAPTER.parse_response(_body({"role": "assistant", "content": "hi"}, finish))  # type: ignore[arg-type]
    assert (resp.status, resp.incomplete_reason) == (status, reason)


def test_reasoning_fields_and_usage_shapes() -> None:
    for field in ("reasoning_content", "reasoning"):
        resp = ADAPTER.parse_response(_body({"role": "assistant", "content": "done", field: "pondered"}))
        assert resp.output[0]["content"] == [{"type": "reasoning_text", "text": "pondered"}]
        assert resp.output[1]["content"][0]["text"] == "done"
        assert resp.usage is None  # no usage sent: none reported (never zero)
    together = {"prompt_tokens": 10, "completion_tokens": 5, "total_tokens": 15, "cached_tokens": 4}
    usage = ADAPTER.parse_response(_body({"role": "assistant", "content": "x"}, usage=together)).usage
    assert usage is not None and (usage.input_tokens, usage.output_tokens, usage.cached_tokens) == (10, 5, 4)
    details = {
        "prompt_tokens": 10,
        "completion_tokens": 5,
        "prompt_tokens_details": {"cached_tokens": 6},
        "completion_tokens_details": {"reasoning_tokens": 3},
        "cached_tokens": 1,
    }
    usage = ADAPTER.parse_response(_body({"role": "assistant", "content": "x"}, usage=details)).usage
    assert usage is not None and (usage.cached_tokens, usage.reasoning_tokens) == (6, 3)


@pytest.mark.parametrize(
    ("content", "expected"),
    [
        ("plain", [("text", "plain")]),
        ("  \n<think>\n a \n</think>\n\n b ", [("reasoning", "a"), ("text", "b ")]),
        ("<think></think>answer", [("text", "answer")]),
        ("<think>\n\n</think>\n\n", []),
        ("<think>cut short", [("reasoning", "cut short")]),
        ("text then <think>x</think>", [("text", "text then <think>x</think>")]),
        ("<thinking>not a tag", [("text", "<thinking>not a tag")]),
        ("", []),
    ],
)
def test_split_think(content: str, expected: list[tuple[str, str]]) -> None:
    assert split_think(content) == expected


# -- errors --------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("body", "message", "code"),
    [
        (
            b'{"error": "Input validation error: `inputs` must be < 4096 tokens", "error_type": "validation"}',
            "Input validation error: `inputs` must be < 4096 tokens",
            "validation",
        ),
        (
            b'{"error": {"message": "Model not supported by provider", "type": "invalid_request_error", "code": null}}',
            "Model not supported by provider",
            "invalid_request_error",
        ),
        (
            b'{"object": "error", "message": "The model `x` does not exist.", "type": "NotFoundError", "code": 404}',
            "The model `x` does not exist.",
            "NotFoundError",
        ),
        (b'{"message": "Unauthorized"}', "Unauthorized", None),
        (
            b'{"error": ["Error in `parameters`: bad", "Error in `inputs`: worse"]}',
            "Error in `parameters`: bad; Error in `inputs`: worse",
            None,
        ),
        (
            b'{"error": "Model meta-llama/Llama-3.1-8B-Instruct is currently loading", "estimated_time": 20.0}',
            "Model meta-llama/Llama-3.1-8B-Instruct is currently loading (estimated time 20s)",
            None,
        ),
        (b'{"detail": "Not Found"}', "Not Found", None),
        (b"<html>502 Bad Gateway</html>", "<html>502 Bad Gateway</html>", None),
        (b"", "upstream returned an empty error body", None),
    ],
)
def test_error_bodies(body: bytes, message: str, code: str | None) -> None:
    assert ADAPTER.error_message(body) == (message, code)


def test_model_loading_maps_to_overloaded_with_message() -> None:
    message, code = ADAPTER.error_message(b'{"error": "Model x is currently loading", "estimated_time": 7.5}')
    err = upstream_error("huggingface", 503, message, code=code)
    assert (err.status, err.type, err.code) == (503, "overloaded_error", "provider_overloaded")
    assert err.message == "huggingface: Model x is currently loading (estimated time 7.5s)"
    message, code = ADAPTER.error_message(b'{"error": "Rate limited"}')
    limited = upstream_error("huggingface", 429, message, code=code, retry_after="3")
    assert limited.status == 429 and limited.headers == {"retry-after": "3"}


def test_error_in_a_200_body_is_a_502() -> None:
    with pytest.raises(GatewayError) as info:
        ADAPTER.parse_response(b'{"error": "Request failed during generation", "error_type": "generation"}')
    assert info.value.status == 502 and info.value.code == "generation"
    assert "Request failed during generation" in info.value.message

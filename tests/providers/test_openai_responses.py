"""Tests for the OpenAI Responses API adapter, driven by the recorded wire fixtures in ../shared."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import orjson
import pytest

from tollway.core import reasoning_state
from tollway.core.errors import GatewayError
from tollway.core.types import (
    CanonicalRequest,
    Delta,
    Fidelity,
    Finish,
    FunctionTool,
    Item,
    ItemDone,
    ReasoningDelta,
    ReasoningState,
    RefusalDelta,
    StreamError,
    TextDelta,
    TextFormat,
    ToolCallArgsDelta,
    ToolCallStart,
    ToolChoice,
    UsageUpdate,
)
from tollway.providers.base import Adapter, ProviderSettings
from tollway.providers.openai_responses import OpenAIResponsesAdapter

REPO_ROOT = Path(__file__).resolve().parents[2]
WIRE = REPO_ROOT / ".." / "shared" / "specs" / "providers" / "openai" / "wire"

ADAPTER: Adapter = OpenAIResponsesAdapter()
SETTINGS = ProviderSettings(
    name="openai", kind="openai_responses", base_url="https://api.openai.com/v1", api_key="sk-x"
)


def _index() -> list[dict[str, Any]]:
    entries: list[dict[str, Any]] = json.loads((WIRE / "INDEX.json").read_text(encoding="utf-8"))
    return [e for e in entries if e["uri"].endswith("/responses")]


RESPONSES_ENTRIES = _index()
REQUEST_BASES = [e["file_base"].removeprefix("wire/") for e in RESPONSES_ENTRIES]
JSON_BASES = [b for b, e in zip(REQUEST_BASES, RESPONSES_ENTRIES, strict=True) if "json" in e["content_type"]]
SSE_BASES = [b for b, e in zip(REQUEST_BASES, RESPONSES_ENTRIES, strict=True) if "event-stream" in e["content_type"]]


def _load(name: str) -> Any:
    return json.loads((WIRE / name).read_text(encoding="utf-8"))


def _lines(text: str) -> list[dict[str, Any]]:
    """Synthetic upstream events or bodies, one JSON object per line."""
    return [json.loads(line) for line in text.strip().splitlines()]


def _sse_frames(raw: str) -> list[tuple[str | None, bytes]]:
    """Minimal SSE framer (the client's job in production)."""
    frames: list[tuple[str | None, bytes]] = []
    for block in raw.split("\n\n"):
        event: str | None = None
        data: list[str] = []
        for line in block.split("\n"):
            if line.startswith("event:"):
                event = line[6:].strip()
            elif line.startswith("data:"):
                data.append(line[5:].removeprefix(" "))
        if data:
            frames.append((event, "\n".join(data).encode()))
    return frames


def _run_stream(base: str) -> tuple[list[Delta], list[Delta]]:
    parser = ADAPTER.stream_parser(CanonicalRequest(model="m", input=[], stream=True))
    deltas: list[Delta] = []
    for event, data in _sse_frames((WIRE / f"{base}.response.sse").read_text(encoding="utf-8")):
        deltas.extend(parser.feed(event, data))
    return deltas, parser.close()


def _sse_events(base: str) -> list[dict[str, Any]]:
    return [json.loads(d) for _, d in _sse_frames((WIRE / f"{base}.response.sse").read_text(encoding="utf-8"))]


def _assemble(deltas: list[Delta]) -> list[Item]:
    """What the core does with deltas, reduced to canonical items (test-side reference)."""
    items: dict[Any, Item] = {}

    def get(key: Any, factory: dict[str, Any]) -> Item:
        if key not in items:
            items[key] = factory
        return items[key]

    for d in deltas:
        if isinstance(d, TextDelta):
            msg = get(d.key, {"type": "message", "role": "assistant", "content": []})
            if d.phase is not None:
                msg["phase"] = d.phase
            if not msg["content"]:
                msg["content"].append({"type": "output_text", "text": "", "annotations": []})
            msg["content"][0]["text"] += d.text
        elif isinstance(d, RefusalDelta):
            msg = get(d.key, {"type": "message", "role": "assistant", "content": []})
            msg["content"].append({"type": "refusal", "refusal": d.text})
        elif isinstance(d, ToolCallStart):
            get(d.key, {"type": "function_call", "call_id": d.call_id, "name": d.name, "arguments": ""})
        elif isinstance(d, ToolCallArgsDelta):
            items[d.key]["arguments"] += d.delta
        elif isinstance(d, ReasoningDelta):
            item = get(d.key, {"type": "reasoning", "summary": [], "content": []})
            field, ptype = ("summary", "summary_text") if d.summary else ("content", "reasoning_text")
            if not item[field]:
                item[field].append({"type": ptype, "text": ""})
            item[field][0]["text"] += d.text
        elif isinstance(d, ReasoningState):
            get(d.key, {"type": "reasoning", "summary": [], "content": []})["encrypted_content"] = d.encrypted_content
    return list(items.values())


# --------------------------------------------------------------------------------------------------
# A door, reduced: recorded OpenAI request body → the CanonicalRequest tollway would hold for it.
# --------------------------------------------------------------------------------------------------


def _canonical_item(item: dict[str, Any]) -> Item:
    item = dict(item)
    if item.get("type", "message") == "message":
        item["type"] = "message"
        if isinstance(item["content"], str):
            ptype = "output_text" if item["role"] == "assistant" else "input_text"
            part: dict[str, Any] = {"type": ptype, "text": item["content"]}
            if ptype == "output_text":
                part["annotations"] = []
            item["content"] = [part]
    if item["type"] == "reasoning" and "encrypted_content" in item:
        # tollway handed this item to the client wrapped in its envelope
        item["encrypted_content"] = reasoning_state.wrap("openai", {"encrypted_content": item["encrypted_content"]})
    return item


def _canonical_request(body: dict[str, Any]) -> CanonicalRequest:
    raw_choice = body.get("tool_choice", "auto")
    if isinstance(raw_choice, dict):
        choice = ToolChoice(mode="required", allowed=[raw_choice["name"]], raw=raw_choice)
    else:
        choice = ToolChoice(mode=raw_choice, raw=raw_choice)
    reasoning = body.get("reasoning") or {}
    return CanonicalRequest(
        model="openai/" + body["model"],
        input=[_canonical_item(i) for i in body["input"]],
        instructions=body.get("instructions"),
        tools=[
            FunctionTool(t["name"], t.get("description"), t.get("parameters"), t.get("strict"))
            for t in body.get("tools", [])
        ],
        tool_choice=choice,
        reasoning_effort=reasoning.get("effort"),
        reasoning_summary=reasoning.get("summary"),
        stream=body["stream"],
        prompt_cache_key=body.get("prompt_cache_key"),
        service_tier=body.get("service_tier"),
        include=[],  # the include in recordings is the client library's own, not the end user's
        metadata={"client": "own"},
        extra={k: body[k] for k in ("prompt_cache_options",) if k in body},
    )


def _expected_input(item: dict[str, Any]) -> dict[str, Any]:
    """The recorded item as tollway sends it: string content as parts, no id/status (store is false)."""
    out = {k: v for k, v in item.items() if k not in ("id", "status")}
    out.setdefault("type", "message")
    if out["type"] == "message" and isinstance(out["content"], str):
        ptype = "output_text" if out["role"] == "assistant" else "input_text"
        part: dict[str, Any] = {"type": ptype, "text": out["content"]}
        if ptype == "output_text":
            part["annotations"] = []
        out["content"] = [part]
    return out


def _build(req: CanonicalRequest, model: str) -> tuple[dict[str, Any], Fidelity]:
    fidelity = Fidelity()
    upstream = ADAPTER.build_request(req, model, SETTINGS, fidelity)
    body: dict[str, Any] = orjson.loads(upstream.body)
    return body, fidelity


@pytest.mark.parametrize("base", REQUEST_BASES)
def test_recorded_request_matches(base: str) -> None:
    recorded = _load(f"{base}.request.json")
    req = _canonical_request(recorded)
    body, fidelity = _build(req, recorded["model"])

    for field in ("model", "instructions", "tool_choice", "stream", "service_tier", "prompt_cache_key"):
        assert body.get(field) == recorded.get(field), field
    for field in ("prompt_cache_options",):
        assert body.get(field) == recorded.get(field), field
    # tools: tollway omits null fields (description: null) instead of sending them
    expected_tools = [{k: v for k, v in t.items() if v is not None} for t in recorded.get("tools", [])]
    assert body.get("tools", []) == expected_tools
    expected_reasoning = {k: v for k, v in (recorded.get("reasoning") or {}).items() if v is not None}
    assert body.get("reasoning", {}) == expected_reasoning
    for field in ("max_output_tokens", "temperature", "text"):
        assert body.get(field) == recorded.get(field)
    assert body["input"] == [_expected_input(i) for i in recorded["input"]]

    # Intentional differences: state stays in tollway, so store is false and reasoning state is asked
    # for (only for reasoning models: gpt-4o rejects it). metadata is the client's own: not forwarded.
    assert body["store"] is False
    assert body.get("include") == recorded.get("include")
    assert "metadata" not in body
    assert set(body) - set(recorded) == {"store"}
    dropped_nulls = {k for k, v in recorded.items() if v is None}  # e.g. previous_response_id: null
    assert set(recorded) - set(body) == dropped_nulls
    assert fidelity.dropped == [] and fidelity.approximated == []


def test_recorded_ids_are_not_sent_upstream() -> None:
    recorded = _load("test_openai_responses_phase_streamed_on_part_start.01.request.json")
    assert any("id" in item for item in recorded["input"])
    body, _ = _build(_canonical_request(recorded), recorded["model"])
    assert all("id" not in item and "status" not in item for item in body["input"])
    reasoning = [i for i in body["input"] if i["type"] == "reasoning"]
    assert reasoning == [
        {"type": "reasoning", "summary": [], "encrypted_content": recorded["input"][1]["encrypted_content"]}
    ]


def test_request_envelope() -> None:
    settings = ProviderSettings(
        name="openai",
        kind="openai_responses",
        base_url="https://gw.example/v1",
        api_key="sk-test",
        headers={"openai-organization": "org-1"},
    )
    req = CanonicalRequest(model="gpt-4o", input=[], stream=True)
    upstream = ADAPTER.build_request(req, "gpt-4o", settings, Fidelity())
    assert upstream.method == "POST"
    assert upstream.url == "https://gw.example/v1/responses"
    assert upstream.headers["authorization"] == "Bearer sk-test"
    assert upstream.headers["content-type"] == "application/json"
    assert upstream.headers["openai-organization"] == "org-1"
    assert upstream.stream is True and upstream.stream_format == "sse"

    keyless = ProviderSettings(name="local", kind="openai_responses", base_url="http://localhost:8000/v1")
    upstream = ADAPTER.build_request(CanonicalRequest(model="m", input=[]), "m", keyless, Fidelity())
    assert "authorization" not in upstream.headers
    assert upstream.stream is False
    assert orjson.loads(upstream.body)["stream"] is False


# --------------------------------------------------------------------------------------------------
# Request mapping details
# --------------------------------------------------------------------------------------------------


def _user(text: str) -> Item:
    return {"type": "message", "role": "user", "content": [{"type": "input_text", "text": text}]}


def test_scalars_format_and_user() -> None:
    req = CanonicalRequest(
        model="x",
        input=[_user("hi")],
        text_format=TextFormat(type="json_schema", name="answer", schema={"type": "object"}, strict=True),
        reasoning_effort="low",
        max_output_tokens=64,
        temperature=0.2,
        top_p=0.9,
        presence_penalty=0.1,
        frequency_penalty=0.3,
        top_logprobs=2,
        parallel_tool_calls=False,
        truncation="auto",
        user="user-42",
        prompt_cache_key="pck",
        service_tier="flex",
        max_tool_calls=3,
        metadata={"a": "b"},
        extra={"prompt_cache_retention": "24h"},
    )
    body, fidelity = _build(req, "gpt-5-mini")
    assert body["text"] == {
        "format": {"type": "json_schema", "name": "answer", "schema": {"type": "object"}, "strict": True}
    }
    assert body["reasoning"] == {"effort": "low"}
    expected = {
        "max_output_tokens": 64,
        "temperature": 0.2,
        "top_p": 0.9,
        "presence_penalty": 0.1,
        "frequency_penalty": 0.3,
        "top_logprobs": 2,
        "parallel_tool_calls": False,
        "truncation": "auto",
        "prompt_cache_key": "pck",
        "service_tier": "flex",
        "max_tool_calls": 3,
        "safety_identifier": "user-42",
        "prompt_cache_retention": "24h",
    }
    assert {k: body[k] for k in expected} == expected
    assert "user" not in body and "metadata" not in body and "previous_response_id" not in body
    assert fidelity.dropped == []

    body, _ = _build(CanonicalRequest(model="x", input=[], text_format=TextFormat(type="json_object")), "gpt-4o")
    assert body["text"] == {"format": {"type": "json_object"}}


def test_stop_seed_and_unknown_extra_are_dropped() -> None:
    req = CanonicalRequest(model="x", input=[_user("hi")], stop=["\n"], seed=7, extra={"logit_bias": {"1": 2}})
    body, fidelity = _build(req, "gpt-4o")
    assert "stop" not in body and "seed" not in body and "logit_bias" not in body
    assert sorted(fidelity.dropped) == ["logit_bias", "seed", "stop"]


@pytest.mark.parametrize(
    ("choice", "expected"),
    [
        (ToolChoice(mode="none", raw="none"), "none"),
        (ToolChoice(mode="required", raw="required"), "required"),
        (
            ToolChoice(mode="required", allowed=["a"], raw={"type": "function", "name": "a"}),
            {"type": "function", "name": "a"},
        ),
        (
            ToolChoice(
                mode="auto",
                allowed=["a"],
                raw={"type": "allowed_tools", "mode": "auto", "tools": [{"type": "function", "name": "a"}]},
            ),
            {"type": "allowed_tools", "mode": "auto", "tools": [{"type": "function", "name": "a"}]},
        ),
        # Chat Completions shapes are not valid here: rebuilt from the normalised choice.
        (
            ToolChoice(mode="required", allowed=["a"], raw={"type": "function", "function": {"name": "a"}}),
            {"type": "function", "name": "a"},
        ),
        (
            ToolChoice(mode="auto", allowed=["a", "b"], raw={"type": "function", "function": {"name": "a"}}),
            {
                "type": "allowed_tools",
                "mode": "auto",
                "tools": [{"type": "function", "name": "a"}, {"type": "function", "name": "b"}],
            },
        ),
    ],
)
def test_tool_choice(choice: ToolChoice, expected: Any) -> None:
    tools = [FunctionTool("a", parameters={"type": "object"}), FunctionTool("b")]
    body, _ = _build(CanonicalRequest(model="x", input=[], tools=tools, tool_choice=choice), "gpt-4o")
    assert body["tool_choice"] == expected
    assert body["tools"] == [
        {"type": "function", "name": "a", "parameters": {"type": "object"}},
        {"type": "function", "name": "b"},
    ]


@pytest.mark.parametrize(
    ("model", "req_kwargs", "include"),
    [
        ("gpt-4o", {}, None),
        ("gpt-5-chat-latest", {}, None),
        ("gpt-4o", {"include": ["message.output_text.logprobs"]}, ["message.output_text.logprobs"]),
        ("o3", {}, ["reasoning.encrypted_content"]),
        ("gpt-5.5", {}, ["reasoning.encrypted_content"]),
        ("ft:o4-mini-2025-04-16:org::abc", {}, ["reasoning.encrypted_content"]),
        ("my-finetune", {"reasoning_effort": "high"}, ["reasoning.encrypted_content"]),
        ("o4-mini", {"include": ["reasoning.encrypted_content"]}, ["reasoning.encrypted_content"]),
    ],
)
def test_include_reasoning_state_for_reasoning_models(model: str, req_kwargs: dict[str, Any], include: Any) -> None:
    body, _ = _build(CanonicalRequest(model=model, input=[_user("hi")], **req_kwargs), model)
    assert body.get("include") == include
    assert body["store"] is False


MIXED_INPUT = """
{"type": "message", "role": "developer", "content": [{"type": "output_text", "text": "be brief", "annotations": []}]}
{"type": "message", "role": "user", "phase": "commentary", "content": [{"type": "input_text", "text": "look"}, \
{"type": "input_image", "image_url": "data:image/png;base64,AAAA"}]}
{"type": "message", "role": "assistant", "id": "msg_tw_1", "status": "completed", \
"content": [{"type": "input_text", "text": "seen"}, {"type": "refusal", "refusal": "no"}]}
{"type": "function_call", "id": "fc_tw", "status": "completed", "call_id": "c1", "name": "f", "arguments": "{}"}
{"type": "function_call_output", "id": "fco_tw", "call_id": "c1", "output": "42"}
"""

MIXED_INPUT_UPSTREAM = """
{"type": "message", "role": "developer", "content": [{"type": "input_text", "text": "be brief"}]}
{"type": "message", "role": "user", "content": [{"type": "input_text", "text": "look"}, \
{"type": "input_image", "detail": "auto", "image_url": "data:image/png;base64,AAAA"}]}
{"type": "message", "role": "assistant", \
"content": [{"type": "output_text", "text": "seen", "annotations": []}, {"type": "refusal", "refusal": "no"}]}
{"type": "function_call", "call_id": "c1", "name": "f", "arguments": "{}"}
{"type": "function_call_output", "call_id": "c1", "output": "42"}
"""


def test_message_parts_follow_role() -> None:
    """Parts are sent in the form OpenAI accepts for the role; ids, status and user-side phase are not sent."""
    body, fidelity = _build(CanonicalRequest(model="x", input=_lines(MIXED_INPUT)), "gpt-4o")
    assert body["input"] == _lines(MIXED_INPUT_UPSTREAM)
    assert fidelity.dropped == []


def test_item_reference_dropped_and_other_items_passed_without_ids() -> None:
    compaction = {"type": "compaction", "id": "cmp_tw", "encrypted_content": "opaque"}
    req = CanonicalRequest(model="x", input=[{"type": "item_reference", "id": "msg_tw"}, compaction, _user("go")])
    body, fidelity = _build(req, "gpt-4o")
    assert body["input"] == [{"type": "compaction", "encrypted_content": "opaque"}, _user("go")]
    assert fidelity.dropped == ["input[0] (item_reference)"]


# --------------------------------------------------------------------------------------------------
# Reasoning state
# --------------------------------------------------------------------------------------------------


def test_foreign_and_stateless_reasoning_dropped() -> None:
    anthropic_state = reasoning_state.wrap("anthropic", {"signature": "sig", "thinking": "hmm"})
    req = CanonicalRequest(
        model="x",
        input=[
            _user("hi"),
            {
                "type": "message",
                "role": "assistant",
                "content": [{"type": "output_text", "text": "a", "annotations": []}],
            },
            {
                "type": "reasoning",
                "summary": [{"type": "summary_text", "text": "thought"}],
                "encrypted_content": anthropic_state,
            },
            {"type": "reasoning", "summary": [{"type": "summary_text", "text": "no state"}], "content": []},
            {"type": "reasoning", "summary": [], "encrypted_content": "tw1.openai.%%%not-base64"},
            _user("again"),
        ],
    )
    body, fidelity = _build(req, "o3")
    assert [i["type"] for i in body["input"]] == ["message", "message", "message"]
    assert fidelity.dropped == [
        "input[2] (reasoning from anthropic)",
        "input[3] (reasoning without provider state)",
        "input[4] (reasoning state unreadable)",
    ]


def test_bare_openai_state_and_reasoning_text_not_sent() -> None:
    (reasoning,) = _lines(
        """
{"type": "reasoning", "id": "rs_tw", "status": "completed", "summary": [{"type": "summary_text", "text": "s"}], \
"content": [{"type": "reasoning_text", "text": "raw thoughts"}], "encrypted_content": "gAAAA-bare-from-openai"}
"""
    )
    body, fidelity = _build(CanonicalRequest(model="x", input=[_user("hi"), reasoning]), "o3")
    summary = [{"type": "summary_text", "text": "s"}]
    assert body["input"][1] == {"type": "reasoning", "summary": summary, "encrypted_content": "gAAAA-bare-from-openai"}
    assert fidelity.dropped == []


def test_reasoning_round_trip_non_streaming() -> None:
    raw = _load("test_openai_model_thinking_part.00.response.json")
    parsed = ADAPTER.parse_response((WIRE / "test_openai_model_thinking_part.00.response.json").read_bytes())
    follow_up = CanonicalRequest(
        model="o3-mini", input=[_user("How do I cross the street?"), *parsed.output, _user("thanks")]
    )
    body, fidelity = _build(follow_up, "o3-mini")
    sent = body["input"][1]
    assert sent["type"] == "reasoning"
    assert sent["encrypted_content"] == raw["output"][0]["encrypted_content"]
    assert sent["summary"] == raw["output"][0]["summary"]
    assert body["input"][2]["content"][0]["text"] == raw["output"][1]["content"][0]["text"]
    assert fidelity.dropped == []


_ASCII_QUOTES = str.maketrans({"\u2019": "'", "\u201c": '"', "\u201d": '"'})


def test_reasoning_round_trip_streaming_matches_recorded_follow_up() -> None:
    """Stream turn 1, hand its output back as input: the upstream input equals what was recorded for turn 2."""
    deltas, _ = _run_stream("test_openai_responses_phase_streamed_on_part_start.00")
    output = _assemble(deltas)
    recorded = _load("test_openai_responses_phase_streamed_on_part_start.01.request.json")
    turn2 = _canonical_request(recorded)
    turn2.input = [turn2.input[0], *output, turn2.input[-1]]
    body, fidelity = _build(turn2, recorded["model"])
    expected = [_expected_input(i) for i in recorded["input"]]
    # The recorded turn-2 body has the narration with ASCII quotes where the stream sent typographic
    # ones (the recording client re-encoded it); everything else must be byte-for-byte what was sent.
    streamed_text = body["input"][2]["content"][0]["text"]
    assert streamed_text.translate(_ASCII_QUOTES) == expected[2]["content"][0]["text"]
    body["input"][2]["content"][0]["text"] = expected[2]["content"][0]["text"]
    assert body["input"] == expected
    assert fidelity.dropped == []


# --------------------------------------------------------------------------------------------------
# Non-streaming responses
# --------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("base", JSON_BASES)
def test_recorded_json_response(base: str) -> None:
    raw = _load(f"{base}.response.json")
    parsed = ADAPTER.parse_response((WIRE / f"{base}.response.json").read_bytes())
    assert parsed.status == "completed" and parsed.incomplete_reason is None
    assert parsed.upstream_model == raw["model"] and parsed.upstream_id == raw["id"]
    assert len(parsed.output) == len(raw["output"])
    for got, src in zip(parsed.output, raw["output"], strict=True):
        assert "id" not in got
        assert got["type"] == src["type"]
        if src["type"] == "message":
            assert got["role"] == "assistant"
            assert got["content"] == [
                {"type": "output_text", "text": p["text"], "annotations": p["annotations"]} for p in src["content"]
            ]
            assert got.get("phase") == src.get("phase")
        elif src["type"] == "function_call":
            assert (got["call_id"], got["name"], got["arguments"]) == (src["call_id"], src["name"], src["arguments"])
            assert json.loads(got["arguments"]) == {"city": "Paris"}
        else:
            assert got["summary"] == src["summary"] and got["content"] == []
            assert reasoning_state.unwrap(got["encrypted_content"]) == (
                "openai",
                {"encrypted_content": src["encrypted_content"]},
            )
    usage = parsed.usage
    assert usage is not None
    u = raw["usage"]
    assert usage.input_tokens == u["input_tokens"] and usage.output_tokens == u["output_tokens"]
    assert usage.cached_tokens == u["input_tokens_details"]["cached_tokens"]
    assert usage.reasoning_tokens == u["output_tokens_details"]["reasoning_tokens"]


def test_concrete_values_from_fixtures() -> None:
    cache = ADAPTER.parse_response((WIRE / "test_openai_responses_prompt_cache_e2e.01.response.json").read_bytes())
    assert cache.output[0]["content"][0]["text"] == "OK" and cache.output[0]["phase"] == "final_answer"
    assert cache.usage is not None
    assert (cache.usage.input_tokens, cache.usage.cached_tokens, cache.usage.output_tokens) == (4020, 4012, 5)

    thinking = ADAPTER.parse_response((WIRE / "test_openai_model_thinking_part.00.response.json").read_bytes())
    assert thinking.upstream_model == "o3-mini-2025-01-31"
    assert [s["text"].split("\n")[0] for s in thinking.output[0]["summary"]] == [
        "**Emphasizing pedestrian safety**",
        "**Clarifying street crossing guidance**",
    ]
    assert thinking.output[1]["content"][0]["text"].startswith("I'm happy to help.")
    assert (
        thinking.usage is not None and thinking.usage.reasoning_tokens == 1600 and thinking.usage.output_tokens == 1915
    )

    tool = ADAPTER.parse_response(
        (WIRE / "test_tool_choice_matrix[required-openai_responses].00.response.json").read_bytes()
    )
    call = tool.output[1]
    assert (call["call_id"], call["name"], call["arguments"]) == (
        "call_1qsWTcKZwQRwKLxPFIMpbnzV",
        "get_weather",
        '{"city":"Paris"}',
    )
    assert tool.usage is not None and (tool.usage.input_tokens, tool.usage.reasoning_tokens) == (48, 64)


def test_incomplete_failed_refusal_and_unknown_items() -> None:
    (body,) = _lines(
        """
{"id": "resp_1", "model": "gpt-4o", "status": "incomplete", "incomplete_details": {"reason": "content_filter"}, \
"output": [{"type": "web_search_call", "id": "ws_1", "status": "completed"}, {"type": "message", "id": "m", \
"role": "assistant", "status": "incomplete", "content": [{"type": "refusal", "refusal": "can't"}, \
{"type": "output_text", "text": "x"}]}], "usage": {"input_tokens": 3, "output_tokens": 2, \
"input_tokens_details": {"cached_tokens": 1, "cache_write_tokens": 2}}}
"""
    )
    parsed = ADAPTER.parse_response(orjson.dumps(body))
    assert parsed.status == "incomplete" and parsed.incomplete_reason == "content_filter"
    assert parsed.output == [
        {
            "type": "message",
            "role": "assistant",
            "status": "incomplete",
            "content": [
                {"type": "refusal", "refusal": "can't"},
                {"type": "output_text", "text": "x", "annotations": []},
            ],
        },
    ]
    assert parsed.usage is not None and parsed.usage.cache_write_tokens == 2 and parsed.usage.reasoning_tokens == 0

    failed = ADAPTER.parse_response(
        orjson.dumps(
            {"id": "r", "status": "failed", "error": {"code": "server_error", "message": "boom"}, "output": []}
        )
    )
    assert failed.status == "failed" and failed.output == [] and failed.usage is None

    with pytest.raises(GatewayError) as exc:
        ADAPTER.parse_response(b"<html>bad gateway</html>")
    assert exc.value.status == 502


# --------------------------------------------------------------------------------------------------
# Streaming
# --------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("base", SSE_BASES)
def test_recorded_stream(base: str) -> None:
    deltas, tail = _run_stream(base)
    assert tail == []
    events = _sse_events(base)
    completed = next(e for e in events if e["type"] == "response.completed")["response"]
    finish = deltas[-1]
    assert finish == Finish(status="completed", upstream_model=completed["model"], upstream_id=completed["id"])
    usage = deltas[-2]
    assert isinstance(usage, UsageUpdate)
    u = completed["usage"]
    assert (usage.input_tokens, usage.output_tokens) == (u["input_tokens"], u["output_tokens"])
    assert usage.cached_tokens == u["input_tokens_details"]["cached_tokens"]
    assert usage.cache_write_tokens == u["input_tokens_details"].get("cache_write_tokens")
    assert usage.reasoning_tokens == u["output_tokens_details"]["reasoning_tokens"]
    assert not any(isinstance(d, StreamError) for d in deltas)

    # Every item is closed once, and the assembled stream equals the non-streaming parse of the final
    # response (except encrypted content: OpenAI re-encrypts it in the snapshot; output_item.done's counts).
    done_keys = [d.key for d in deltas if isinstance(d, ItemDone)]
    assert done_keys == list(range(len(completed["output"])))
    streamed = _assemble(deltas)
    snapshot = ADAPTER.parse_response(orjson.dumps(completed)).output
    for item in snapshot:
        item.pop("status", None)
        item.pop("encrypted_content", None)
        if item["type"] == "message":
            for part in item["content"]:
                part.pop("logprobs", None)
    item_done = {e["output_index"]: e["item"] for e in events if e["type"] == "response.output_item.done"}
    for key, item in enumerate(streamed):
        if "encrypted_content" in item:
            state = reasoning_state.unwrap(item.pop("encrypted_content"))
            assert state == ("openai", {"encrypted_content": item_done[key]["encrypted_content"]})
    assert streamed == snapshot


def test_stream_concrete_values() -> None:
    deltas, _ = _run_stream("test_openai_responses_stream.00")
    assert deltas[0] == ToolCallStart(0, "call_kL0PCQV7M2WMoVX8V8OtYSAL", "get_capital")
    assert "".join(d.delta for d in deltas if isinstance(d, ToolCallArgsDelta)) == '{"country":"France"}'

    deltas, _ = _run_stream("test_openai_responses_stream.01")
    assert "".join(d.text for d in deltas if isinstance(d, TextDelta)) == "The capital of France is Paris."

    deltas, _ = _run_stream("test_openai_responses_streaming_usage.00")
    states = [d for d in deltas if isinstance(d, ReasoningState)]
    assert len(states) == 1 and states[0].key == 0
    assert deltas[deltas.index(states[0]) + 1] == ItemDone(0)
    assert ToolCallStart(1, "call_CWXgs68YprAjp6t0371hiPOI", "final_result") in deltas
    assert "".join(d.delta for d in deltas if isinstance(d, ToolCallArgsDelta)) == '{"result":6666}'
    usage = next(d for d in deltas if isinstance(d, UsageUpdate))
    assert (usage.input_tokens, usage.output_tokens, usage.reasoning_tokens, usage.cache_write_tokens) == (
        53,
        469,
        448,
        None,
    )

    deltas, _ = _run_stream("test_openai_responses_phase_streamed_on_part_start.00")
    texts = [d for d in deltas if isinstance(d, TextDelta)]
    assert {d.phase for d in texts} == {"commentary"} and {d.key for d in texts} == {1}
    assert "".join(d.text for d in texts) == "I\u2019ll check the capital lookup tool for \u201cPotatoLand.\u201d"
    deltas, _ = _run_stream("test_openai_responses_phase_streamed_on_part_start.01")
    assert {d.phase for d in deltas if isinstance(d, TextDelta)} == {"final_answer"}


def _feed(events: list[dict[str, Any]]) -> tuple[list[Delta], list[Delta]]:
    parser = ADAPTER.stream_parser(CanonicalRequest(model="m", input=[], stream=True))
    out: list[Delta] = []
    for ev in events:
        out.extend(parser.feed(ev["type"], orjson.dumps(ev)))
    return out, parser.close()


def test_truncated_stream() -> None:
    events = _sse_events("test_openai_responses_stream.01")
    cut = [e for e in events if e["type"] != "response.completed"]
    deltas, tail = _feed(cut)
    assert "".join(d.text for d in deltas if isinstance(d, TextDelta)) == "The capital of France is Paris."
    assert not any(isinstance(d, Finish) for d in deltas)
    assert tail == [StreamError("upstream stream ended before response.completed", code="upstream_stream_truncated")]


def test_failed_and_incomplete_streams() -> None:
    failed, incomplete = _lines(
        """
{"type": "response.failed", "sequence_number": 3, "response": {"id": "resp_f", "model": "gpt-5", "status": "failed", \
"output": [], "error": {"code": "server_error", "message": "The model had an error"}, "usage": null}}
{"type": "response.incomplete", "response": {"id": "resp_i", "model": "gpt-5", "status": "incomplete", \
"incomplete_details": {"reason": "max_output_tokens"}, "usage": {"input_tokens": 5, "output_tokens": 16, \
"input_tokens_details": {"cached_tokens": 0}, "output_tokens_details": {"reasoning_tokens": 16}}}}
"""
    )
    deltas, tail = _feed([failed])
    assert deltas == [
        StreamError("The model had an error", code="server_error"),
        Finish(status="failed", upstream_model="gpt-5", upstream_id="resp_f"),
    ]
    assert tail == []
    deltas, _ = _feed([incomplete])
    assert deltas == [
        UsageUpdate(input_tokens=5, output_tokens=16, cached_tokens=0, reasoning_tokens=16),
        Finish("incomplete", incomplete_reason="max_output_tokens", upstream_model="gpt-5", upstream_id="resp_i"),
    ]


def test_error_event_is_flat_and_terminal() -> None:
    event = (
        '{"type": "error", "code": "rate_limit_exceeded", "message": "Slow down", "param": null, "sequence_number": 1}'
    )
    deltas, tail = _feed(_lines(event))
    assert deltas == [StreamError("Slow down", code="rate_limit_exceeded")]
    assert tail == []


REASONING_REFUSAL_AND_DONE_ONLY = """
{"type": "response.output_item.added", "output_index": 0, "item": {"type": "reasoning", "id": "rs", "summary": []}}
{"type": "response.reasoning_summary_text.delta", "output_index": 0, "summary_index": 0, "delta": "First"}
{"type": "response.reasoning_summary_text.delta", "output_index": 0, "summary_index": 1, "delta": "Second"}
{"type": "response.reasoning_text.delta", "output_index": 0, "content_index": 0, "delta": "raw"}
{"type": "response.output_item.done", "output_index": 0, "item": {"type": "reasoning", "encrypted_content": "ENC"}}
{"type": "response.output_item.added", "output_index": 1, "item": {"type": "message", "role": "assistant"}}
{"type": "response.refusal.delta", "output_index": 1, "content_index": 0, "delta": "No."}
{"type": "response.output_item.done", "output_index": 1, "item": {"type": "message", "content": []}}
{"type": "response.output_item.added", "output_index": 2, "item": {"type": "web_search_call", "id": "ws"}}
{"type": "response.output_item.done", "output_index": 2, "item": {"type": "web_search_call", "id": "ws"}}
{"type": "response.output_item.done", "output_index": 3, "item": {"type": "message", "phase": "final_answer", \
"content": [{"type": "output_text", "text": "late"}]}}
{"type": "response.output_item.done", "output_index": 4, "item": {"type": "function_call", "call_id": "c", \
"name": "f", "arguments": "{}"}}
{"type": "response.completed", "response": {"id": "r", "model": "o3", "status": "completed"}}
"""


def test_reasoning_refusal_and_done_only_items() -> None:
    # items 3 and 4 arrive only as output_item.done (no deltas): their content is still emitted
    deltas, tail = _feed(_lines(REASONING_REFUSAL_AND_DONE_ONLY))
    assert deltas == [
        ReasoningDelta(0, "First", summary=True),
        ReasoningDelta(0, "\n\nSecond", summary=True),
        ReasoningDelta(0, "raw", summary=False),
        ReasoningState(0, reasoning_state.wrap("openai", {"encrypted_content": "ENC"})),
        ItemDone(0),
        RefusalDelta(1, "No."),
        ItemDone(1),
        TextDelta(3, "late", "final_answer"),
        ItemDone(3),
        ToolCallStart(4, "c", "f"),
        ToolCallArgsDelta(4, "{}"),
        ItemDone(4),
        Finish(status="completed", upstream_model="o3", upstream_id="r"),
    ]
    assert tail == []


def test_malformed_event() -> None:
    parser = ADAPTER.stream_parser(CanonicalRequest(model="m", input=[]))
    assert parser.feed("response.output_text.delta", b"{not json") == [
        StreamError("malformed event in upstream stream", code="upstream_invalid_event")
    ]
    assert parser.feed(None, b"[DONE]") == []
    assert parser.feed("response.created", b'{"type":"response.created","response":{}}') == []


# --------------------------------------------------------------------------------------------------
# Errors
# --------------------------------------------------------------------------------------------------


def test_error_message() -> None:
    body = (WIRE / "test_openai_web_search_tool_model_not_supported.00.response.json").read_bytes()
    assert ADAPTER.error_message(body) == ("Web search options not supported with this model.", "invalid_request_error")
    coded = b'{"error":{"message":"Item not found","type":"invalid_request_error","code":"not_found"}}'
    assert ADAPTER.error_message(coded) == ("Item not found", "not_found")
    html = b"<html>" + b"x" * 1000
    message, code = ADAPTER.error_message(html)
    assert message == html.decode()[:500] and code is None
    assert ADAPTER.error_message(b"[1, 2]") == ("[1, 2]", None)
    assert ADAPTER.error_message(b"\xff\xfe")[1] is None

"""Tests for the Anthropic adapter: responses, streams, round trips and errors, against recorded real
exchanges (../shared/specs/providers/anthropic)."""

from __future__ import annotations

import copy
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
    ToolCallArgsDelta,
    ToolCallStart,
    UsageUpdate,
)
from tollway.providers.anthropic import STOP_REASONS, AnthropicAdapter, AnthropicStreamParser
from tollway.providers.anthropic_request import DEFAULT_MAX_TOKENS, THINKING_BUDGETS
from tollway.providers.base import ProviderSettings

ROOT = Path(__file__).resolve().parents[2]
ANTHROPIC = ROOT / ".." / "shared" / "specs" / "providers" / "anthropic"
WIRE = ANTHROPIC / "wire"
SDK_WIRE = ANTHROPIC / "wire-sdk-snapshots"

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


def sse_events(raw: bytes) -> list[tuple[str | None, bytes]]:
    """Split an SSE body into (event, data) pairs; ``data`` joins multi-line data fields."""
    events: list[tuple[str | None, bytes]] = []
    for chunk in raw.replace(b"\r\n", b"\n").split(b"\n\n"):
        event: str | None = None
        data: list[bytes] = []
        for line in chunk.split(b"\n"):
            if line.startswith(b"event:"):
                event = line[6:].strip().decode()
            elif line.startswith(b"data:"):
                data.append(line[5:].removeprefix(b" "))
        if data:
            events.append((event, b"\n".join(data)))
    return events


def run_stream(path: Path) -> list[Delta]:
    parser = ADAPTER.stream_parser(CanonicalRequest(model="m", input=[]))
    deltas: list[Delta] = []
    for event, data in sse_events(path.read_bytes()):
        deltas.extend(parser.feed(event, data))
    deltas.extend(parser.close())
    return deltas


def fold(deltas: list[Delta]) -> list[Item]:
    """A minimal assembler: deltas -> output items shaped like parse_response's. Also checks the delta
    protocol: nothing arrives for an item after its ItemDone, and every item gets exactly one ItemDone."""
    items: dict[Any, Item] = {}
    done: set[Any] = set()

    def item(key: Any, kind: str) -> Item:
        assert key not in done, f"delta for finished item {key}"
        if key not in items:
            if kind == "message":
                items[key] = {"type": "message", "role": "assistant", "status": "completed", "content": []}
            elif kind == "reasoning":
                items[key] = {"type": "reasoning", "summary": [], "content": []}
            else:
                items[key] = {"type": "function_call", "arguments": "", "status": "completed"}
        assert items[key]["type"] == kind
        return items[key]

    for d in deltas:
        if isinstance(d, TextDelta):
            content = item(d.key, "message")["content"]
            if not content:
                content.append({"type": "output_text", "text": "", "annotations": []})
            content[0]["text"] += d.text
        elif isinstance(d, RefusalDelta):
            item(d.key, "message")["content"].append({"type": "refusal", "refusal": d.text})
        elif isinstance(d, ReasoningDelta):
            content = item(d.key, "reasoning")["content"]
            if not content:
                content.append({"type": "reasoning_text", "text": ""})
            content[0]["text"] += d.text
        elif isinstance(d, ReasoningState):
            item(d.key, "reasoning")["encrypted_content"] = d.encrypted_content
        elif isinstance(d, ToolCallStart):
            call = item(d.key, "function_call")
            call["call_id"], call["name"] = d.call_id, d.name
        elif isinstance(d, ToolCallArgsDelta):
            item(d.key, "function_call")["arguments"] += d.delta
        elif isinstance(d, ItemDone):
            assert d.key in items and d.key not in done
            done.add(d.key)
    assert done == set(items), "every item must be finished"
    return list(items.values())


def accumulate(path: Path) -> JSONDict:
    """The Message a stream describes (as an SDK would accumulate it), to compare with parse_response."""
    message: JSONDict = {}
    partial_json: dict[int, str] = {}
    for _, data in sse_events(path.read_bytes()):
        ev = orjson.loads(data)
        kind = ev["type"]
        if kind == "message_start":
            message = ev["message"]
        elif kind == "content_block_start":
            message["content"].append(copy.deepcopy(ev["content_block"]))
        elif kind == "content_block_delta":
            block, delta = message["content"][ev["index"]], ev["delta"]
            if delta["type"] == "text_delta":
                block["text"] += delta["text"]
            elif delta["type"] == "thinking_delta":
                block["thinking"] += delta["thinking"]
            elif delta["type"] == "signature_delta":
                block["signature"] += delta["signature"]
            elif delta["type"] == "input_json_delta":
                partial_json[ev["index"]] = partial_json.get(ev["index"], "") + delta["partial_json"]
        elif kind == "message_delta":
            message.update(ev["delta"])
            message["usage"].update(ev["usage"])
    for index, text in partial_json.items():
        message["content"][index]["input"] = orjson.loads(text) if text else {}
    return message


def normalise_args(items: list[Item]) -> list[Item]:
    """Streamed tool arguments keep Anthropic's spacing; compare them as JSON values."""
    out = copy.deepcopy(items)
    for it in out:
        if it["type"] == "function_call":
            it["arguments"] = orjson.loads(it["arguments"])
    return out


def user(text: str) -> Item:
    return {"type": "message", "role": "user", "content": [{"type": "input_text", "text": text}]}


def output_of(name: str) -> list[Item]:
    return ADAPTER.parse_response((WIRE / name).read_bytes()).output


def call_output(call_id: str, output: str) -> Item:
    return {"type": "function_call_output", "call_id": call_id, "output": output}


def body_of(req: CanonicalRequest, fidelity: Fidelity | None = None) -> JSONDict:
    up = ADAPTER.build_request(req, req.model, SETTINGS, fidelity or Fidelity())
    parsed: JSONDict = orjson.loads(up.body)
    return parsed


# --------------------------------------------------------------------------------------------------
# build_request: URL and headers
# --------------------------------------------------------------------------------------------------


def test_url_headers_and_stream_flag() -> None:
    settings = ProviderSettings(
        name="claude",
        kind="anthropic",
        base_url="https://proxy.example/v1",
        api_key="k1",
        headers={"anthropic-beta": "foo", "x-extra": "1"},
    )
    req = CanonicalRequest(model="claude-x", input=[user("hi")], stream=True)
    up = ADAPTER.build_request(req, "claude-sonnet-4-5", settings, Fidelity())
    assert up.method == "POST"
    assert up.url == "https://proxy.example/v1/messages"
    assert up.headers["x-api-key"] == "k1"
    assert up.headers["anthropic-version"] == "2023-06-01"
    assert up.headers["content-type"] == "application/json"
    assert up.headers["anthropic-beta"] == "foo" and up.headers["x-extra"] == "1"
    assert up.stream is True and up.stream_format == "sse"
    body = orjson.loads(up.body)
    assert body["model"] == "claude-sonnet-4-5" and body["stream"] is True
    assert body["max_tokens"] == DEFAULT_MAX_TOKENS


# --------------------------------------------------------------------------------------------------
# parse_response against the recorded responses
# --------------------------------------------------------------------------------------------------


def test_parse_text_response() -> None:
    resp = ADAPTER.parse_response((WIRE / "test_anthropic_model_instructions.00.response.json").read_bytes())
    assert resp.output == [
        {
            "type": "message",
            "role": "assistant",
            "status": "completed",
            "content": [{"type": "output_text", "text": "The capital of France is Paris.", "annotations": []}],
        }
    ]
    assert resp.status == "completed" and resp.incomplete_reason is None
    assert resp.upstream_model == "claude-3-opus-20240229"
    assert resp.upstream_id == "msg_01Fg1JVgvCYUHWsxrj9GkpEv"
    assert resp.usage is not None
    assert (resp.usage.input_tokens, resp.usage.output_tokens, resp.usage.cached_tokens) == (20, 10, 0)


@pytest.mark.parametrize(
    ("name", "input_tokens", "cached", "written", "output"),
    [
        # Anthropic's input_tokens (3) excludes cache reads/writes; canonical input includes them
        ("test_anthropic_cache_real_api.00.response.json", 3 + 1111, 1111, 0, 406),
        ("test_anthropic_cache_real_api.01.response.json", 3 + 1111 + 418, 1111, 418, 33),
    ],
)
def test_parse_cache_usage(name: str, input_tokens: int, cached: int, written: int, output: int) -> None:
    usage = ADAPTER.parse_response((WIRE / name).read_bytes()).usage
    assert usage is not None
    assert usage.input_tokens == input_tokens
    assert usage.cached_tokens == cached
    assert usage.cache_write_tokens == written
    assert usage.output_tokens == output
    assert usage.reasoning_tokens == 0


def test_parse_thinking_text_and_tool_use() -> None:
    raw = load("test_anthropic_tool_with_thinking.00.response.json")
    resp = ADAPTER.parse_response((WIRE / "test_anthropic_tool_with_thinking.00.response.json").read_bytes())
    assert [i["type"] for i in resp.output] == ["reasoning", "message", "function_call"]
    reasoning, message, call = resp.output
    assert reasoning["summary"] == []
    assert reasoning["content"][0]["text"].startswith('The user is asking about the largest city in "the user')
    unwrapped = reasoning_state.unwrap(reasoning["encrypted_content"])
    assert unwrapped is not None and unwrapped[0] == "anthropic"
    assert unwrapped[1]["signature"] == raw["content"][0]["signature"]
    assert unwrapped[1]["signature"].startswith("EqEECkYICxgCKkAo3UA4WwDbB8ihhpykVCsPx6iMzwNTNP8")
    assert message["content"][0]["text"] == (
        "I'll help you find the largest city in your country. First, let me determine which country you're from."
    )
    assert call == {
        "type": "function_call",
        "call_id": "toolu_01YGzqpRE16Vricda3Aqcejo",
        "name": "get_user_country",
        "arguments": "{}",
        "status": "completed",
    }
    assert resp.status == "completed"  # stop_reason tool_use
    assert resp.usage is not None and (resp.usage.input_tokens, resp.usage.output_tokens) == (398, 155)
    assert resp.upstream_model == "claude-sonnet-4-20250514"


def test_parse_parallel_tool_calls() -> None:
    resp = ADAPTER.parse_response((WIRE / "test_multiple_parallel_tool_calls.00.response.json").read_bytes())
    calls = [i for i in resp.output if i["type"] == "function_call"]
    assert [(c["call_id"], c["name"], c["arguments"]) for c in calls] == [
        ("toolu_0167cfEnoQaPviGdVXA95zcu", "retrieve_entity_info", '{"name":"Alice"}'),
        ("toolu_01EEe2V5HD1Ac4rKiUR4HD2T", "retrieve_entity_info", '{"name":"Bob"}'),
        ("toolu_01XFyAjstT3966qvRynZyVPo", "retrieve_entity_info", '{"name":"Charlie"}'),
        ("toolu_013mnQZbgtK2oe3Mo3XKJsx3", "retrieve_entity_info", '{"name":"Daisy"}'),
    ]
    assert resp.output[0]["type"] == "message"


def test_parse_tool_arguments_are_compact_json() -> None:
    resp = ADAPTER.parse_response((WIRE / "test_anthropic_tool_output.01.response.json").read_bytes())
    assert resp.output == [
        {
            "type": "function_call",
            "call_id": "toolu_01LZABsgreMefH2Go8D5PQbW",
            "name": "final_result",
            "arguments": '{"city":"Mexico City","country":"Mexico"}',
            "status": "completed",
        }
    ]


def test_parse_skips_server_tool_blocks_and_merges_text_runs() -> None:
    raw = load("test_anthropic_web_search_tool.00.response.json")
    resp = ADAPTER.parse_response((WIRE / "test_anthropic_web_search_tool.00.response.json").read_bytes())
    assert [i["type"] for i in resp.output] == ["reasoning", "message"]
    text = resp.output[1]["content"][0]["text"]
    assert text == "".join(b["text"] for b in raw["content"] if b["type"] == "text")
    assert text.startswith("Based on the search results, here's the weather information for San Francisco")
    assert resp.usage is not None and resp.usage.input_tokens == 8984 and resp.usage.output_tokens == 520


def test_every_recorded_response_parses() -> None:
    for path in [*WIRE.glob("*.response.json"), *SDK_WIRE.glob("*.response.json")]:
        raw = orjson.loads(path.read_bytes())
        if raw.get("type") != "message":
            continue
        resp = ADAPTER.parse_response(path.read_bytes())
        tool_uses = [b for b in raw["content"] if b["type"] == "tool_use"]
        calls = [i for i in resp.output if i["type"] == "function_call"]
        assert [c["call_id"] for c in calls] == [b["id"] for b in tool_uses], path.name
        assert [orjson.loads(c["arguments"]) for c in calls] == [b["input"] for b in tool_uses]
        assert resp.upstream_id == raw["id"]


def test_parse_malformed_body_is_a_502() -> None:
    with pytest.raises(GatewayError) as err:
        ADAPTER.parse_response(b"<html>oops</html>")
    assert err.value.status == 502


# --------------------------------------------------------------------------------------------------
# stop reasons and refusals
# --------------------------------------------------------------------------------------------------


def message_body(stop_reason: str | None, content: list[JSONDict], **extra: Any) -> bytes:
    return orjson.dumps(
        {
            "id": "msg_1",
            "type": "message",
            "role": "assistant",
            "model": "claude-test",
            "content": content,
            "stop_reason": stop_reason,
            "usage": {"input_tokens": 5, "output_tokens": 7},
            **extra,
        }
    )


@pytest.mark.parametrize(
    ("stop_reason", "status", "reason"),
    [
        ("end_turn", "completed", None),
        ("stop_sequence", "completed", None),
        ("tool_use", "completed", None),
        ("pause_turn", "completed", None),
        ("max_tokens", "incomplete", "max_output_tokens"),
        ("model_context_window_exceeded", "incomplete", "max_output_tokens"),
        ("refusal", "incomplete", "content_filter"),
        (None, "completed", None),
        ("some_future_reason", "completed", None),
    ],
)
def test_stop_reason_mapping(stop_reason: str | None, status: str, reason: str | None) -> None:
    resp = ADAPTER.parse_response(message_body(stop_reason, [{"type": "text", "text": "partial"}]))
    assert (resp.status, resp.incomplete_reason) == (status, reason)
    assert resp.output[0]["content"] == [{"type": "output_text", "text": "partial", "annotations": []}]
    if stop_reason is not None and stop_reason in STOP_REASONS:
        assert STOP_REASONS[stop_reason] == (status, reason)


def test_refusal_without_text_gets_a_refusal_part() -> None:
    details = {"type": "refusal", "category": "cyber", "explanation": "I can't help with that."}
    resp = ADAPTER.parse_response(message_body("refusal", [], stop_details=details))
    assert resp.output == [
        {
            "type": "message",
            "role": "assistant",
            "status": "completed",
            "content": [{"type": "refusal", "refusal": "I can't help with that."}],
        }
    ]
    resp = ADAPTER.parse_response(message_body("refusal", []))
    assert resp.output[0]["content"][0]["type"] == "refusal" and resp.output[0]["content"][0]["refusal"]


def test_stream_refusal() -> None:
    parser = AnthropicStreamParser()
    events: list[JSONDict] = [
        {"type": "message_start", "message": {"id": "m", "model": "c", "usage": {"input_tokens": 3}}},
        {"type": "message_delta", "delta": {"stop_reason": "refusal"}, "usage": {"output_tokens": 1}},
        {"type": "message_stop"},
    ]
    deltas = [d for ev in events for d in parser.feed(ev["type"], orjson.dumps(ev))] + parser.close()
    assert fold(deltas)[0]["content"][0]["type"] == "refusal"
    finish = deltas[-1]
    assert isinstance(finish, Finish) and finish.status == "incomplete"
    assert finish.incomplete_reason == "content_filter"


# --------------------------------------------------------------------------------------------------
# streams
# --------------------------------------------------------------------------------------------------


STREAMS = [
    WIRE / "test_anthropic_model_thinking_part_stream.00.response.sse",
    WIRE / "test_anthropic_model_thinking_part_redacted_stream.00.response.sse",
    WIRE / "test_anthropic_web_search_tool_stream.00.response.sse",
    SDK_WIRE / "test_runners__TestSyncRunTools__555fb399-a54c-455b-9ac5-2c9673f18e12.00.response.sse",
    SDK_WIRE / "test_runners__TestSyncRunTools__555fb399-a54c-455b-9ac5-2c9673f18e12.01.response.sse",
]


@pytest.mark.parametrize("path", STREAMS, ids=lambda p: p.name.split(".")[0][-40:])
def test_stream_and_non_stream_agree(path: Path) -> None:
    deltas = run_stream(path)
    message = accumulate(path)
    resp = ADAPTER.parse_response(orjson.dumps(message))
    assert normalise_args(fold(deltas)) == normalise_args(resp.output)
    finish = [d for d in deltas if isinstance(d, Finish)]
    assert len(finish) == 1 and deltas[-1] is finish[0]
    assert (finish[0].status, finish[0].incomplete_reason) == (resp.status, resp.incomplete_reason)
    assert finish[0].upstream_model == resp.upstream_model and finish[0].upstream_id == resp.upstream_id
    last_usage = [d for d in deltas if isinstance(d, UsageUpdate)][-1]
    assert resp.usage is not None
    assert last_usage.input_tokens == resp.usage.input_tokens
    assert last_usage.output_tokens == resp.usage.output_tokens
    assert not any(isinstance(d, StreamError) for d in deltas)


def test_stream_thinking_signature_round_trip() -> None:
    deltas = run_stream(WIRE / "test_anthropic_model_thinking_part_stream.00.response.sse")
    items = fold(deltas)
    assert [i["type"] for i in items] == ["reasoning", "message"]
    thinking = items[0]["content"][0]["text"]
    assert thinking.startswith("This is a straightforward question about pedestrian safety. I should provide")
    state = reasoning_state.unwrap(items[0]["encrypted_content"])
    assert state is not None and state[0] == "anthropic"
    signature = state[1]["signature"]
    assert signature.startswith("EvMCCkYICxgCKkCHP2cSuEdcJK/0rFwqES/ecn+VurRpNTwI4XNyM0vnNfGsc9OmE8YYH")
    assert items[1]["content"][0]["text"].startswith("Here are the basic steps for safely crossing the street:")
    # the signature arrives once, at content_block_stop, right before the item ends
    states = [i for i, d in enumerate(deltas) if isinstance(d, ReasoningState)]
    assert len(states) == 1 and deltas[states[0] + 1] == ItemDone(0)
    usage = [d for d in deltas if isinstance(d, UsageUpdate)]
    assert (usage[0].input_tokens, usage[0].output_tokens) == (43, 1)
    assert (usage[-1].input_tokens, usage[-1].output_tokens) == (43, 282)
    # feed the streamed turn back: the thinking block goes back with its signature
    body = body_of(CanonicalRequest(model="m", input=[user("q"), *items, user("next")], reasoning_effort="minimal"))
    assert body["messages"][1]["content"][0] == {"type": "thinking", "thinking": thinking, "signature": signature}


def test_stream_redacted_thinking() -> None:
    deltas = run_stream(WIRE / "test_anthropic_model_thinking_part_redacted_stream.00.response.sse")
    items = fold(deltas)
    assert [i["type"] for i in items] == ["reasoning", "reasoning", "message"]
    second = reasoning_state.unwrap(items[1]["encrypted_content"])
    assert second == (
        "anthropic",
        {
            "redacted_data": "EtgBCkYIBxgCKkDQfGkwzflEJP5asG3oQfJXcTwJLoRznn8CmuczWCsJ36dv93X9H0NCeaJRbi5BrCA2D"
            "yMgFnRKRuzZx8VTv5axEgwkFmcHJk8BSiZMZRQaDDYv2KZPfbFgRa2QjyIwm47f5YYsSK9CT/oh/WWpU1HJJVHr8lrC6HG1"
            "ItRdtMvYQYmEGy+KhyfcIACfbssVKkDGv/NKqNMOAcu0bd66gJ2+R1R0PX11Jxn2Nd1JtZqkxx7vMT/PXtHDhm9jkDZ2k/6"
            "RjRRFuab/DBV3yRYdZ1J0GAE="
        },
    )
    assert items[0]["content"] == [] and items[1]["content"] == []
    assert items[2]["content"][0]["text"].startswith("I notice that you've sent what appears to be some kind")
    usage = [d for d in deltas if isinstance(d, UsageUpdate)][-1]
    assert (usage.input_tokens, usage.output_tokens) == (92, 189)
    # redacted thinking goes back as redacted_thinking
    body = body_of(CanonicalRequest(model="m", input=[user("q"), *items, user("next")]))
    assert [b["type"] for b in body["messages"][1]["content"]] == ["redacted_thinking", "redacted_thinking", "text"]
    assert body["messages"][1]["content"][1]["data"] == second[1]["redacted_data"]


def test_stream_tool_use() -> None:
    path = SDK_WIRE / "test_runners__TestSyncRunTools__555fb399-a54c-455b-9ac5-2c9673f18e12.00.response.sse"
    deltas = run_stream(path)
    assert ToolCallStart(0, "toolu_018acGYLtfR52q9yDbWaEdQZ", "get_weather") in deltas
    args = "".join(d.delta for d in deltas if isinstance(d, ToolCallArgsDelta))
    assert orjson.loads(args) == {"location": "San Francisco, CA", "units": "f"}
    assert deltas[-1] == Finish("completed", None, "claude-haiku-4-5-20251001", "msg_01AusY9WEbCaj3N7Tv5J4YjH")
    usage = [d for d in deltas if isinstance(d, UsageUpdate)][-1]
    assert (usage.input_tokens, usage.output_tokens) == (656, 74)


def test_stream_server_tools_skipped_and_text_runs_merged() -> None:
    deltas = run_stream(WIRE / "test_anthropic_web_search_tool_stream.00.response.sse")
    assert not any(isinstance(d, (ToolCallStart, ToolCallArgsDelta)) for d in deltas)
    items = fold(deltas)
    # blocks 0-1 and 3-4 are server tool use/results; text blocks 2 and 5..21 form two messages
    assert [i["type"] for i in items] == ["message", "message"]
    assert items[0]["content"][0]["text"] == (
        "Let me search for more specific breaking news stories to get clearer headlines."
    )
    assert {d.key for d in deltas if isinstance(d, TextDelta)} == {2, 5}
    usage = [d for d in deltas if isinstance(d, UsageUpdate)][-1]
    assert (usage.input_tokens, usage.output_tokens) == (31772, 644)


def test_stream_tool_without_arguments_gets_empty_object() -> None:
    parser = AnthropicStreamParser()
    events: list[JSONDict] = [
        {"type": "message_start", "message": {"id": "m", "model": "c", "usage": {"input_tokens": 3}}},
        {
            "type": "content_block_start",
            "index": 0,
            "content_block": {"type": "tool_use", "id": "toolu_1", "name": "now", "input": {}},
        },
        {"type": "content_block_delta", "index": 0, "delta": {"type": "input_json_delta", "partial_json": ""}},
        {"type": "content_block_stop", "index": 0},
        {"type": "ping"},
        {"type": "message_delta", "delta": {"stop_reason": "max_tokens"}, "usage": {"output_tokens": 9}},
        {"type": "message_stop"},
    ]
    deltas = [d for ev in events for d in parser.feed(None, orjson.dumps(ev))] + parser.close()
    assert fold(deltas) == [
        {"type": "function_call", "call_id": "toolu_1", "name": "now", "arguments": "{}", "status": "completed"}
    ]
    assert deltas[-1] == Finish("incomplete", "max_output_tokens", "c", "m")


def test_stream_error_event() -> None:
    parser = AnthropicStreamParser()
    deltas: list[Delta] = []
    for event, data in sse_events((ANTHROPIC / "wire-docs" / "stream.error-event.overloaded.sse").read_bytes()):
        deltas.extend(parser.feed(event, data))
    assert deltas == [StreamError("Overloaded", code="overloaded_error", type="overloaded_error")]
    assert parser.close() == []  # no second error for the same failure


def test_stream_error_of_unknown_type_is_server_error() -> None:
    parser = AnthropicStreamParser()
    ev = {"type": "error", "error": {"type": "api_error", "message": "Internal server error"}}
    assert parser.feed("error", orjson.dumps(ev)) == [
        StreamError("Internal server error", code="api_error", type="server_error")
    ]


def test_truncated_stream() -> None:
    events = sse_events((WIRE / "test_anthropic_model_thinking_part_stream.00.response.sse").read_bytes())
    parser = AnthropicStreamParser()
    for event, data in events[: len(events) // 2]:
        parser.feed(event, data)
    assert parser.close() == [StreamError("stream ended before message_stop", code="upstream_stream_truncated")]


def test_malformed_stream_event() -> None:
    parser = AnthropicStreamParser()
    out = parser.feed("content_block_delta", b"{not json")
    assert len(out) == 1 and isinstance(out[0], StreamError)
    assert parser.close() == []


# --------------------------------------------------------------------------------------------------
# round trips and reasoning state
# --------------------------------------------------------------------------------------------------


def test_thinking_tool_use_round_trip() -> None:
    raw = load("test_anthropic_tool_with_thinking.00.response.json")
    output = output_of("test_anthropic_tool_with_thinking.00.response.json")
    tools = [FunctionTool(name="get_user_country", parameters={"type": "object", "properties": {}})]
    req = CanonicalRequest(
        model="claude-sonnet-4-0",
        input=[
            user("What is the largest city in the user country?"),
            *output,
            call_output("toolu_01YGzqpRE16Vricda3Aqcejo", "Mexico"),
        ],
        tools=tools,
        reasoning_effort="high",
    )
    fidelity = Fidelity()
    body = body_of(req, fidelity)
    turn = body["messages"][1]
    assert turn["role"] == "assistant"
    assert [b["type"] for b in turn["content"]] == ["thinking", "text", "tool_use"]
    assert turn["content"][0]["signature"] == raw["content"][0]["signature"]
    assert turn["content"][0]["thinking"] == raw["content"][0]["thinking"]
    assert turn["content"][2] == {
        "type": "tool_use",
        "id": "toolu_01YGzqpRE16Vricda3Aqcejo",
        "name": "get_user_country",
        "input": {},
    }
    assert body["messages"][2] == {
        "role": "user",
        "content": [
            {
                "type": "tool_result",
                "tool_use_id": "toolu_01YGzqpRE16Vricda3Aqcejo",
                "content": "Mexico",
                "is_error": False,
            }
        ],
    }
    assert body["thinking"] == {"type": "enabled", "budget_tokens": THINKING_BUDGETS["high"]}
    assert body["max_tokens"] == THINKING_BUDGETS["high"] + DEFAULT_MAX_TOKENS
    assert fidelity.dropped == [] and fidelity.approximated == ["reasoning.effort"]


# --------------------------------------------------------------------------------------------------
# error_message
# --------------------------------------------------------------------------------------------------


def test_error_message_from_recorded_errors() -> None:
    body = (WIRE / "test_anthropic_count_tokens_error.00.response.json").read_bytes()
    assert ADAPTER.error_message(body) == ("model: claude-does-not-exist", "not_found_error")
    body = (WIRE / "test_anthropic_explicit_effort_xhigh_unsupported_model_errors.00.response.json").read_bytes()
    assert ADAPTER.error_message(body) == (
        "This model does not support effort level 'xhigh'. Supported levels: high, low, max, medium.",
        "invalid_request_error",
    )


def test_error_message_from_other_bodies() -> None:
    assert ADAPTER.error_message(b"<html>502 Bad Gateway</html>") == ("<html>502 Bad Gateway</html>", None)
    message, code = ADAPTER.error_message(b"x" * 5000)
    assert message == "x" * 500 and code is None
    assert ADAPTER.error_message(b"") == ("empty error body", None)
    assert ADAPTER.error_message(b'{"message": "bad"}') == ("bad", None)
    assert ADAPTER.error_message(b"\xff\xfe garbage")[1] is None
    assert ADAPTER.error_message(b"[1, 2]") == ("[1, 2]", None)


# --------------------------------------------------------------------------------------------------
# properties
# --------------------------------------------------------------------------------------------------


@given(st.text(min_size=1))
def test_text_round_trips_through_input_and_output(text: str) -> None:
    body = body_of(CanonicalRequest(model="m", input=[user(text)]))
    assert body["messages"] == [{"role": "user", "content": [{"type": "text", "text": text}]}]
    out = ADAPTER.parse_response(message_body("end_turn", [{"type": "text", "text": text}])).output
    assert out[0]["content"][0]["text"] == text
    again = body_of(CanonicalRequest(model="m", input=[user("q"), *out]))
    assert again["messages"][1]["content"] == [{"type": "text", "text": text}]

"""MistralAdapter, response side: every recorded Mistral response and stream parses to concrete canonical output
and usage; thinking chunks, signatures, cached-token fields, finish reasons and in-stream errors."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import orjson
import pytest

from tollway.core import reasoning_state
from tollway.core.assembler import OutputAssembler
from tollway.core.errors import GatewayError
from tollway.core.types import (
    CanonicalRequest,
    CanonicalResponse,
    Delta,
    Finish,
    ItemDone,
    ReasoningDelta,
    ReasoningState,
    StreamError,
    TextDelta,
    ToolCallArgsDelta,
    ToolCallStart,
    Usage,
    UsageUpdate,
)
from tollway.providers.mistral import MistralAdapter

WIRE = Path(__file__).resolve().parents[2] / ".." / "shared" / "specs" / "providers" / "mistral" / "wire"
ADAPTER = MistralAdapter()
EMPTY_STATE = reasoning_state.wrap("mistral", {})


def _response(base: str) -> CanonicalResponse:
    return ADAPTER.parse_response((WIRE / f"{base}.response.json").read_bytes())


def _recorded_json(base: str) -> Any:
    return json.loads((WIRE / f"{base}.response.json").read_bytes())


def _text(resp: CanonicalResponse) -> str:
    return "".join(p["text"] for it in resp.output if it["type"] == "message" for p in it["content"])


@pytest.mark.parametrize(
    ("base", "usage"),
    [
        ("test_mistral_forwards_penalties.00", Usage(4, 36, 0)),
        ("test_mistral_history_uses_prompt_cache.00", Usage(253, 5, 0)),
        ("test_mistral_history_uses_prompt_cache.01", Usage(268, 5, 224)),
        ("test_text_document_as_binary_content_input.00", Usage(49, 69, 0)),
        ("test_tool_choice_matrix[auto-mistral].01", Usage(100, 29, 99)),
        ("test_tool_choice_matrix[none-mistral].00", Usage(10, 224, 9)),
    ],
)
def test_recorded_text_responses(base: str, usage: Usage) -> None:
    resp = _response(base)
    recorded = _recorded_json(base)
    assert [it["type"] for it in resp.output] == ["message"]
    assert _text(resp) == recorded["choices"][0]["message"]["content"]
    assert resp.output[0]["status"] == "completed" and resp.output[0]["role"] == "assistant"
    assert resp.status == "completed" and resp.incomplete_reason is None
    assert resp.usage == usage
    assert resp.upstream_id == recorded["id"] and resp.upstream_model == recorded["model"]


@pytest.mark.parametrize(
    ("base", "call_id", "usage"),
    [
        ("test_tool_choice_matrix[auto-mistral].00", "KikbB849t", Usage(77, 12, 76)),
        ("test_tool_choice_matrix[required-mistral].00", "pcZFHqej8", Usage(70, 12, 69)),
        ("test_tool_choice_matrix[list_single-mistral].00", "7QjFNcS8z", Usage(70, 12, 69)),
    ],
)
def test_recorded_tool_call_responses(base: str, call_id: str, usage: Usage) -> None:
    resp = _response(base)
    assert [it["type"] for it in resp.output] == ["function_call"]  # content "" makes no message
    call = resp.output[0]
    assert call["call_id"] == call_id
    assert call["name"] == "get_weather" and orjson.loads(call["arguments"]) == {"city": "Paris"}
    assert resp.status == "completed"
    assert resp.usage == usage


def test_recorded_thinking_response() -> None:
    base = "test_mistral_model_thinking_part.01"
    resp = _response(base)
    content = _recorded_json(base)["choices"][0]["message"]["content"]
    assert [it["type"] for it in resp.output] == ["reasoning", "message"]
    reasoning = resp.output[0]
    assert reasoning["content"] == [{"type": "reasoning_text", "text": content[0]["thinking"][0]["text"]}]
    assert reasoning["content"][0]["text"].startswith("**Analogizing crossing a river**")
    assert reasoning["encrypted_content"] == EMPTY_STATE
    assert reasoning_state.unwrap(reasoning["encrypted_content"]) == ("mistral", {})
    assert _text(resp) == content[1]["text"]
    assert resp.usage == Usage(664, 747, 0, 0, 0)  # Mistral reports no reasoning token count


def test_signed_thinking_kept_in_state() -> None:
    body = {
        "id": "x",
        "model": "magistral-small-latest",
        "choices": [
            {
                "index": 0,
                "finish_reason": "stop",
                "message": {
                    "role": "assistant",
                    "content": [
                        {
                            "type": "thinking",
                            "thinking": [{"type": "text", "text": "a"}, {"type": "text", "text": "b"}],
                            "signature": "sig-9",
                        },
                        {"type": "text", "text": "answer"},
                    ],
                },
            }
        ],
        "usage": {"prompt_tokens": 1, "completion_tokens": 2, "total_tokens": 3},
    }
    resp = ADAPTER.parse_response(orjson.dumps(body))
    assert resp.output[0]["content"] == [{"type": "reasoning_text", "text": "ab"}]
    assert reasoning_state.unwrap(resp.output[0]["encrypted_content"]) == ("mistral", {"signature": "sig-9"})


@pytest.mark.parametrize(
    ("reason", "status", "incomplete"),
    [
        ("stop", "completed", None),
        ("tool_calls", "completed", None),
        ("length", "incomplete", "max_output_tokens"),
        ("model_length", "incomplete", "max_output_tokens"),
        ("error", "failed", None),
        ("content_filter", "incomplete", "content_filter"),
    ],
)
def test_finish_reasons(reason: str, status: str, incomplete: str | None) -> None:
    body = {
        "id": "x",
        "model": "m",
        "choices": [{"index": 0, "finish_reason": reason, "message": {"role": "assistant", "content": "partial"}}],
    }
    resp = ADAPTER.parse_response(orjson.dumps(body))
    assert (resp.status, resp.incomplete_reason) == (status, incomplete)
    assert resp.output[0]["status"] == ("incomplete" if status == "incomplete" else "completed")


def test_invalid_body_is_502() -> None:
    with pytest.raises(GatewayError) as err:
        ADAPTER.parse_response(b'{"id": "x", "choices": [')
    assert err.value.status == 502


# --------------------------------------------------------------------------------------------------
# streams
# --------------------------------------------------------------------------------------------------


def _sse_data(raw: bytes) -> list[bytes]:
    out = []
    for frame in raw.split(b"\n\n"):
        lines = [line[6:] for line in frame.split(b"\n") if line.startswith(b"data: ")]
        if lines:
            out.append(b"\n".join(lines))
    return out


def _feed(frames: list[bytes], close: bool = True) -> list[Delta]:
    parser = ADAPTER.stream_parser(CanonicalRequest("m", [], stream=True))
    deltas: list[Delta] = []
    for data in frames:
        deltas.extend(parser.feed(None, data))
    if close:
        deltas.extend(parser.close())
    return deltas


def _check_order(deltas: list[Delta]) -> None:
    done: set[Any] = set()
    for i, delta in enumerate(deltas):
        if isinstance(delta, Finish | StreamError):
            assert i == len(deltas) - 1
            continue
        key = getattr(delta, "key", None)
        if key is None:
            continue
        assert key not in done, f"delta for {key!r} after its ItemDone"
        if isinstance(delta, ItemDone):
            done.add(key)


def _assemble(deltas: list[Delta]) -> CanonicalResponse:
    assembler = OutputAssembler()
    for d in deltas:
        assembler.apply(d)
    return assembler.result()


def _chunk(delta: dict[str, Any], finish: str | None = None, usage: dict[str, Any] | None = None) -> bytes:
    body: dict[str, Any] = {
        "id": "abc",
        "object": "chat.completion.chunk",
        "model": "magistral-medium-latest",
        "choices": [{"index": 0, "delta": delta, "finish_reason": finish}],
    }
    if usage is not None:
        body["usage"] = usage
    return orjson.dumps(body)


def test_recorded_thinking_stream() -> None:
    raw = (WIRE / "test_mistral_model_thinking_part_iter.00.response.sse").read_bytes()
    frames = _sse_data(raw)
    deltas = _feed(frames)
    _check_order(deltas)
    states = [d for d in deltas if isinstance(d, ReasoningState)]
    assert states == [ReasoningState("reasoning", EMPTY_STATE)]
    assert deltas.index(states[0]) == 1  # right after the first reasoning delta
    resp = _assemble(deltas)
    assert [it["type"] for it in resp.output] == ["reasoning", "message"]
    thinking = "".join(
        t["text"]
        for f in frames[:-1]
        for c in (orjson.loads(f)["choices"][0]["delta"].get("content") or [])
        if isinstance(c, dict)
        for t in c["thinking"]
    )
    text = "".join(
        c for f in frames[:-1] if isinstance(c := orjson.loads(f)["choices"][0]["delta"].get("content"), str)
    )
    assert resp.output[0]["content"] == [{"type": "reasoning_text", "text": thinking}]
    assert thinking.startswith("Okay, the user is asking how to cross the street.")
    assert resp.output[0]["encrypted_content"] == EMPTY_STATE
    assert resp.output[1]["content"][0]["text"] == text and text.endswith("ensure a safe crossing.")
    assert resp.status == "completed"
    assert resp.usage == Usage(10, 232)
    assert resp.upstream_id == "9f9d90210f194076abeee223863eaaf0" and resp.upstream_model == "magistral-medium-latest"


def test_stream_parallel_tool_calls_in_one_chunk() -> None:
    calls = [
        {"id": "AAAAAAAA1", "function": {"name": "get_weather", "arguments": '{"city": "Paris"}'}, "index": 0},
        {"id": "BBBBBBBB2", "function": {"name": "get_time", "arguments": "{}"}, "index": 1},
    ]
    deltas = _feed(
        [
            _chunk({"role": "assistant", "content": ""}),
            _chunk({"tool_calls": calls}),
            _chunk(
                {"content": ""},
                "tool_calls",
                {
                    "prompt_tokens": 5,
                    "completion_tokens": 7,
                    "total_tokens": 12,
                    "prompt_tokens_details": {"cached_tokens": 2},
                },
            ),
            b"[DONE]",
        ]
    )
    _check_order(deltas)
    starts = [d for d in deltas if isinstance(d, ToolCallStart)]
    assert [(s.call_id, s.name) for s in starts] == [("AAAAAAAA1", "get_weather"), ("BBBBBBBB2", "get_time")]
    args = [d.delta for d in deltas if isinstance(d, ToolCallArgsDelta)]
    assert args == ['{"city": "Paris"}', "{}"]
    assert UsageUpdate(5, 7, 2, 0, 0) in deltas
    resp = _assemble(deltas)
    assert [it["call_id"] for it in resp.output] == ["AAAAAAAA1", "BBBBBBBB2"]
    assert resp.status == "completed"


def test_stream_tool_arguments_in_pieces() -> None:
    deltas = _feed(
        [
            _chunk({"tool_calls": [{"id": "AAAAAAAA1", "function": {"name": "f", "arguments": '{"a"'}, "index": 0}]}),
            _chunk({"tool_calls": [{"function": {"arguments": ": 1}"}, "index": 0}]}),
            _chunk({}, "tool_calls"),
            b"[DONE]",
        ]
    )
    assert [d.delta for d in deltas if isinstance(d, ToolCallArgsDelta)] == ['{"a"', ": 1}"]
    assert _assemble(deltas).output[0]["arguments"] == '{"a": 1}'


def test_stream_thinking_signature_and_text_in_one_chunk() -> None:
    deltas = _feed(
        [
            _chunk({"content": [{"type": "thinking", "thinking": [{"type": "text", "text": "hmm "}]}]}),
            _chunk(
                {
                    "content": [
                        {"type": "thinking", "thinking": [{"type": "text", "text": "ok"}], "signature": "s1"},
                        {"type": "text", "text": "Answer"},
                    ]
                }
            ),
            _chunk({"content": " done"}, "stop", {"prompt_tokens": 1, "completion_tokens": 3, "total_tokens": 4}),
            b"[DONE]",
        ]
    )
    _check_order(deltas)
    states = [d for d in deltas if isinstance(d, ReasoningState)]
    assert [s.encrypted_content for s in states] == [EMPTY_STATE, reasoning_state.wrap("mistral", {"signature": "s1"})]
    resp = _assemble(deltas)
    assert resp.output[0]["content"] == [{"type": "reasoning_text", "text": "hmm ok"}]
    assert reasoning_state.unwrap(resp.output[0]["encrypted_content"]) == ("mistral", {"signature": "s1"})
    assert resp.output[1]["content"][0]["text"] == "Answer done"


def test_stream_signature_alone_after_text_chunks() -> None:
    deltas = _feed(
        [
            _chunk({"content": [{"type": "thinking", "thinking": [{"type": "text", "text": "x"}]}]}),
            _chunk({"content": [{"type": "thinking", "thinking": [], "signature": "late"}]}),
            _chunk({"content": "y"}, "stop"),
            b"[DONE]",
        ]
    )
    _check_order(deltas)
    resp = _assemble(deltas)
    assert reasoning_state.unwrap(resp.output[0]["encrypted_content"]) == ("mistral", {"signature": "late"})
    assert [it["type"] for it in resp.output] == ["reasoning", "message"]


def test_stream_length_is_incomplete() -> None:
    deltas = _feed([_chunk({"content": "a b"}), _chunk({"content": ""}, "length"), b"[DONE]"])
    assert deltas[-1] == Finish("incomplete", "max_output_tokens", "magistral-medium-latest", "abc")


def test_stream_in_stream_error_object() -> None:
    err = orjson.dumps(
        {
            "object": "error",
            "message": "Internal server error",
            "type": "internal_server_error",
            "param": None,
            "code": "1000",
        }
    )
    deltas = _feed([_chunk({"content": "partial"}), err, b"[DONE]"])
    assert deltas[-1] == StreamError("Internal server error", "1000", "server_error")
    assert [d for d in deltas if isinstance(d, TextDelta)] == [TextDelta("text", "partial")]


def test_stream_finish_reason_error_word_is_not_an_error_chunk() -> None:
    deltas = _feed([_chunk({"content": 'say "error"'}), _chunk({}, "error"), b"[DONE]"])
    assert deltas[-1] == Finish("failed", None, "magistral-medium-latest", "abc")
    assert TextDelta("text", 'say "error"') in deltas


def test_stream_truncated_without_finish() -> None:
    deltas = _feed([_chunk({"content": "partial"})])
    assert isinstance(deltas[-1], StreamError) and deltas[-1].code == "upstream_stream_truncated"


def test_reasoning_delta_keys_are_reasoning_then_text() -> None:
    deltas = _feed(
        [
            _chunk({"content": [{"type": "thinking", "thinking": [{"type": "text", "text": "t"}]}]}),
            _chunk({"content": "a"}, "stop"),
            b"[DONE]",
        ]
    )
    assert deltas[:4] == [
        ReasoningDelta("reasoning", "t"),
        ReasoningState("reasoning", EMPTY_STATE),
        ItemDone("reasoning"),
        TextDelta("text", "a"),
    ]

"""OpenAIChatAdapter stream parser (tollway.providers.openai_chat_stream) against recorded and crafted streams."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import orjson

from tollway.core.types import (
    CanonicalRequest,
    Delta,
    Finish,
    ItemDone,
    ReasoningDelta,
    RefusalDelta,
    StreamError,
    TextDelta,
    ToolCallArgsDelta,
    ToolCallStart,
    UsageUpdate,
)
from tollway.providers.openai_chat import OpenAIChatAdapter

PROVIDERS = Path(__file__).resolve().parents[2] / ".." / "shared" / "specs" / "providers"

ADAPTER = OpenAIChatAdapter()


def _wire(provider: str, base: str, suffix: str) -> Path:
    return PROVIDERS / provider / "wire" / f"{base}.{suffix}"


# --------------------------------------------------------------------------------------------------
# Streaming
# --------------------------------------------------------------------------------------------------


def _check_order(deltas: list[Delta]) -> None:
    """Each key: exactly one ItemDone, after all its deltas; starts in order; Finish/StreamError last."""
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
    if deltas and isinstance(deltas[-1], Finish):
        keys = {d.key for d in deltas if isinstance(d, TextDelta | ReasoningDelta | RefusalDelta | ToolCallStart)}
        assert keys == done


def _stream(chunks: list[bytes], close: bool = True) -> list[Delta]:
    parser = ADAPTER.stream_parser(CanonicalRequest("m", [], stream=True))
    deltas: list[Delta] = []
    for chunk in chunks:
        deltas.extend(parser.feed(None, chunk))
    if close:
        deltas.extend(parser.close())
    _check_order(deltas)
    return deltas


def _sse(provider: str, base: str) -> list[bytes]:
    raw = _wire(provider, base, "response.sse").read_bytes()
    return [line[len(b"data:") :].strip() for line in raw.splitlines() if line.startswith(b"data:")]


def _chunk(delta: dict[str, Any] | None = None, finish_reason: str | None = None, **extra: Any) -> bytes:
    choices = [] if delta is None else [{"index": 0, "delta": delta, "finish_reason": finish_reason}]
    return orjson.dumps({"id": "c1", "model": "m1", "choices": choices, **extra})


def _text_of(deltas: list[Delta], key: Any) -> str:
    return "".join(d.text for d in deltas if isinstance(d, TextDelta) and d.key == key)


def test_recorded_stream_tool_call() -> None:
    deltas = _stream(_sse("openai", "test_run_stream_sync_streams_real_model.00"))
    key = ("tool", 0)
    assert deltas[0] == ToolCallStart(key, "call_ZR5UUuTt3pf61kjwAJIYdVMj", "get_capital")
    assert "".join(d.delta for d in deltas if isinstance(d, ToolCallArgsDelta)) == '{"country":"UK"}'
    assert UsageUpdate(53, 15, 0, 0, 0) in deltas
    assert deltas[-2:] == [
        ItemDone(key),
        Finish("completed", None, "gpt-4o-mini-2024-07-18", "chatcmpl-Dx0XpqH8w09uBXwq1zFGYdETjtnEl"),
    ]


def test_recorded_stream_text() -> None:
    deltas = _stream(_sse("openai", "test_run_stream_sync_streams_real_model.01"))
    assert _text_of(deltas, "text") == "The capital of the UK is London."
    assert not any(isinstance(d, ToolCallStart | ReasoningDelta) for d in deltas)
    assert UsageUpdate(78, 9, 0, 0, 0) in deltas
    assert deltas[-2:] == [
        ItemDone("text"),
        Finish("completed", None, "gpt-4o-mini-2024-07-18", "chatcmpl-Dx0Xq5Xx9rHB2ehcHZCRDsnuymUXc"),
    ]


def test_recorded_huggingface_stream_usage_on_finish_chunk() -> None:
    deltas = _stream(_sse("huggingface", "test_hf_model_thinking_part_iter.00"))
    assert _text_of(deltas, "text").startswith("<think>\nOkay, the user asked")
    assert UsageUpdate(10, 955, 0, 0, 0) in deltas
    assert deltas[-1] == Finish("completed", None, "deepseek-ai/DeepSeek-R1", "oV1nHvx-28Eivz-9c4b16f37c27e605")


def test_stream_reasoning_then_text_then_tool() -> None:
    deltas = _stream(
        [
            _chunk({"role": "assistant", "content": ""}),
            _chunk({"reasoning_content": "Need "}),
            _chunk({"reasoning_content": "weather."}),
            _chunk({"content": "Let me check."}),
            _chunk({"tool_calls": [{"index": 0, "id": "call_1", "function": {"name": "w", "arguments": ""}}]}),
            _chunk({"tool_calls": [{"index": 0, "function": {"arguments": '{"c":'}}]}),
            _chunk({"tool_calls": [{"index": 0, "function": {"arguments": '"P"}'}}]}),
            _chunk({}, "tool_calls"),
            _chunk(
                usage={
                    "prompt_tokens": 5,
                    "completion_tokens": 6,
                    "completion_tokens_details": {"reasoning_tokens": 2},
                }
            ),
            b"[DONE]",
        ]
    )
    assert deltas == [
        ReasoningDelta("reasoning", "Need "),
        ReasoningDelta("reasoning", "weather."),
        ItemDone("reasoning"),
        TextDelta("text", "Let me check."),
        ItemDone("text"),
        ToolCallStart(("tool", 0), "call_1", "w"),
        ToolCallArgsDelta(("tool", 0), '{"c":'),
        ToolCallArgsDelta(("tool", 0), '"P"}'),
        UsageUpdate(5, 6, 0, 0, 2),
        ItemDone(("tool", 0)),
        Finish("completed", None, "m1", "c1"),
    ]


def test_stream_vllm_reasoning_field_and_refusal() -> None:
    deltas = _stream(
        [_chunk({"reasoning": "hmm"}), _chunk({"refusal": "No."}), _chunk({}, "stop"), b"[DONE]"],
    )
    assert deltas == [
        ReasoningDelta("reasoning", "hmm"),
        ItemDone("reasoning"),
        RefusalDelta("text", "No."),
        ItemDone("text"),
        Finish("completed", None, "m1", "c1"),
    ]


def test_stream_whole_arguments_in_one_chunk_and_repeated_ids() -> None:
    deltas = _stream(
        [
            _chunk(
                {
                    "tool_calls": [
                        {
                            "index": 0,
                            "id": "a",
                            "type": "function",
                            "function": {"name": "f", "arguments": '{"x":1}'},
                        }
                    ]
                }
            ),
            _chunk({"tool_calls": [{"index": 1, "id": "b", "function": {"name": "g", "arguments": '{"y":'}}]}),
            _chunk({"tool_calls": [{"index": 1, "id": "b", "function": {"name": "g", "arguments": "2}"}}]}),
            _chunk({}, "tool_calls"),
            b"[DONE]",
        ]
    )
    assert deltas == [
        ToolCallStart(("tool", 0), "a", "f"),
        ToolCallArgsDelta(("tool", 0), '{"x":1}'),
        ToolCallStart(("tool", 1), "b", "g"),
        ToolCallArgsDelta(("tool", 1), '{"y":'),
        ToolCallArgsDelta(("tool", 1), "2}"),
        ItemDone(("tool", 0)),
        ItemDone(("tool", 1)),
        Finish("completed", None, "m1", "c1"),
    ]


def test_stream_parallel_calls_all_at_index_zero_and_late_name() -> None:
    deltas = _stream(
        [
            _chunk({"tool_calls": [{"index": 0, "id": "a", "function": {"name": "f", "arguments": "{}"}}]}),
            _chunk({"tool_calls": [{"index": 0, "id": "b", "function": {"arguments": '{"z"'}}]}),
            _chunk({"tool_calls": [{"index": 0, "function": {"name": "g", "arguments": ":0}"}}]}),
            _chunk({}, "tool_calls"),
        ]
    )
    assert deltas == [
        ToolCallStart(("tool", 0), "a", "f"),
        ToolCallArgsDelta(("tool", 0), "{}"),
        ToolCallStart(("tool", 0, 1), "b", "g"),
        ToolCallArgsDelta(("tool", 0, 1), '{"z":0}'),
        ItemDone(("tool", 0)),
        ItemDone(("tool", 0, 1)),
        Finish("completed", None, "m1", "c1"),
    ]


def test_stream_missing_done_with_finish_reason_finishes() -> None:
    parser = ADAPTER.stream_parser(CanonicalRequest("m", [], stream=True))
    assert parser.feed(None, _chunk({"content": "hi"})) == [TextDelta("text", "hi")]
    assert parser.feed(None, _chunk({}, "length")) == []
    assert parser.close() == [ItemDone("text"), Finish("incomplete", "max_output_tokens", "m1", "c1")]
    assert parser.close() == []


def test_stream_truncated_without_finish() -> None:
    deltas = _stream([_chunk({"content": "hi"})])
    assert deltas[0] == TextDelta("text", "hi")
    assert isinstance(deltas[-1], StreamError) and deltas[-1].code == "upstream_stream_truncated"


def test_stream_error_chunk() -> None:
    parser = ADAPTER.stream_parser(CanonicalRequest("m", [], stream=True))
    parser.feed(None, _chunk({"content": "hi"}))
    err = parser.feed(None, b'{"error": {"message": "The server had an error", "type": "server_error", "code": null}}')
    assert err == [StreamError("The server had an error", "server_error", "server_error")]
    assert parser.feed(None, b"[DONE]") == []
    assert parser.close() == []
    err = ADAPTER.stream_parser(CanonicalRequest("m", [])).feed("error", b'{"message": "boom", "code": "oops"}')
    assert err == [StreamError("boom", "oops", "server_error")]
    vllm = b'{"error": {"object": "error", "message": "bad", "type": "BadRequestError", "param": null, "code": 400}}'
    assert ADAPTER.stream_parser(CanonicalRequest("m", [])).feed(None, vllm) == [
        StreamError("bad", "BadRequestError", "server_error")
    ]
    limit = b'{"error": {"message": "slow down", "type": "rate_limit_error", "code": "rate_limit_exceeded"}}'
    assert ADAPTER.stream_parser(CanonicalRequest("m", [])).feed(None, limit) == [
        StreamError("slow down", "rate_limit_exceeded", "rate_limit_error")
    ]


def test_stream_invalid_json_chunk() -> None:
    deltas = _stream([b"{not json"])
    assert len(deltas) == 1 and isinstance(deltas[0], StreamError) and deltas[0].code == "upstream_bad_chunk"


def test_stream_text_after_tool_call_gets_a_new_item() -> None:
    deltas = _stream(
        [
            _chunk({"content": "a"}),
            _chunk({"tool_calls": [{"index": 0, "id": "t", "function": {"name": "f", "arguments": "{}"}}]}),
            _chunk({"content": "b"}),
            _chunk({}, "stop"),
            b"[DONE]",
        ]
    )
    assert deltas == [
        TextDelta("text", "a"),
        ItemDone("text"),
        ToolCallStart(("tool", 0), "t", "f"),
        ToolCallArgsDelta(("tool", 0), "{}"),
        ItemDone(("tool", 0)),
        TextDelta(("text", 1), "b"),
        ItemDone(("text", 1)),
        Finish("completed", None, "m1", "c1"),
    ]

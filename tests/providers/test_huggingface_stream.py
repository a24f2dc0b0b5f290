"""Hugging Face streams (tollway.providers.huggingface_stream): the recorded router stream, ``<think>`` tags
split at any chunk boundary, tool calls without ids, usage placement and stream failures."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import orjson
from hypothesis import given
from hypothesis import strategies as st

from tollway.core.types import (
    CanonicalRequest,
    Delta,
    Finish,
    ItemDone,
    ReasoningDelta,
    StreamError,
    TextDelta,
    ToolCallArgsDelta,
    ToolCallStart,
    UsageUpdate,
)
from tollway.providers.huggingface import HuggingFaceAdapter
from tollway.providers.huggingface_stream import ThinkSplitter, split_think, synth_call_id

WIRE = Path(__file__).resolve().parents[2] / ".." / "shared" / "specs" / "providers" / "huggingface" / "wire"
ADAPTER = HuggingFaceAdapter()


def _check_order(deltas: list[Delta]) -> None:
    """Each key: one ItemDone after all its deltas; Finish/StreamError last; every started key finished."""
    done: set[Any] = set()
    started: set[Any] = set()
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
        else:
            started.add(key)
    if deltas and isinstance(deltas[-1], Finish):
        assert started == done


def _run(payloads: list[bytes], close: bool = True) -> list[Delta]:
    parser = ADAPTER.stream_parser(CanonicalRequest("m", [], stream=True))
    deltas: list[Delta] = []
    for payload in payloads:
        deltas.extend(parser.feed(None, payload))
    if close:
        deltas.extend(parser.close())
    _check_order(deltas)
    return deltas


def _chunk(delta: dict[str, Any] | None = None, finish: str | None = None, usage: Any = None, rid: str = "s1") -> bytes:
    choices = [] if delta is None else [{"index": 0, "delta": delta, "finish_reason": finish}]
    return orjson.dumps(
        {"id": rid, "object": "chat.completion.chunk", "model": "m", "choices": choices, "usage": usage}
    )


def _texts(deltas: list[Delta], kind: type[TextDelta] | type[ReasoningDelta]) -> str:
    return "".join(d.text for d in deltas if isinstance(d, TextDelta | ReasoningDelta) and type(d) is kind)


def _content_stream(pieces: list[str], finish: str = "stop") -> list[Delta]:
    return _run([*(_chunk({"content": p}) for p in pieces), _chunk({"content": ""}, finish), b"[DONE]"])


# -- the recorded router stream ----------------------------------------------------------------------------


def test_recorded_think_stream() -> None:
    raw = (WIRE / "test_hf_model_thinking_part_iter.00.response.sse").read_bytes()
    payloads = [frame[len(b"data: ") :] for frame in raw.split(b"\n\n") if frame.startswith(b"data: ")]
    assert len(payloads) == 956
    whole = "".join(orjson.loads(p)["choices"][0]["delta"]["content"] for p in payloads if p != b"[DONE]")
    deltas = _run(payloads)
    reasoning, text = _texts(deltas, ReasoningDelta), _texts(deltas, TextDelta)
    assert [("reasoning", reasoning), ("text", text)] == split_think(whole)
    assert reasoning.startswith('Okay, the user asked "How do I cross the street?"')
    assert "<think>" not in reasoning and "</think>" not in text
    assert text.startswith("Crossing the street") and text.endswith("save your life! 🌟")
    assert [d.key for d in deltas if isinstance(d, ItemDone)] == ["reasoning", "text"]
    usage = [d for d in deltas if isinstance(d, UsageUpdate)]
    assert len(usage) == 1 and (usage[0].input_tokens, usage[0].output_tokens, usage[0].cached_tokens) == (10, 955, 0)
    assert deltas[-1] == Finish("completed", None, "deepseek-ai/DeepSeek-R1", "oV1nHvx-28Eivz-9c4b16f37c27e605")


# -- <think> at chunk boundaries ------------------------------------------------------------------------------


def _merged(fragments: list[tuple[str, str]]) -> list[tuple[str, str]]:
    out: list[tuple[str, str]] = []
    for kind, text in fragments:
        if out and out[-1][0] == kind:
            out[-1] = (kind, out[-1][1] + text)
        else:
            out.append((kind, text))
    return out


_PIECES = st.sampled_from(
    ["<think>", "</think>", "<th", "ink>", "</", "think", ">", "<", " ", "\n", "a", "b c", "<thinking>", "ok\n"]
)


@given(st.lists(_PIECES, max_size=14), st.lists(st.integers(min_value=0, max_value=40), max_size=8))
def test_splitter_matches_whole_split_at_any_boundary(pieces: list[str], cuts: list[int]) -> None:
    content = "".join(pieces)
    points = sorted({min(c, len(content)) for c in cuts})
    chunks = [content[a:b] for a, b in zip([0, *points], [*points, len(content)], strict=True)]
    splitter = ThinkSplitter()
    fragments = [f for chunk in chunks for f in splitter.feed(chunk)] + splitter.flush()
    assert all(text for _, text in fragments)
    assert _merged(fragments) == split_think(content)


def test_tags_split_across_chunks_and_text_deltas_kept() -> None:
    deltas = _content_stream(["<th", "ink>\nthinking ", "about: x\n</th", "ink>\n\necho: ", "x ", "lorem"])
    assert _texts(deltas, ReasoningDelta) == "thinking about: x"
    assert [d.text for d in deltas if isinstance(d, TextDelta)] == ["echo: ", "x ", "lorem"]
    assert deltas[-1] == Finish("completed", None, "m", "s1")


def test_length_cut_inside_reasoning_flushes_held_text() -> None:
    deltas = _content_stream(["<think>", "\nstill going </thi"], finish="length")
    assert _texts(deltas, ReasoningDelta) == "still going </thi"
    assert not [d for d in deltas if isinstance(d, TextDelta)]
    assert deltas[-1] == Finish("incomplete", "max_output_tokens", "m", "s1")


def test_partial_open_tag_that_is_text_is_released() -> None:
    deltas = _content_stream(["  <", "b>bold</b>"])
    assert _texts(deltas, TextDelta) == "  <b>bold</b>"
    deltas = _content_stream(["<thi"])
    assert _texts(deltas, TextDelta) == "<thi"


def test_reasoning_field_then_text() -> None:
    deltas = _run(
        [
            _chunk({"role": "assistant", "reasoning_content": "hmm"}),
            _chunk({"reasoning": " yes"}),
            _chunk({"content": "ok"}),
            _chunk({}, "stop"),
            b"[DONE]",
        ]
    )
    assert _texts(deltas, ReasoningDelta) == "hmm yes" and _texts(deltas, TextDelta) == "ok"


# -- tool calls ---------------------------------------------------------------------------------------------


def test_tgi_tool_calls_without_ids_get_deterministic_ones() -> None:
    payloads = [
        _chunk(
            {
                "role": "assistant",
                "tool_calls": [{"index": 0, "function": {"name": "get_weather", "arguments": '{"city":'}}],
            },
            rid="",
        ),
        _chunk({"tool_calls": [{"index": 0, "function": {"arguments": '"Paris"}'}}]}, rid=""),
        _chunk({"tool_calls": [{"index": 1, "function": {"name": "get_time", "arguments": {"tz": "CET"}}}]}, rid=""),
        _chunk({"role": "assistant", "content": ""}, "eos_token", rid=""),
        _chunk(None, usage={"prompt_tokens": 3, "completion_tokens": 4, "total_tokens": 7}, rid=""),
        b"[DONE]",
    ]
    first, second = _run(payloads), _run(payloads)
    starts = [d for d in first if isinstance(d, ToolCallStart)]
    assert [(s.call_id, s.name) for s in starts] == [
        (synth_call_id(None, 0, "get_weather"), "get_weather"),
        (synth_call_id(None, 1, "get_time"), "get_time"),
    ]
    assert starts == [d for d in second if isinstance(d, ToolCallStart)]
    args = {
        key: "".join(d.delta for d in first if isinstance(d, ToolCallArgsDelta) and d.key == key)
        for key in (("tool", 0), ("tool", 1))
    }
    assert args == {("tool", 0): '{"city":"Paris"}', ("tool", 1): '{"tz":"CET"}'}
    assert UsageUpdate(3, 4, 0, 0, 0) in first
    assert first[-1] == Finish("completed", None, "m", None)


def test_ids_kept_and_repeated_ids_replaced() -> None:
    payloads = [
        _chunk(
            {
                "tool_calls": [
                    {"index": 0, "id": "call_a", "type": "function", "function": {"name": "a", "arguments": ""}}
                ]
            }
        ),
        _chunk({"tool_calls": [{"index": 0, "id": "call_a", "function": {"arguments": "{}"}}]}),
        _chunk({"tool_calls": [{"index": 1, "id": "call_a", "function": {"name": "b", "arguments": "{}"}}]}),
        _chunk({}, "tool_calls"),
        b"[DONE]",
    ]
    starts = [d for d in _run(payloads) if isinstance(d, ToolCallStart)]
    assert [s.call_id for s in starts] == ["call_a", synth_call_id("s1", 1, "b")]


def test_calls_reusing_index_zero_with_fresh_ids_stay_separate() -> None:
    payloads = [
        _chunk({"tool_calls": [{"index": 0, "id": "c1", "function": {"name": "a", "arguments": "{}"}}]}),
        _chunk({"tool_calls": [{"index": 0, "id": "c2", "function": {"name": "b", "arguments": "{}"}}]}),
        _chunk({}, "tool_calls"),
        b"[DONE]",
    ]
    starts = [d for d in _run(payloads) if isinstance(d, ToolCallStart)]
    assert [(s.call_id, s.name) for s in starts] == [("c1", "a"), ("c2", "b")]


# -- endings -------------------------------------------------------------------------------------------------


def test_no_usage_means_no_usage_update_and_missing_done_is_tolerated() -> None:
    deltas = _run([_chunk({"content": "hi"}), _chunk({}, "stop")])
    assert not [d for d in deltas if isinstance(d, UsageUpdate)]
    assert deltas[-1] == Finish("completed", None, "m", "s1")


def test_in_stream_tgi_error() -> None:
    deltas = _run(
        [
            _chunk({"content": "par"}),
            b'{"error": "Request failed during generation: out of memory", "error_type": "generation"}',
        ]
    )
    assert deltas[-1] == StreamError("Request failed during generation: out of memory", "generation", "server_error")


def test_truncated_stream_fails() -> None:
    deltas = _run([_chunk({"content": "<think>half"})])
    assert isinstance(deltas[-1], StreamError) and deltas[-1].code == "upstream_stream_truncated"

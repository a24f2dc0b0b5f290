from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from tollway.core.assembler import OutputAssembler, assign_ids
from tollway.core.types import (
    Finish,
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


def test_interleaved_items_keep_order_and_ids() -> None:
    a = OutputAssembler()
    for d in [
        ReasoningDelta(0, "think "), ReasoningDelta(0, "more"), ReasoningState(0, "tw1.x.y"), ItemDone(0),
        TextDelta(1, "hel"), ToolCallStart(2, "call_1", "f"), TextDelta(1, "lo"), ToolCallArgsDelta(2, '{"a"'),
        ToolCallArgsDelta(2, ":1}"), ItemDone(1), ItemDone(2),
        UsageUpdate(input_tokens=10, output_tokens=5), UsageUpdate(reasoning_tokens=2), Finish("completed"),
    ]:
        a.apply(d)
    r = a.result()
    assert [it["type"] for it in r.output] == ["reasoning", "message", "function_call"]
    assert r.output[0]["content"] == [{"type": "reasoning_text", "text": "think more"}]
    assert r.output[0]["encrypted_content"] == "tw1.x.y"
    assert r.output[1]["content"] == [{"type": "output_text", "text": "hello", "annotations": []}]
    assert r.output[2]["arguments"] == '{"a":1}' and r.output[2]["call_id"] == "call_1"
    assert r.output[0]["id"].startswith("rs_") and r.output[1]["id"].startswith("msg_")
    assert r.output[2]["id"].startswith("fc_")
    assert r.usage is not None and (r.usage.input_tokens, r.usage.output_tokens, r.usage.reasoning_tokens) == (
        10, 5, 2)
    assert r.status == "completed"


def test_refusal_then_text_are_separate_parts() -> None:
    a = OutputAssembler()
    a.apply(RefusalDelta("m", "no"))
    a.apply(TextDelta("m", "but"))
    parts = a.result().output[0]["content"]
    assert [p["type"] for p in parts] == ["refusal", "output_text"]


def test_unfinished_stream_is_failed_with_incomplete_items() -> None:
    a = OutputAssembler()
    a.apply(TextDelta(0, "partial"))
    a.apply(StreamError("boom"))
    r = a.result()
    assert r.status == "failed" and r.output[0]["status"] == "incomplete"
    assert r.usage is None and a.error is not None


def test_key_reused_after_done_opens_new_item() -> None:
    a = OutputAssembler()
    a.apply(TextDelta("t", "a"))
    a.apply(ItemDone("t"))
    slot = a.apply(TextDelta("t", "b"))
    assert slot is not None and a.opened is slot and slot.index == 1


@given(st.lists(st.text(max_size=5), max_size=30))
def test_text_concatenation_property(chunks: list[str]) -> None:
    a = OutputAssembler()
    for c in chunks:
        a.apply(TextDelta(0, c))
    out = a.result().output
    if chunks:
        assert out[0]["content"][0]["text"] == "".join(chunks)


def test_assign_ids_keeps_existing() -> None:
    items = assign_ids([{"type": "message", "id": "msg_keep"}, {"type": "function_call_output"}])
    assert items[0]["id"] == "msg_keep" and items[1]["id"].startswith("fco_")

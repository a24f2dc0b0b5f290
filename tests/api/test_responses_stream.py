"""The Open Responses encoder, unit level: every event validates and the order follows the spec."""

from __future__ import annotations

import orjson

from tests.openapi_validator import validate_event, validate_resource
from tollway.api.responses_resource import build_resource, usage_json
from tollway.api.responses_stream import ResponsesStreamEncoder
from tollway.core.assembler import OutputAssembler
from tollway.core.errors import GatewayError
from tollway.core.types import (
    CanonicalRequest,
    Delta,
    Finish,
    ItemDone,
    ReasoningDelta,
    ReasoningState,
    RefusalDelta,
    TextDelta,
    ToolCallArgsDelta,
    ToolCallStart,
    UsageUpdate,
)


def run(deltas: list[Delta], include_encrypted: bool = False) -> list[dict]:  # type: ignore[type-arg]
    req = CanonicalRequest(model="m", input=[])
    a = OutputAssembler()
    enc = ResponsesStreamEncoder(a, include_encrypted)
    snap = build_resource(req, response_id="resp_1", created_at=1, completed_at=None, status="in_progress",
                          model="m", output=[], usage=None)
    raw = enc.start(snap)
    for d in deltas:
        a.apply(d)
        raw += enc.feed(d)
    r = a.result()
    final = build_resource(req, response_id="resp_1", created_at=1, completed_at=2, status=r.status, model="m",
                           output=r.output, usage=usage_json(r.usage, None), incomplete_reason=r.incomplete_reason)
    raw += enc.finish(final)
    frames = raw.decode().split("\n\n")
    assert frames[-1] == "" and frames[-2] == "data: [DONE]"
    events = []
    for i, f in enumerate(frames[:-2]):
        ev_line, data_line = f.split("\n")
        e = orjson.loads(data_line[6:])
        assert ev_line == "event: " + e["type"] and e["sequence_number"] == i
        validate_event(e)
        events.append(e)
    validate_resource(events[-1]["response"])
    return events


def test_text_stream_order() -> None:
    events = run([TextDelta(0, "a"), TextDelta(0, "b"), ItemDone(0), UsageUpdate(1, 2), Finish()])
    assert [e["type"] for e in events] == [
        "response.created", "response.in_progress", "response.output_item.added", "response.content_part.added",
        "response.output_text.delta", "response.output_text.delta", "response.output_text.done",
        "response.content_part.done", "response.output_item.done", "response.completed"]
    assert events[6]["text"] == "ab"


def test_reasoning_summary_tool_and_refusal() -> None:
    events = run([
        ReasoningDelta(0, "s1", summary=True), ReasoningDelta(0, "raw"), ReasoningState(0, "tw1.openai.x"),
        ItemDone(0), ToolCallStart(1, "c1", "f"), ToolCallArgsDelta(1, "{}"), ItemDone(1),
        RefusalDelta(2, "no"), Finish(),
    ])
    types = [e["type"] for e in events]
    for t in ("response.reasoning_summary_part.added", "response.reasoning_summary_text.delta",
              "response.reasoning.delta", "response.reasoning.done", "response.function_call_arguments.done",
              "response.refusal.delta", "response.refusal.done"):
        assert t in types
    done = next(e for e in events if e["type"] == "response.output_item.done")
    assert "encrypted_content" not in done["item"]  # OpenAI state only when included
    assert events[-1]["response"]["output"][2]["status"] == "completed"  # closed at finish


def test_encrypted_content_when_included() -> None:
    events = run([ReasoningDelta(0, "r"), ReasoningState(0, "tw1.openai.x"), ItemDone(0), Finish()], True)
    done = next(e for e in events if e["type"] == "response.output_item.done")
    assert done["item"]["encrypted_content"] == "tw1.openai.x"


def test_incomplete_terminal_event() -> None:
    events = run([TextDelta(0, "a"), Finish("incomplete", "max_output_tokens")])
    assert events[-1]["type"] == "response.incomplete"
    assert events[-1]["response"]["incomplete_details"] == {"reason": "max_output_tokens"}


def test_error_frames() -> None:
    req = CanonicalRequest(model="m", input=[])
    a = OutputAssembler()
    enc = ResponsesStreamEncoder(a, False)
    failed = build_resource(req, response_id="r", created_at=1, completed_at=None, status="failed", model="m",
                            output=[], usage=None, error={"code": "upstream_error", "message": "boom"})
    raw = enc.error(GatewayError(502, "boom", type="server_error", code="upstream_error"), failed)
    frames = raw.decode().split("\n\n")
    err = orjson.loads(frames[0].split("\n")[1][6:])
    validate_event(err)
    assert err["error"] == {"type": "server_error", "code": "upstream_error", "message": "boom", "param": None}
    assert frames[2] == "data: [DONE]"


def test_item_opened_by_reasoning_state_alone_is_announced() -> None:
    events = run([ReasoningState(0, "tw1.anthropic.x"), ItemDone(0), TextDelta(1, "hi"), Finish()])
    types = [e["type"] for e in events]
    assert types[2] == "response.output_item.added" and events[2]["item"]["type"] == "reasoning"
    done = next(e for e in events if e["type"] == "response.output_item.done")
    assert done["item"]["encrypted_content"] == "tw1.anthropic.x" and done["item"]["summary"] == []

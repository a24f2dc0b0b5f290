"""Open Responses SSE encoder: provider deltas → the spec's semantic events.

Order: ``response.created`` → ``response.in_progress`` → per item ``output_item.added`` →
``content_part.added`` → deltas → ``…done`` events → ``response.completed|incomplete|failed``, then
``data: [DONE]``. Every frame is ``event: <type>\\ndata: <one-line JSON>\\n\\n`` and is returned whole so
the door writes it in one write. ``sequence_number`` counts from 0.
"""

from __future__ import annotations

from typing import Any

import orjson

from tollway.api.responses_resource import visible_item
from tollway.core.assembler import OutputAssembler, Slot
from tollway.core.errors import GatewayError
from tollway.core.types import (
    Delta,
    ItemDone,
    ReasoningDelta,
    ReasoningState,
    RefusalDelta,
    TextDelta,
    ToolCallArgsDelta,
    ToolCallStart,
)

DONE = b"data: [DONE]\n\n"
_PART_EVENTS = {
    "output_text": ("response.output_text.delta", "response.output_text.done", "text"),
    "refusal": ("response.refusal.delta", "response.refusal.done", "refusal"),
    "reasoning_text": ("response.reasoning.delta", "response.reasoning.done", "text"),
}


class ResponsesStreamEncoder:
    def __init__(self, assembler: OutputAssembler, include_encrypted: bool) -> None:
        self.assembler = assembler
        self.include_encrypted = include_encrypted
        self.seq = 0
        # per slot index: number of content parts / summary parts announced so far
        self._parts: dict[int, int] = {}
        self._summary: dict[int, int] = {}

    def frame(self, type_: str, payload: dict[str, Any]) -> bytes:
        payload["type"] = type_
        payload["sequence_number"] = self.seq
        self.seq += 1
        return b"event: " + type_.encode() + b"\ndata: " + orjson.dumps(payload) + b"\n\n"

    def start(self, snapshot: dict[str, Any]) -> bytes:
        return self.frame("response.created", {"response": snapshot}) + self.frame(
            "response.in_progress", {"response": snapshot}
        )

    # -- items --------------------------------------------------------------------------------------

    def _added(self, slot: Slot) -> bytes:
        if slot.kind == "message":
            item: dict[str, Any] = {"id": slot.item_id, "type": "message", "status": "in_progress",
                                    "role": "assistant", "content": []}
            if slot.phase is not None:
                item["phase"] = slot.phase
        elif slot.kind == "function_call":
            item = {"id": slot.item_id, "type": "function_call", "status": "in_progress",
                    "call_id": slot.call_id, "name": slot.name, "arguments": ""}
        else:
            item = {"id": slot.item_id, "type": "reasoning", "summary": []}
        return self.frame("response.output_item.added", {"output_index": slot.index, "item": item})

    def _part_json(self, kind: str, text: str) -> dict[str, Any]:
        if kind == "output_text":
            return {"type": "output_text", "text": text, "annotations": []}
        if kind == "refusal":
            return {"type": "refusal", "refusal": text}
        return {"type": kind, "text": text}

    def _close_part(self, slot: Slot, ci: int) -> bytes:
        part = slot.parts[ci]
        text = part.text()
        _, done_type, field = _PART_EVENTS[part.type]
        return self.frame(done_type, {"item_id": slot.item_id, "output_index": slot.index, "content_index": ci,
                                      field: text}) + self.frame(
            "response.content_part.done",
            {"item_id": slot.item_id, "output_index": slot.index, "content_index": ci,
             "part": self._part_json(part.type, text)},
        )

    def _close_summary(self, slot: Slot, si: int) -> bytes:
        text = slot.summary[si].text()
        base = {"item_id": slot.item_id, "output_index": slot.index, "summary_index": si}
        return self.frame("response.reasoning_summary_text.done", {**base, "text": text}) + self.frame(
            "response.reasoning_summary_part.done", {**base, "part": {"type": "summary_text", "text": text}}
        )

    def _content_delta(self, slot: Slot, text: str) -> bytes:
        out = b""
        announced = self._parts.get(slot.index, 0)
        ci = len(slot.parts) - 1
        if ci >= announced:  # a new content part began
            if announced:
                out += self._close_part(slot, announced - 1)
            self._parts[slot.index] = ci + 1
            out += self.frame("response.content_part.added", {
                "item_id": slot.item_id, "output_index": slot.index, "content_index": ci,
                "part": self._part_json(slot.parts[ci].type, "")})
        delta_type = _PART_EVENTS[slot.parts[ci].type][0]
        payload: dict[str, Any] = {"item_id": slot.item_id, "output_index": slot.index, "content_index": ci,
                                   "delta": text}
        if delta_type == "response.output_text.delta":
            payload["logprobs"] = []
        return out + self.frame(delta_type, payload)

    def _summary_delta(self, slot: Slot, text: str) -> bytes:
        out = b""
        announced = self._summary.get(slot.index, 0)
        si = len(slot.summary) - 1
        if si >= announced:
            if announced:
                out += self._close_summary(slot, announced - 1)
            self._summary[slot.index] = si + 1
            out += self.frame("response.reasoning_summary_part.added", {
                "item_id": slot.item_id, "output_index": slot.index, "summary_index": si,
                "part": {"type": "summary_text", "text": ""}})
        return out + self.frame("response.reasoning_summary_text.delta", {
            "item_id": slot.item_id, "output_index": slot.index, "summary_index": si, "delta": text})

    def _item_done(self, slot: Slot, status: str) -> bytes:
        out = b""
        announced = self._parts.get(slot.index, 0)
        if announced:
            out += self._close_part(slot, announced - 1)
        summaries = self._summary.get(slot.index, 0)
        if summaries:
            out += self._close_summary(slot, summaries - 1)
        if slot.kind == "function_call":
            out += self.frame("response.function_call_arguments.done", {
                "item_id": slot.item_id, "output_index": slot.index, "arguments": "".join(slot.args)})
        item = visible_item(slot.to_item(status), self.include_encrypted)
        return out + self.frame("response.output_item.done", {"output_index": slot.index, "item": item})

    # -- public -------------------------------------------------------------------------------------

    def feed(self, delta: Delta) -> bytes:
        """Encode one delta that was already applied to the assembler."""
        a = self.assembler
        if isinstance(delta, ItemDone):
            slot = a.slot_for(delta.key)
            return self._item_done(slot, "completed") if slot is not None and slot.done else b""
        if not isinstance(delta, TextDelta | RefusalDelta | ReasoningDelta | ToolCallArgsDelta | ToolCallStart
                          | ReasoningState):
            return b""
        slot = a.slot_for(delta.key)
        if slot is None:
            return b""
        out = self._added(slot) if a.opened is slot else b""
        if isinstance(delta, TextDelta | RefusalDelta):
            out += self._content_delta(slot, delta.text)
        elif isinstance(delta, ReasoningDelta):
            out += self._summary_delta(slot, delta.text) if delta.summary else self._content_delta(slot, delta.text)
        elif isinstance(delta, ToolCallArgsDelta):
            out += self.frame("response.function_call_arguments.delta",
                              {"item_id": slot.item_id, "output_index": slot.index, "delta": delta.delta})
        return out

    def finish(self, final: dict[str, Any]) -> bytes:
        """Close open items, then the terminal event carrying the final resource, then [DONE]."""
        status = final["status"]
        item_status = "completed" if status == "completed" else "incomplete"
        out = b"".join(self._item_done(s, item_status) for s in self.assembler.open_slots())
        for s in self.assembler.slots:
            s.done = True
        terminal = {"completed": "response.completed", "incomplete": "response.incomplete"}.get(
            status, "response.failed")
        return out + self.frame(terminal, {"response": final}) + DONE

    def error(self, err: GatewayError, failed: dict[str, Any]) -> bytes:
        """A mid-stream failure: an ``error`` event, then ``response.failed``, then [DONE]."""
        out = self.frame("error", {"error": {"type": err.type, "code": err.code, "message": err.message,
                                             "param": err.param}})
        return out + self.frame("response.failed", {"response": failed}) + DONE

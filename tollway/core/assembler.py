"""Assembles stream deltas into the final canonical output, assigning item ids and output indexes.

Both doors feed every provider delta through one :class:`OutputAssembler`; the Open Responses encoder
reads the slot each delta touched to emit its events, and at the end the assembler yields the same
``output`` list a non-streaming call would have produced (used for storage, metering and the final
``response.completed`` snapshot).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from tollway.core.ids import random_hex
from tollway.core.types import (
    CanonicalResponse,
    Delta,
    Finish,
    Item,
    ItemDone,
    ReasoningDelta,
    ReasoningState,
    RefusalDelta,
    ResponseStatus,
    StreamError,
    TextDelta,
    ToolCallArgsDelta,
    ToolCallStart,
    Usage,
    UsageUpdate,
)

_ID_PREFIX = {"message": "msg_", "function_call": "fc_", "reasoning": "rs_", "function_call_output": "fco_"}


def new_id(prefix: str) -> str:
    return prefix + random_hex(12)


def item_id_for(item: Item) -> str:
    return new_id(_ID_PREFIX.get(str(item.get("type")), "item_"))


def assign_ids(items: list[Item]) -> list[Item]:
    """Give every item lacking one an ``id`` (in place); returns the list."""
    for item in items:
        if "id" not in item or not item["id"]:
            item["id"] = item_id_for(item)
    return items


@dataclass(slots=True)
class Part:
    type: str  # output_text | refusal | reasoning_text | summary_text
    chunks: list[str] = field(default_factory=list)

    def text(self) -> str:
        return "".join(self.chunks)


@dataclass(slots=True)
class Slot:
    """One output item under construction."""

    index: int
    kind: str  # message | function_call | reasoning
    item_id: str
    call_id: str = ""
    name: str = ""
    phase: str | None = None
    parts: list[Part] = field(default_factory=list)  # message content / reasoning content
    summary: list[Part] = field(default_factory=list)  # reasoning summary
    encrypted_content: str | None = None
    args: list[str] = field(default_factory=list)
    done: bool = False

    def to_item(self, status: str) -> Item:
        if self.kind == "message":
            content: list[dict[str, Any]] = []
            for p in self.parts:
                if p.type == "refusal":
                    content.append({"type": "refusal", "refusal": p.text()})
                else:
                    content.append({"type": "output_text", "text": p.text(), "annotations": []})
            item: Item = {"id": self.item_id, "type": "message", "status": status, "role": "assistant",
                          "content": content}
            if self.phase is not None:
                item["phase"] = self.phase
            return item
        if self.kind == "function_call":
            return {"id": self.item_id, "type": "function_call", "status": status, "call_id": self.call_id,
                    "name": self.name, "arguments": "".join(self.args)}
        item = {
            "id": self.item_id,
            "type": "reasoning",
            "summary": [{"type": "summary_text", "text": p.text()} for p in self.summary],
            "content": [{"type": "reasoning_text", "text": p.text()} for p in self.parts],
        }
        if self.encrypted_content is not None:
            item["encrypted_content"] = self.encrypted_content
        return item


class OutputAssembler:
    def __init__(self) -> None:
        self.slots: list[Slot] = []
        self._by_key: dict[Any, Slot] = {}
        self.usage = Usage()
        self.usage_seen = False
        self.status: ResponseStatus = "in_progress"
        self.incomplete_reason: str | None = None
        self.upstream_model: str | None = None
        self.upstream_id: str | None = None
        self.error: StreamError | None = None
        self.opened: Slot | None = None  # slot newly created by the last apply(), if any

    def _slot(self, key: Any, kind: str) -> Slot:
        slot = self._by_key.get(key)
        if slot is None or slot.kind != kind or slot.done:
            slot = Slot(index=len(self.slots), kind=kind, item_id=new_id(_ID_PREFIX[kind]))
            self.slots.append(slot)
            self._by_key[key] = slot
            self.opened = slot
        return slot

    def apply(self, delta: Delta) -> Slot | None:
        """Record ``delta``; return the slot it touched (``self.opened`` tells whether it is new)."""
        self.opened = None
        if isinstance(delta, TextDelta):
            slot = self._slot(delta.key, "message")
            if delta.phase is not None:
                slot.phase = delta.phase
            if not slot.parts or slot.parts[-1].type != "output_text":
                slot.parts.append(Part("output_text"))
            slot.parts[-1].chunks.append(delta.text)
            return slot
        if isinstance(delta, RefusalDelta):
            slot = self._slot(delta.key, "message")
            if not slot.parts or slot.parts[-1].type != "refusal":
                slot.parts.append(Part("refusal"))
            slot.parts[-1].chunks.append(delta.text)
            return slot
        if isinstance(delta, ToolCallArgsDelta):
            slot = self._slot(delta.key, "function_call")
            slot.args.append(delta.delta)
            return slot
        if isinstance(delta, ReasoningDelta):
            slot = self._slot(delta.key, "reasoning")
            parts = slot.summary if delta.summary else slot.parts
            kind = "summary_text" if delta.summary else "reasoning_text"
            if not parts:
                parts.append(Part(kind))
            parts[-1].chunks.append(delta.text)
            return slot
        if isinstance(delta, ToolCallStart):
            slot = self._slot(delta.key, "function_call")
            slot.call_id = delta.call_id
            slot.name = delta.name
            return slot
        if isinstance(delta, ReasoningState):
            slot = self._slot(delta.key, "reasoning")
            slot.encrypted_content = delta.encrypted_content
            return slot
        if isinstance(delta, ItemDone):
            done = self._by_key.get(delta.key)
            if done is not None and not done.done:
                done.done = True
                return done
            return None
        if isinstance(delta, UsageUpdate):
            self._update_usage(delta)
            return None
        if isinstance(delta, Finish):
            self.status = delta.status
            self.incomplete_reason = delta.incomplete_reason
            self.upstream_model = delta.upstream_model or self.upstream_model
            self.upstream_id = delta.upstream_id or self.upstream_id
            return None
        self.error = delta
        return None

    def _update_usage(self, u: UsageUpdate) -> None:
        self.usage_seen = True
        if u.input_tokens is not None:
            self.usage.input_tokens = u.input_tokens
        if u.output_tokens is not None:
            self.usage.output_tokens = u.output_tokens
        if u.cached_tokens is not None:
            self.usage.cached_tokens = u.cached_tokens
        if u.cache_write_tokens is not None:
            self.usage.cache_write_tokens = u.cache_write_tokens
        if u.reasoning_tokens is not None:
            self.usage.reasoning_tokens = u.reasoning_tokens

    def slot_for(self, key: Any) -> Slot | None:
        return self._by_key.get(key)

    def open_slots(self) -> list[Slot]:
        return [s for s in self.slots if not s.done]

    def result(self) -> CanonicalResponse:
        status: ResponseStatus = self.status if self.status != "in_progress" else "failed"
        item_status = "completed" if status == "completed" else "incomplete"
        output = [s.to_item("completed" if s.done else item_status) for s in self.slots]
        return CanonicalResponse(
            output=output,
            status=status,
            incomplete_reason=self.incomplete_reason,
            usage=self.usage if self.usage_seen else None,
            upstream_model=self.upstream_model,
            upstream_id=self.upstream_id,
        )

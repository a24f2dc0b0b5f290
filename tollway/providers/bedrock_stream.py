"""ConverseStream events -> canonical deltas (the stream half of the Bedrock adapter).

The shared client decodes the binary ``application/vnd.amazon.eventstream`` framing with botocore and hands
over ``(event type, JSON payload)``; exception messages arrive as ``("exception:<type>", payload)``.

Events: ``messageStart``; ``contentBlockStart`` (only tool use blocks announce themselves, with id and
name); ``contentBlockDelta`` (``text``, ``toolUse.input`` JSON fragments, ``reasoningContent`` ``text`` /
``signature`` / ``redactedContent``); ``contentBlockStop``; ``messageStop`` (``stopReason``) and a final
``metadata`` (usage, metrics). Every payload may carry a ``p`` padding field, which is ignored.

The key of an item is its ``contentBlockIndex``. As in the non-streaming parser, consecutive text blocks
form one message: they share the first block's key, and its :class:`ItemDone` is sent when another kind of
block starts or the message stops. A reasoning block's signature or redacted content is sent as
:class:`ReasoningState` when the block stops. A stream that ends without ``messageStop`` (and without an
exception) ends in an ``upstream_stream_truncated`` error.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import orjson

from tollway.core import reasoning_state
from tollway.core.types import (
    JSON,
    Delta,
    Finish,
    ItemDone,
    ReasoningDelta,
    ReasoningState,
    ResponseStatus,
    StreamError,
    TextDelta,
    ToolCallArgsDelta,
    ToolCallStart,
    UsageUpdate,
)
from tollway.providers.bedrock_request import PROVIDER

_NO_TOOL_ARGS = "{}"
# stopReason -> (status, incomplete_reason). malformed_model_output / malformed_tool_use (the model's output
# could not be parsed) keep whatever content arrived and complete; unknown values complete too.
STOP_REASONS: dict[str, tuple[ResponseStatus, str | None]] = {
    "end_turn": ("completed", None),
    "tool_use": ("completed", None),
    "stop_sequence": ("completed", None),
    "max_tokens": ("incomplete", "max_output_tokens"),
    "model_context_window_exceeded": ("incomplete", "max_output_tokens"),
    "guardrail_intervened": ("incomplete", "content_filter"),
    "content_filtered": ("incomplete", "content_filter"),
}
_COMPLETED: tuple[ResponseStatus, str | None] = ("completed", None)
# ConverseStream exception event types -> the error envelope type tollway reports.
STREAM_ERROR_TYPES: dict[str, str] = {
    "throttlingException": "rate_limit_error",
    "serviceUnavailableException": "overloaded_error",
    "validationException": "invalid_request_error",
    "modelStreamErrorException": "server_error",
    "internalServerException": "server_error",
}


def map_stop_reason(stop_reason: Any) -> tuple[ResponseStatus, str | None]:
    """Converse ``stopReason`` -> canonical ``(status, incomplete_reason)``."""
    if not isinstance(stop_reason, str):
        return _COMPLETED
    return STOP_REASONS.get(stop_reason, _COMPLETED)


def usage_counts(raw: Any) -> tuple[int, int, int, int] | None:
    """``(input incl. cache, output, cache reads, cache writes)`` from a Converse ``usage`` object.

    Bedrock's ``inputTokens`` excludes cache reads and writes for Anthropic models (``totalTokens`` is then
    input + output + reads + writes); the canonical input count includes them. When ``totalTokens`` shows
    that ``inputTokens`` already includes them (total = input + output), they are not added twice."""
    if not isinstance(raw, dict):
        return None
    fresh = raw.get("inputTokens")
    output = raw.get("outputTokens")
    read = raw.get("cacheReadInputTokens", raw.get("cacheReadInputTokenCount"))
    write = raw.get("cacheWriteInputTokens", raw.get("cacheWriteInputTokenCount"))
    fresh = fresh if isinstance(fresh, int) else 0
    output = output if isinstance(output, int) else 0
    read = read if isinstance(read, int) else 0
    write = write if isinstance(write, int) else 0
    total = raw.get("totalTokens")
    included = (read or write) and total == fresh + output
    return (fresh if included else fresh + read + write), output, read, write


@dataclass(slots=True)
class _Block:
    kind: str  # text | tool | reasoning | skip
    key: int
    opened: bool = False  # a delta for this key was emitted, so the item exists downstream
    has_args: bool = False
    signature: str = ""
    redacted: str = ""


class BedrockStreamParser:
    __slots__ = ("_blocks", "_done", "_open_text")

    def __init__(self) -> None:
        self._blocks: dict[int, _Block] = {}
        self._open_text: _Block | None = None  # the text run whose ItemDone is pending
        self._done = False  # messageStop or an exception seen

    def feed(self, event: str | None, data: bytes) -> list[Delta]:
        if event is not None and event.startswith("exception:"):
            return self._exception(event[len("exception:") :], data)
        try:
            ev = orjson.loads(data)
        except orjson.JSONDecodeError:
            ev = None
        if not isinstance(ev, dict):
            self._done = True
            return [StreamError("malformed stream event", code="upstream_bad_event")]
        if event == "contentBlockDelta":
            return self._delta(ev)
        if event == "contentBlockStart":
            return self._start(ev)
        if event == "contentBlockStop":
            return self._stop(ev)
        if event == "messageStop":
            return self._message_stop(ev)
        if event == "metadata":
            counts = usage_counts(ev.get("usage"))
            if counts is None:
                return []
            total, output, read, write = counts
            return [UsageUpdate(input_tokens=total, output_tokens=output, cached_tokens=read, cache_write_tokens=write)]
        return []  # messageStart and event types added after this parser was written

    def close(self) -> list[Delta]:
        if self._done:
            return []
        self._done = True
        return [StreamError("stream ended before messageStop", code="upstream_stream_truncated")]

    # ---- events ------------------------------------------------------------------------------------------

    def _exception(self, kind: str, data: bytes) -> list[Delta]:
        self._done = True
        try:
            payload = orjson.loads(data)
        except orjson.JSONDecodeError:
            payload = None
        message = payload.get("message") if isinstance(payload, dict) else None
        if not isinstance(message, str) or not message:
            message = f"Bedrock stream failed ({kind})"
        return [StreamError(message, code=kind, type=STREAM_ERROR_TYPES.get(kind, "server_error"))]

    def _end_text_run(self, out: list[Delta]) -> list[Delta]:
        run = self._open_text
        if run is not None:
            self._open_text = None
            if run.opened:
                out.append(ItemDone(run.key))
        return out

    def _start(self, ev: JSON) -> list[Delta]:
        index = ev.get("contentBlockIndex")
        start = ev.get("start")
        if not isinstance(index, int) or index in self._blocks:
            return []
        tool = start.get("toolUse") if isinstance(start, dict) else None
        if not isinstance(tool, dict):
            self._blocks[index] = _Block("skip", index)  # tool results, images: no canonical form
            return []
        out = self._end_text_run([])
        self._blocks[index] = _Block("tool", index, opened=True)
        out.append(ToolCallStart(index, tool.get("toolUseId") or "", tool.get("name") or ""))
        return out

    def _block_for(self, index: int, delta: JSON) -> tuple[_Block | None, list[Delta]]:
        """The block ``index`` belongs to, created by its first delta (Bedrock announces only tool use)."""
        block = self._blocks.get(index)
        if block is not None:
            return block, []
        out: list[Delta] = []
        if "text" in delta:
            run = self._open_text
            block = _Block("text", run.key if run is not None else index)
            if run is not None:
                block.opened = run.opened
            self._open_text = block
        elif "reasoningContent" in delta:
            self._end_text_run(out)
            block = _Block("reasoning", index)
        else:
            return None, out
        self._blocks[index] = block
        return block, out

    def _delta(self, ev: JSON) -> list[Delta]:
        index = ev.get("contentBlockIndex")
        delta = ev.get("delta")
        if not isinstance(index, int) or not isinstance(delta, dict):
            return []
        block, out = self._block_for(index, delta)
        if block is None or block.kind == "skip":
            return out
        if block.kind == "text":
            text = delta.get("text")
            if isinstance(text, str) and text:
                block.opened = True
                out.append(TextDelta(block.key, text))
        elif block.kind == "tool":
            tool = delta.get("toolUse")
            fragment = tool.get("input") if isinstance(tool, dict) else None
            if isinstance(fragment, str) and fragment:
                block.has_args = True
                out.append(ToolCallArgsDelta(block.key, fragment))
        else:
            reasoning = delta.get("reasoningContent")
            if isinstance(reasoning, dict):
                text = reasoning.get("text")
                if isinstance(text, str) and text:
                    block.opened = True
                    out.append(ReasoningDelta(block.key, text))
                signature = reasoning.get("signature")
                if isinstance(signature, str):
                    block.signature += signature
                redacted = reasoning.get("redactedContent")
                if isinstance(redacted, str):
                    block.redacted += redacted
        return out

    def _stop(self, ev: JSON) -> list[Delta]:
        index = ev.get("contentBlockIndex")
        block = self._blocks.get(index) if isinstance(index, int) else None
        if block is None or block.kind in ("skip", "text"):
            return []  # a text run's ItemDone waits until the run ends
        out: list[Delta] = []
        if block.kind == "tool":
            if not block.has_args:
                out.append(ToolCallArgsDelta(block.key, _NO_TOOL_ARGS))
        elif block.redacted or block.signature:
            block.opened = True
            state = {"redacted": block.redacted} if block.redacted else {"signature": block.signature}
            out.append(ReasoningState(block.key, reasoning_state.wrap(PROVIDER, state)))
        if block.opened:
            out.append(ItemDone(block.key))
        block.kind = "skip"  # a repeated stop is ignored
        return out

    def _message_stop(self, ev: JSON) -> list[Delta]:
        self._done = True
        out = self._end_text_run([])
        status, reason = map_stop_reason(ev.get("stopReason"))
        out.append(Finish(status=status, incomplete_reason=reason))
        return out

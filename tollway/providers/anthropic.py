"""Anthropic Messages API adapter (``POST {base_url}/messages``, ``anthropic-version: 2023-06-01``).

The request body is built by :mod:`tollway.providers.anthropic_request` (see its docstring for the mapping
decisions). This module holds the adapter, the response parser and the stream parser:

* Content blocks become canonical items: a run of ``text`` blocks one assistant message, ``thinking`` /
  ``redacted_thinking`` a reasoning item whose ``encrypted_content`` wraps the signature / redacted data
  (so it can go back to Anthropic), ``tool_use`` a function call. Server tool blocks (web search and the
  like) have no canonical form and are skipped.
* ``stop_reason``: see :data:`STOP_REASONS`. A refusal without any text gets a refusal part.
* Usage: Anthropic's ``input_tokens`` excludes cache reads and writes; the canonical input count
  includes them (``cached_tokens`` = reads, ``cache_write_tokens`` = writes).
* Streams: the key of an item is its content block index; consecutive text blocks share the first one's
  key so a stream yields the same items as the non-streaming answer. A stream that ends without
  ``message_stop`` (and without an ``error`` event) ends in a ``upstream_stream_truncated`` error.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import orjson

from tollway.core import reasoning_state
from tollway.core.errors import GatewayError
from tollway.core.types import (
    JSON,
    CanonicalRequest,
    CanonicalResponse,
    Delta,
    Fidelity,
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
from tollway.providers.anthropic_request import PROVIDER, build_body
from tollway.providers.base import ProviderSettings, StreamParser, UpstreamRequest

API_VERSION = "2023-06-01"
DEFAULT_MAX_TOKENS = 4096
MIN_THINKING_BUDGET = 1024
THINKING_BUDGETS: dict[str, int] = {
    "minimal": 1024,
    "low": 2048,
    "medium": 8192,
    "high": 16384,
    "xhigh": 24576,
}
# stop_reason -> (status, incomplete_reason)
STOP_REASONS: dict[str, tuple[ResponseStatus, str | None]] = {
    "end_turn": ("completed", None),
    "stop_sequence": ("completed", None),
    "tool_use": ("completed", None),
    "pause_turn": ("completed", None),
    "max_tokens": ("incomplete", "max_output_tokens"),
    "model_context_window_exceeded": ("incomplete", "max_output_tokens"),
    "refusal": ("incomplete", "content_filter"),
}
_COMPLETED: tuple[ResponseStatus, str | None] = ("completed", None)
REFUSAL_FALLBACK = "The model declined to respond."
# Error types tollway's envelope knows; any other Anthropic type (e.g. api_error) becomes server_error.
_ENVELOPE_TYPES = frozenset(
    {
        "invalid_request_error",
        "authentication_error",
        "permission_error",
        "not_found_error",
        "rate_limit_error",
        "overloaded_error",
    }
)
_NO_TOOL_ARGS = "{}"
_ERROR_TEXT_LIMIT = 500


def _dumps(value: Any) -> str:
    return orjson.dumps(value).decode()


def map_stop_reason(stop_reason: str | None) -> tuple[ResponseStatus, str | None]:
    """Anthropic ``stop_reason`` -> canonical ``(status, incomplete_reason)``; unknown values complete."""
    if stop_reason is None:
        return _COMPLETED
    return STOP_REASONS.get(stop_reason, _COMPLETED)


def _usage(raw: Any) -> Usage | None:
    if not isinstance(raw, dict):
        return None
    fresh = raw.get("input_tokens") or 0
    read = raw.get("cache_read_input_tokens") or 0
    write = raw.get("cache_creation_input_tokens") or 0
    details = raw.get("output_tokens_details")
    thinking = details.get("thinking_tokens") if isinstance(details, dict) else None
    return Usage(
        input_tokens=fresh + read + write,
        output_tokens=raw.get("output_tokens") or 0,
        cached_tokens=read,
        cache_write_tokens=write,
        reasoning_tokens=thinking or 0,
    )


# --------------------------------------------------------------------------------------------------
# Response
# --------------------------------------------------------------------------------------------------


def _text_item(text: str) -> Item:
    return {
        "type": "message",
        "role": "assistant",
        "status": "completed",
        "content": [{"type": "output_text", "text": text, "annotations": []}],
    }


def _refusal_item(text: str) -> Item:
    return {
        "type": "message",
        "role": "assistant",
        "status": "completed",
        "content": [{"type": "refusal", "refusal": text}],
    }


def _reasoning_item(text: str, state: JSON) -> Item:
    return {
        "type": "reasoning",
        "summary": [],
        "content": [{"type": "reasoning_text", "text": text}] if text else [],
        "encrypted_content": reasoning_state.wrap(PROVIDER, state),
    }


def _refusal_text(stop_details: Any) -> str:
    if isinstance(stop_details, dict):
        explanation = stop_details.get("explanation")
        if isinstance(explanation, str) and explanation:
            return explanation
    return REFUSAL_FALLBACK


def convert_output(content: list[Any]) -> list[Item]:
    """Anthropic content blocks -> canonical output items. Runs of text blocks form one message; server
    tool blocks (web search and the like) have no canonical form and are skipped."""
    output: list[Item] = []
    run: list[str] = []
    for block in content:
        btype = block.get("type") if isinstance(block, dict) else None
        if btype == "text":
            run.append(block.get("text") or "")
            continue
        if run:
            text = "".join(run)
            if text:
                output.append(_text_item(text))
            run = []
        if btype == "tool_use":
            output.append(
                {
                    "type": "function_call",
                    "call_id": block.get("id"),
                    "name": block.get("name"),
                    "arguments": _dumps(block.get("input") or {}),
                    "status": "completed",
                }
            )
        elif btype == "thinking":
            output.append(_reasoning_item(block.get("thinking") or "", {"signature": block.get("signature")}))
        elif btype == "redacted_thinking":
            output.append(_reasoning_item("", {"redacted_data": block.get("data")}))
    text = "".join(run)
    if text:
        output.append(_text_item(text))
    return output


def _error_text(body: bytes) -> str:
    text = body.decode("utf-8", "replace").strip()
    return text[:_ERROR_TEXT_LIMIT] if text else "empty error body"


class AnthropicAdapter:
    kind = "anthropic"

    def build_request(
        self, req: CanonicalRequest, model: str, settings: ProviderSettings, fidelity: Fidelity
    ) -> UpstreamRequest:
        body = build_body(req, model, fidelity)
        headers = {"anthropic-version": API_VERSION, "content-type": "application/json"}
        if settings.api_key is not None:
            headers["x-api-key"] = settings.api_key
        if req.stream:
            headers["accept"] = "text/event-stream"
        headers.update(settings.headers)
        return UpstreamRequest(
            method="POST",
            url=f"{settings.base_url}/messages",
            headers=headers,
            body=orjson.dumps(body),
            stream=req.stream,
            stream_format="sse",
        )

    def parse_response(self, body: bytes) -> CanonicalResponse:
        try:
            data = orjson.loads(body)
        except orjson.JSONDecodeError:
            data = None
        if not isinstance(data, dict) or not isinstance(data.get("content"), list):
            raise GatewayError(
                502,
                "anthropic: the provider returned a malformed response body.",
                type="server_error",
                code="upstream_bad_response",
            )
        output = convert_output(data["content"])
        stop_reason = data.get("stop_reason")
        status, reason = map_stop_reason(stop_reason)
        if stop_reason == "refusal" and not any(item["type"] == "message" for item in output):
            output.append(_refusal_item(_refusal_text(data.get("stop_details"))))
        return CanonicalResponse(
            output=output,
            status=status,
            incomplete_reason=reason,
            usage=_usage(data.get("usage")),
            upstream_model=data.get("model"),
            upstream_id=data.get("id"),
        )

    def stream_parser(self, req: CanonicalRequest) -> StreamParser:
        return AnthropicStreamParser()

    def error_message(self, body: bytes) -> tuple[str, str | None]:
        try:
            data = orjson.loads(body)
        except orjson.JSONDecodeError:
            return _error_text(body), None
        if isinstance(data, dict):
            error = data.get("error")
            if isinstance(error, dict):
                message = error.get("message")
                etype = error.get("type")
                return (
                    message if isinstance(message, str) and message else _error_text(body),
                    etype if isinstance(etype, str) else None,
                )
            message = data.get("message")
            if isinstance(message, str) and message:
                return message, None
        return _error_text(body), None


# --------------------------------------------------------------------------------------------------
# Streaming
# --------------------------------------------------------------------------------------------------

_USAGE_FIELDS = ("input_tokens", "cache_read_input_tokens", "cache_creation_input_tokens", "output_tokens")


@dataclass(slots=True)
class _Block:
    kind: str  # text | tool | thinking | skip
    key: int
    opened: bool = False  # a delta for this key was emitted, so the item exists downstream
    signature: str = ""
    has_args: bool = False


class AnthropicStreamParser:
    """Messages SSE events -> canonical deltas.

    The key of an item is its content block index. As in :func:`convert_output`, a run of consecutive text
    blocks (Anthropic splits text at citations) forms one message: its blocks share the first block's key and
    its :class:`ItemDone` is sent when the run ends (the next block starts or the message ends).
    """

    __slots__ = (
        "_blocks",
        "_done",
        "_model",
        "_msg_id",
        "_next_index",
        "_open_text",
        "_stop_details",
        "_stop_reason",
        "_text_seen",
        "_usage",
    )

    def __init__(self) -> None:
        self._blocks: dict[int, _Block] = {}
        self._usage: dict[str, int] = {}
        self._model: str | None = None
        self._msg_id: str | None = None
        self._stop_reason: str | None = None
        self._stop_details: Any = None
        self._open_text: _Block | None = None  # the finished text block whose run may continue
        self._text_seen = False
        self._next_index = 0
        self._done = False  # message_stop or an error was seen

    def feed(self, event: str | None, data: bytes) -> list[Delta]:
        try:
            ev = orjson.loads(data)
        except orjson.JSONDecodeError:
            ev = None
        if not isinstance(ev, dict):
            self._done = True
            return [StreamError("anthropic: malformed stream event", code="upstream_bad_event")]
        etype = ev.get("type") or event
        if etype == "content_block_delta":
            return self._delta(ev)
        if etype == "content_block_start":
            return self._start(ev)
        if etype == "content_block_stop":
            return self._stop(ev)
        if etype == "message_start":
            message = ev.get("message") or {}
            self._model = message.get("model")
            self._msg_id = message.get("id")
            return self._usage_update(message.get("usage"), [])
        if etype == "message_delta":
            return self._message_delta(ev)
        if etype == "message_stop":
            self._done = True
            status, reason = map_stop_reason(self._stop_reason)
            out = self._end_text_run([])
            out.append(
                Finish(
                    status=status,
                    incomplete_reason=reason,
                    upstream_model=self._model,
                    upstream_id=self._msg_id,
                )
            )
            return out
        if etype == "error":
            self._done = True
            error = ev.get("error") or {}
            code = error.get("type")
            return [
                StreamError(
                    message=error.get("message") or "anthropic: stream error",
                    code=code,
                    type=code if code in _ENVELOPE_TYPES else "server_error",
                )
            ]
        return []  # ping and event types added after this adapter was written

    def close(self) -> list[Delta]:
        if self._done:
            return []
        self._done = True
        return [StreamError("stream ended before message_stop", code="upstream_stream_truncated")]

    def _end_text_run(self, out: list[Delta]) -> list[Delta]:
        run = self._open_text
        if run is not None:
            self._open_text = None
            if run.opened:
                out.append(ItemDone(run.key))
        return out

    def _start(self, ev: JSON) -> list[Delta]:
        index = ev.get("index")
        block_json = ev.get("content_block") or {}
        if not isinstance(index, int):
            return []
        self._next_index = max(self._next_index, index + 1)
        btype = block_json.get("type")
        out: list[Delta] = []
        if btype == "text":
            run = self._open_text
            if run is not None:  # continue the message of the previous text block
                self._open_text = None
                block = run
            else:
                block = _Block("text", index)
            text = block_json.get("text")
            if text:
                block.opened = self._text_seen = True
                out.append(TextDelta(block.key, text))
            self._blocks[index] = block
            return out
        self._end_text_run(out)
        if btype == "tool_use":
            block = _Block("tool", index, opened=True)
            out.append(ToolCallStart(index, block_json.get("id") or "", block_json.get("name") or ""))
            initial = block_json.get("input")
            if initial:
                block.has_args = True
                out.append(ToolCallArgsDelta(index, _dumps(initial)))
        elif btype == "thinking":
            block = _Block("thinking", index, signature=block_json.get("signature") or "")
            text = block_json.get("thinking")
            if text:
                block.opened = True
                out.append(ReasoningDelta(index, text))
        elif btype == "redacted_thinking":
            block = _Block("thinking", index, opened=True)
            state = reasoning_state.wrap(PROVIDER, {"redacted_data": block_json.get("data")})
            out.append(ReasoningState(index, state))
        else:
            block = _Block("skip", index)  # server tool use / results: not representable
        self._blocks[index] = block
        return out

    def _delta(self, ev: JSON) -> list[Delta]:
        index = ev.get("index")
        block = self._blocks.get(index) if isinstance(index, int) else None
        if block is None or block.kind == "skip":
            return []
        delta = ev.get("delta") or {}
        dtype = delta.get("type")
        if dtype == "text_delta":
            text = delta.get("text")
            if text and block.kind == "text":
                block.opened = self._text_seen = True
                return [TextDelta(block.key, text)]
        elif dtype == "input_json_delta":
            partial = delta.get("partial_json")
            if partial and block.kind == "tool":
                block.has_args = True
                return [ToolCallArgsDelta(block.key, partial)]
        elif dtype == "thinking_delta":
            text = delta.get("thinking")
            if text and block.kind == "thinking":
                block.opened = True
                return [ReasoningDelta(block.key, text)]
        elif dtype == "signature_delta":
            block.signature += delta.get("signature") or ""
        return []  # citations_delta and unknown delta types

    def _stop(self, ev: JSON) -> list[Delta]:
        index = ev.get("index")
        block = self._blocks.pop(index, None) if isinstance(index, int) else None
        if block is None or block.kind == "skip":
            return []
        if block.kind == "text":
            self._open_text = block  # its ItemDone waits until the run of text blocks ends
            return []
        out: list[Delta] = []
        if block.kind == "tool" and not block.has_args:
            out.append(ToolCallArgsDelta(block.key, _NO_TOOL_ARGS))
        elif block.kind == "thinking" and block.signature:
            block.opened = True
            state = reasoning_state.wrap(PROVIDER, {"signature": block.signature})
            out.append(ReasoningState(block.key, state))
        if block.opened:
            out.append(ItemDone(block.key))
        return out

    def _message_delta(self, ev: JSON) -> list[Delta]:
        delta = ev.get("delta") or {}
        stop_reason = delta.get("stop_reason")
        if stop_reason is not None:
            self._stop_reason = stop_reason
            self._stop_details = delta.get("stop_details")
        out = self._usage_update(ev.get("usage"), self._end_text_run([]))
        if stop_reason == "refusal" and not self._text_seen:
            key = self._next_index
            self._next_index += 1
            out.append(RefusalDelta(key, _refusal_text(self._stop_details)))
            out.append(ItemDone(key))
        return out

    def _usage_update(self, raw: Any, out: list[Delta]) -> list[Delta]:
        if not isinstance(raw, dict):
            return out
        usage = self._usage
        for name in _USAGE_FIELDS:
            value = raw.get(name)
            if isinstance(value, int):
                usage[name] = value
        details = raw.get("output_tokens_details")
        thinking = details.get("thinking_tokens") if isinstance(details, dict) else None
        read = usage.get("cache_read_input_tokens")
        write = usage.get("cache_creation_input_tokens")
        fresh = usage.get("input_tokens")
        out.append(
            UsageUpdate(
                input_tokens=None if fresh is None else fresh + (read or 0) + (write or 0),
                output_tokens=usage.get("output_tokens"),
                cached_tokens=read,
                cache_write_tokens=write,
                reasoning_tokens=thinking if isinstance(thinking, int) else None,
            )
        )
        return out

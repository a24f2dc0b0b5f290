"""Stream parser for OpenAI-compatible Chat Completions streams (``chat.completion.chunk`` events).

Item keys: ``"reasoning"`` (raw reasoning text), ``"text"`` (the assistant message: text and refusal),
``("tool", index)`` per tool call. Reasoning and text are sequential: when one starts, every open item
is finished first. A tool call finishes the open reasoning/text item but not earlier tool calls, so
servers that interleave the arguments of parallel calls work; tool calls end when the stream ends.
A kind that starts again after it was finished gets a fresh key (``("text", 1)``).
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import orjson

from tollway.core.types import (
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

if TYPE_CHECKING:
    from tollway.providers.openai_chat import OpenAIChatAdapter

_DONE = b"[DONE]"
# OpenAI error types kept on a StreamError; anything else (e.g. vLLM's "BadRequestError") -> server_error
_ERROR_TYPES = frozenset(
    {"invalid_request_error", "server_error", "rate_limit_error", "authentication_error", "permission_error"}
)


def new_call_id() -> str:
    """A call id for a tool call the upstream sent without one."""
    return f"call_{uuid.uuid4().hex[:24]}"


def _nonempty(value: Any) -> str | None:
    return value if isinstance(value, str) and value else None


@dataclass(slots=True)
class _ToolCall:
    key: Any
    call_id: str | None
    name: str | None
    started: bool = False
    pending: list[str] = field(default_factory=list)  # argument fragments seen before the name


class ChatStreamParser:
    """Per-request parser; pure. ``hooks`` is the adapter whose hooks interpret content and usage."""

    __slots__ = (
        "_current",
        "_done",
        "_finish_reason",
        "_hooks",
        "_id",
        "_model",
        "_open",
        "_seen",
        "_tools",
    )

    def __init__(self, hooks: OpenAIChatAdapter) -> None:
        self._hooks = hooks
        self._open: dict[Any, None] = {}  # open item keys, in order of first appearance
        self._current: Any = None  # key of the open reasoning/text item
        self._seen: dict[Any, int] = {}  # how many items each base key has had
        self._tools: dict[Any, _ToolCall] = {}  # latest call per upstream tool_calls index
        self._finish_reason: str | None = None
        self._model: str | None = None
        self._id: str | None = None
        self._done = False

    # ---- StreamParser ----------------------------------------------------------------------------------
    def feed(self, event: str | None, data: bytes) -> list[Delta]:
        if self._done:
            return []
        data = data.strip()
        if not data:
            return []
        if data == _DONE:
            return self._end()
        try:
            chunk = orjson.loads(data)
        except orjson.JSONDecodeError:
            return self._fail(f"upstream sent an invalid stream chunk: {data[:200]!r}", "upstream_bad_chunk")
        if not isinstance(chunk, dict):
            return self._fail("upstream sent an unexpected stream chunk", "upstream_bad_chunk")
        if chunk.get("error") is not None or event == "error":
            message, code = self._hooks.error_fields(chunk) or ("upstream stream error", None)
            err = chunk.get("error")
            etype = _nonempty(err.get("type")) if isinstance(err, dict) else None
            self._done = True
            return [StreamError(message, code, etype if etype in _ERROR_TYPES else "server_error")]
        if self._id is None:
            self._id = _nonempty(chunk.get("id"))
            self._model = _nonempty(chunk.get("model"))
        out: list[Delta] = []
        choices = chunk.get("choices")
        if choices:
            choice = choices[0]
            if isinstance(choice, dict):
                delta = choice.get("delta")
                if isinstance(delta, dict):
                    self._delta(delta, out)
                finish_reason = choice.get("finish_reason")
                if isinstance(finish_reason, str) and finish_reason:
                    self._finish_reason = finish_reason
        usage = chunk.get("usage")
        if isinstance(usage, dict):
            u = self._hooks.parse_usage(usage)
            out.append(
                UsageUpdate(
                    input_tokens=u.input_tokens,
                    output_tokens=u.output_tokens,
                    cached_tokens=u.cached_tokens,
                    cache_write_tokens=u.cache_write_tokens,
                    reasoning_tokens=u.reasoning_tokens,
                )
            )
        return out

    def close(self) -> list[Delta]:
        if self._done:
            return []
        if self._finish_reason is not None:
            # Some compatible servers end the stream without ``data: [DONE]``.
            return self._end()
        return self._fail("upstream stream ended before the response completed", "upstream_stream_truncated")

    # ---- internals -------------------------------------------------------------------------------------
    def _fail(self, message: str, code: str) -> list[Delta]:
        self._done = True
        return [StreamError(message, code)]

    def _end(self) -> list[Delta]:
        self._done = True
        out: list[Delta] = []
        self._close_all(out)
        status, reason = self._hooks.finish(self._finish_reason)
        out.append(Finish(status, reason, upstream_model=self._model, upstream_id=self._id))
        return out

    def _close_all(self, out: list[Delta]) -> None:
        """Finish every open item, in order of first appearance."""
        out.extend(ItemDone(key) for key in self._open)
        self._open.clear()
        self._current = None

    def _close_current(self, out: list[Delta]) -> None:
        """Finish the open reasoning/text item, if any."""
        if self._current is not None:
            del self._open[self._current]
            out.append(ItemDone(self._current))
            self._current = None

    def _new_key(self, base: Any) -> Any:
        n = self._seen.get(base, 0)
        self._seen[base] = n + 1
        if n == 0:
            return base
        return (*base, n) if isinstance(base, tuple) else (base, n)

    def _item(self, kind: str, out: list[Delta]) -> Any:
        """Key of the open reasoning/text item of ``kind``, starting one (and finishing others) if needed."""
        current = self._current
        if current is not None and (current == kind or (isinstance(current, tuple) and current[0] == kind)):
            return current
        self._close_all(out)
        key = self._new_key(kind)
        self._open[key] = None
        self._current = key
        return key

    def _delta(self, delta: dict[str, Any], out: list[Delta]) -> None:
        hooks = self._hooks
        reasoning = hooks.reasoning_text(delta)
        if reasoning:
            out.append(ReasoningDelta(self._item("reasoning", out), reasoning))
        content = delta.get("content")
        if content:
            for kind, text in hooks.content_fragments(content):
                if kind == "reasoning":
                    out.append(ReasoningDelta(self._item("reasoning", out), text))
                else:
                    out.append(TextDelta(self._item("text", out), text))
        refusal = delta.get("refusal")
        if isinstance(refusal, str) and refusal:
            out.append(RefusalDelta(self._item("text", out), refusal))
        calls = delta.get("tool_calls")
        if isinstance(calls, list):
            for position, call in enumerate(calls):
                if isinstance(call, dict):
                    self._tool_call(call, position, out)

    def _tool_call(self, call: dict[str, Any], position: int, out: list[Delta]) -> None:
        index = call.get("index")
        if type(index) is not int:
            index = position
        function = call.get("function")
        if not isinstance(function, dict):
            function = {}
        call_id = _nonempty(call.get("id"))
        name = _nonempty(function.get("name"))
        args = function.get("arguments")
        if args is not None and not isinstance(args, str):
            args = orjson.dumps(args).decode()
        state = self._tools.get(index)
        if state is not None and call_id and state.call_id and call_id != state.call_id:
            state = None  # a new call reusing the index (servers that send every call as index 0)
        if state is None:
            state = _ToolCall(self._new_key(("tool", index)), call_id, name)
            self._tools[index] = state
        elif not state.started:
            state.call_id = state.call_id or call_id
            state.name = state.name or name
        if state.started:
            # Repeated ids/names on later chunks are ignored; fragments of a finished call are lost.
            if args and state.key in self._open:
                out.append(ToolCallArgsDelta(state.key, args))
            return
        if args:
            state.pending.append(args)
        if state.name is None:
            return  # wait for the name before starting the item
        self._close_current(out)
        state.started = True
        self._open[state.key] = None
        out.append(ToolCallStart(state.key, state.call_id or new_call_id(), state.name))
        if state.pending:
            out.append(ToolCallArgsDelta(state.key, "".join(state.pending)))
            state.pending.clear()

"""Chat Completions front door, streaming: canonical stream deltas -> ``chat.completion.chunk`` SSE frames.

One :class:`ChatStreamEncoder` per streaming request. It is on the hot path (one
:meth:`~ChatStreamEncoder.feed` per upstream delta), so the constant part of every frame is rendered once
in the constructor and each frame is built by concatenating it with the ``orjson`` dump of a small
``delta`` dict.

Frames are ``data: <one-line JSON>\\n\\n`` (chat has no ``event:`` lines). The sequence is: a first chunk with
``{"role": "assistant", "content": ""}`` (sent before the first content, or by :meth:`finish` if there was
none), content chunks, then from :meth:`finish` the chunk with an empty delta and the ``finish_reason``, the
usage chunk (``choices: []``) when ``include_usage``, and ``data: [DONE]``. With ``include_usage`` every
other chunk carries ``"usage": null``, as OpenAI does. The ``tollway`` object goes on the last chunk before
``[DONE]``. :meth:`error` sends ``data: {"error": {...}}`` and ``[DONE]``. Anything after finish/error is
ignored. ``system_fingerprint`` is omitted (see :mod:`tollway.api.chat_response`).
"""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import orjson

from tollway.api.chat_response import finish_reason, usage_json
from tollway.core.errors import GatewayError
from tollway.core.types import (
    Delta,
    ReasoningDelta,
    RefusalDelta,
    TextDelta,
    ToolCallArgsDelta,
    ToolCallStart,
    Usage,
)

DONE = b"data: [DONE]\n\n"
_dumps = orjson.dumps


def _default(value: object) -> orjson.Fragment:
    """Let the ``tollway`` object carry exact ``Decimal`` money."""
    if isinstance(value, Decimal) and value.is_finite():
        return orjson.Fragment(format(value, "f"))
    raise TypeError(f"cannot serialise {type(value).__name__}")


class ChatStreamEncoder:
    __slots__ = (
        "_closed",
        "_delta_close",
        "_delta_open",
        "_head",
        "_include_usage",
        "_role",
        "_started",
        "_tools",
        "_usage_null",
    )

    def __init__(self, completion_id: str, created: int, model: str, include_usage: bool) -> None:
        head = _dumps({"id": completion_id, "object": "chat.completion.chunk", "created": created, "model": model})
        self._head = b"data: " + head[:-1]  # without the closing brace
        self._include_usage = include_usage
        self._usage_null = b',"usage":null' if include_usage else b""
        self._delta_open = self._head + b',"choices":[{"index":0,"delta":'
        self._delta_close = b',"logprobs":null,"finish_reason":null}]' + self._usage_null + b"}\n\n"
        self._role = self._delta_open + b'{"role":"assistant","content":""}' + self._delta_close
        self._started = False
        self._closed = False
        self._tools: dict[Any, int] = {}  # delta key -> tool_calls index

    @property
    def has_tool_calls(self) -> bool:
        return bool(self._tools)

    def _frame(self, delta: bytes) -> bytes:
        if self._started:
            return self._delta_open + delta + self._delta_close
        self._started = True
        return self._role + self._delta_open + delta + self._delta_close

    def feed(self, delta: Delta) -> bytes:
        """Zero or more complete frames for one canonical delta."""
        if self._closed:
            return b""
        if isinstance(delta, TextDelta):
            return self._frame(_dumps({"content": delta.text})) if delta.text else b""
        if isinstance(delta, ToolCallArgsDelta):
            index = self._tools.get(delta.key)
            if index is None or not delta.delta:
                return b""
            return self._frame(_dumps({"tool_calls": [{"index": index, "function": {"arguments": delta.delta}}]}))
        if isinstance(delta, ReasoningDelta):
            return self._frame(_dumps({"reasoning_content": delta.text})) if delta.text else b""
        if isinstance(delta, ToolCallStart):
            index = self._tools.setdefault(delta.key, len(self._tools))
            call = {
                "index": index,
                "id": delta.call_id,
                "type": "function",
                "function": {"name": delta.name, "arguments": ""},
            }
            return self._frame(_dumps({"tool_calls": [call]}))
        if isinstance(delta, RefusalDelta):
            return self._frame(_dumps({"refusal": delta.text})) if delta.text else b""
        # ItemDone, ReasoningState, UsageUpdate, Finish, StreamError: the caller drives finish()/error().
        return b""

    def finish(
        self,
        status: str,
        incomplete_reason: str | None,
        usage: Usage | None,
        cost_usd: orjson.Fragment | None,
        tollway: dict[str, Any] | None,
    ) -> bytes:
        """The finish_reason chunk, the usage chunk (when ``include_usage``) and ``[DONE]``."""
        if self._closed:
            return b""
        self._closed = True
        out = b"" if self._started else self._role
        reason = finish_reason(status, incomplete_reason, bool(self._tools))
        tail = b',"tollway":' + _dumps(tollway, default=_default) if tollway is not None else b""
        out += (
            self._head
            + b',"choices":[{"index":0,"delta":{},"logprobs":null,"finish_reason":"'
            + reason.encode()
            + b'"}]'
            + self._usage_null
            + (b"" if self._include_usage else tail)
            + b"}\n\n"
        )
        if self._include_usage:
            usage_bytes = b"null" if usage is None else _dumps(usage_json(usage, cost_usd))
            out += self._head + b',"choices":[],"usage":' + usage_bytes + tail + b"}\n\n"
        return out + DONE

    def error(self, err: GatewayError) -> bytes:
        """An in-stream error frame in the OpenAI error envelope, then ``[DONE]``."""
        if self._closed:
            return b""
        self._closed = True
        return b"data: " + _dumps(err.to_json()) + b"\n\n" + DONE

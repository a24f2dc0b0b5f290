"""Gemini ``GenerateContentResponse`` chunks -> canonical deltas.

``streamGenerateContent?alt=sse`` sends one ``GenerateContentResponse`` per SSE ``data:`` line; a
non-streaming answer is the same object once, and :mod:`tollway.providers.gemini` parses it with this
parser as a one-chunk stream, so both paths yield identical items.

* ``candidates[0].content.parts``: ``thought: true`` parts are reasoning summary text (one reasoning
  item); a run of text parts is one assistant message; a ``functionCall`` part (it always arrives whole)
  is one function call: :class:`ToolCallStart` + one :class:`ToolCallArgsDelta` + :class:`ItemDone`.
  Other part kinds (code execution, inline data) have no canonical form and are skipped.
* Call ids: Gemini 3 sends ``functionCall.id``; without one the call is named deterministically by
  :func:`synth_call_id` (see :mod:`tollway.providers.gemini_request` for how it goes back).
* Thought signatures (``thoughtSignature`` on any part) are collected as ``[kind, ref, signature]``
  (``thought``; ``text`` + digest of the run's text; ``call`` + call id; ``end`` for a signature on a part
  that produced no item, such as the empty text part a stream may end with, which goes back as such a part
  at the end of the turn) and emitted at the end as the reasoning item's opaque state
  (``reasoning_state.wrap("gemini", {"sigs": [...]})``). The reasoning item is the first output item when
  the answer has thought summaries (they stream first) and the last one otherwise: signatures are only known
  once their parts have arrived. Without thoughts its summary is one empty ``summary_text`` part.
* ``finishReason``: see :data:`FINISH_REASONS`; ``promptFeedback.blockReason`` (a blocked prompt) is
  ``incomplete`` / ``content_filter``. ``MALFORMED_FUNCTION_CALL``, ``UNEXPECTED_TOOL_CALL`` and
  ``TOO_MANY_TOOL_CALLS`` end the response as failed (a stream error; a 502 for a whole answer) with
  Gemini's ``finishMessage``: there is no usable answer, and retrying is the remedy.
* ``usageMetadata`` is cumulative on every chunk: input = ``promptTokenCount`` (which includes
  ``cachedContentTokenCount``) + ``toolUsePromptTokenCount``; output = ``candidatesTokenCount`` +
  ``thoughtsTokenCount`` (Gemini counts thoughts outside the candidates); reasoning = ``thoughtsTokenCount``;
  cached = ``cachedContentTokenCount``.
* An error object in the stream (``{"error": {...}}``) is a :class:`StreamError`; a stream that ends
  without a ``finishReason`` ends in ``upstream_stream_truncated``.
"""

from __future__ import annotations

import hashlib
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
from tollway.providers.gemini_request import PROVIDER, SYNTH_CALL_PREFIX, text_digest

REASONING_KEY = "reasoning"
_CONTENT_FILTER: tuple[ResponseStatus, str | None] = ("incomplete", "content_filter")
# finishReason -> (status, incomplete_reason); absent or unknown reasons complete.
FINISH_REASONS: dict[str, tuple[ResponseStatus, str | None]] = {
    "STOP": ("completed", None),
    "FINISH_REASON_UNSPECIFIED": ("completed", None),
    "MAX_TOKENS": ("incomplete", "max_output_tokens"),
    "SAFETY": _CONTENT_FILTER,
    "RECITATION": _CONTENT_FILTER,
    "LANGUAGE": _CONTENT_FILTER,
    "BLOCKLIST": _CONTENT_FILTER,
    "PROHIBITED_CONTENT": _CONTENT_FILTER,
    "SPII": _CONTENT_FILTER,
    "IMAGE_SAFETY": _CONTENT_FILTER,
    "IMAGE_PROHIBITED_CONTENT": _CONTENT_FILTER,
    "IMAGE_RECITATION": _CONTENT_FILTER,
    "OTHER": _CONTENT_FILTER,
    "IMAGE_OTHER": _CONTENT_FILTER,
    "NO_IMAGE": _CONTENT_FILTER,
}
_COMPLETED: tuple[ResponseStatus, str | None] = ("completed", None)
# finishReasons that leave no usable answer -> canned message when Gemini sends no finishMessage.
FAILED_REASONS: dict[str, str] = {
    "MALFORMED_FUNCTION_CALL": "the model produced a malformed function call",
    "UNEXPECTED_TOOL_CALL": "the model called a tool although no tools were enabled",
    "TOO_MANY_TOOL_CALLS": "the model called too many tools in a row",
}
# google.rpc status -> the error envelope type of tollway
ERROR_TYPES: dict[str, str] = {
    "INVALID_ARGUMENT": "invalid_request_error",
    "FAILED_PRECONDITION": "invalid_request_error",
    "OUT_OF_RANGE": "invalid_request_error",
    "UNAUTHENTICATED": "authentication_error",
    "PERMISSION_DENIED": "permission_error",
    "NOT_FOUND": "not_found_error",
    "RESOURCE_EXHAUSTED": "rate_limit_error",
    "UNAVAILABLE": "overloaded_error",
}


def synth_call_id(response_id: str, n: int, name: str, args: Any) -> str:
    """A deterministic id for the ``n``-th function call of a response when Gemini gave none."""
    seed = f"{response_id}\x00{n}\x00{name}\x00".encode() + orjson.dumps(args, option=orjson.OPT_SORT_KEYS)
    return SYNTH_CALL_PREFIX + hashlib.sha256(seed).hexdigest()[:24]


def map_finish_reason(reason: str | None) -> tuple[ResponseStatus, str | None]:
    if reason is None:
        return _COMPLETED
    return FINISH_REASONS.get(reason, _COMPLETED)


def usage_update(raw: Any) -> UsageUpdate | None:
    if not isinstance(raw, dict):
        return None
    prompt = raw.get("promptTokenCount")
    tool_prompt = raw.get("toolUsePromptTokenCount") or 0
    candidates = raw.get("candidatesTokenCount")
    thoughts = raw.get("thoughtsTokenCount")
    cached = raw.get("cachedContentTokenCount")
    output: int | None = None
    if isinstance(candidates, int) or isinstance(thoughts, int):
        output = (candidates if isinstance(candidates, int) else 0) + (thoughts if isinstance(thoughts, int) else 0)
    return UsageUpdate(
        input_tokens=prompt + tool_prompt if isinstance(prompt, int) and isinstance(tool_prompt, int) else None,
        output_tokens=output,
        cached_tokens=cached if isinstance(cached, int) else (0 if isinstance(prompt, int) else None),
        reasoning_tokens=thoughts if isinstance(thoughts, int) else (0 if output is not None else None),
    )


def stream_error(error: Any) -> StreamError:
    """An in-stream ``{"error": {...}}`` object -> :class:`StreamError`."""
    if not isinstance(error, dict):
        return StreamError("gemini: stream error", code="upstream_error")
    status = error.get("status")
    message = error.get("message")
    return StreamError(
        message=message if isinstance(message, str) and message else "gemini: stream error",
        code=status if isinstance(status, str) else None,
        type=ERROR_TYPES.get(status, "server_error") if isinstance(status, str) else "server_error",
    )


class GeminiStreamParser:
    """One response's chunks -> deltas. Keys: ``REASONING_KEY`` for the reasoning item, ``("t", n)`` for the
    n-th text run, ``("c", n)`` for the n-th function call."""

    __slots__ = (
        "_calls",
        "_done",
        "_model",
        "_reasoning",
        "_response_id",
        "_run_key",
        "_run_sig",
        "_run_text",
        "_runs",
        "_sigs",
    )

    def __init__(self) -> None:
        self._sigs: list[list[Any]] = []
        self._reasoning = False  # the reasoning item was opened by thought text
        self._run_key: tuple[str, int] | None = None
        self._run_text: list[str] = []
        self._run_sig: str | None = None
        self._runs = 0
        self._calls = 0
        self._response_id = ""
        self._model: str | None = None
        self._done = False

    def feed(self, event: str | None, data: bytes) -> list[Delta]:
        if self._done:
            return self._late(data)
        try:
            chunk = orjson.loads(data)
        except orjson.JSONDecodeError:
            chunk = None
        if isinstance(chunk, list) and len(chunk) == 1:  # a JSON-array framed chunk
            chunk = chunk[0]
        if not isinstance(chunk, dict):
            self._done = True
            return [StreamError("gemini: malformed stream event", code="upstream_bad_event")]
        if "error" in chunk:
            self._done = True
            return [stream_error(chunk["error"])]
        return self.chunk(chunk)

    def chunk(self, chunk: JSON) -> list[Delta]:
        """One ``GenerateContentResponse`` object."""
        rid = chunk.get("responseId")
        if isinstance(rid, str) and not self._response_id:
            self._response_id = rid
        model = chunk.get("modelVersion")
        if isinstance(model, str):
            self._model = model
        out: list[Delta] = []
        candidates = chunk.get("candidates")
        candidate = candidates[0] if isinstance(candidates, list) and candidates else None
        finish: str | None = None
        message: str | None = None
        if isinstance(candidate, dict):
            content = candidate.get("content")
            parts = content.get("parts") if isinstance(content, dict) else None
            for part in parts if isinstance(parts, list) else ():
                if isinstance(part, dict):
                    self._part(part, out)
            reason = candidate.get("finishReason")
            finish = reason if isinstance(reason, str) else None
            text = candidate.get("finishMessage")
            message = text if isinstance(text, str) and text else None
        feedback = chunk.get("promptFeedback")
        blocked = feedback.get("blockReason") if isinstance(feedback, dict) else None
        usage = usage_update(chunk.get("usageMetadata"))
        if usage is not None:
            out.append(usage)
        if finish is not None or blocked:
            self._finish(finish, blocked, message, out)
        return out

    def close(self) -> list[Delta]:
        if self._done:
            return []
        self._done = True
        return [StreamError("stream ended without a finishReason", code="upstream_stream_truncated")]

    def end(self) -> list[Delta]:
        """Finish a whole (non-streamed) answer that carried no ``finishReason``: it is complete."""
        if self._done:
            return []
        out: list[Delta] = []
        self._finish("STOP", None, None, out)
        return out

    # -- parts ----------------------------------------------------------------------------------

    def _part(self, part: JSON, out: list[Delta]) -> None:
        sig = part.get("thoughtSignature")
        if not isinstance(sig, str) or not sig:
            sig = None
        text = part.get("text")
        if part.get("thought") is True:
            if isinstance(text, str) and text:
                self._reasoning = True
                out.append(ReasoningDelta(REASONING_KEY, text, summary=True))
            if sig is not None:
                self._sigs.append(["thought", None, sig])
            return
        if isinstance(text, str):
            if not text:  # an empty part carrying a signature (streams end this way): kept as its own part
                if sig is not None:
                    self._sigs.append(["end", None, sig])
                return
            key = self._run_key
            if key is None:
                key = self._run_key = ("t", self._runs)
                self._runs += 1
            self._run_text.append(text)
            out.append(TextDelta(key, text))
            if sig is not None and self._run_sig is None:
                self._run_sig = sig
            return
        self._close_run(out)
        call = part.get("functionCall")
        if isinstance(call, dict):
            name = call.get("name")
            name = name if isinstance(name, str) else ""
            args = call.get("args")
            if not isinstance(args, dict):
                args = {}
            call_id = call.get("id")
            if not isinstance(call_id, str) or not call_id:
                call_id = synth_call_id(self._response_id, self._calls, name, args)
            key = ("c", self._calls)
            self._calls += 1
            out.append(ToolCallStart(key, call_id, name))
            out.append(ToolCallArgsDelta(key, orjson.dumps(args).decode()))
            out.append(ItemDone(key))
            if sig is not None:
                self._sigs.append(["call", call_id, sig])
        elif sig is not None:
            self._sigs.append(["end", None, sig])

    def _close_run(self, out: list[Delta]) -> None:
        key = self._run_key
        if key is None:
            return
        text = "".join(self._run_text)
        sig = self._run_sig
        self._run_key, self._run_text, self._run_sig = None, [], None
        if sig is not None:
            self._sigs.append(["text", text_digest(text), sig] if text else ["end", None, sig])
        if text:
            out.append(ItemDone(key))

    def _finish(self, reason: str | None, blocked: Any, message: str | None, out: list[Delta]) -> None:
        self._done = True
        self._close_run(out)
        if self._reasoning or self._sigs:
            out.append(ReasoningState(REASONING_KEY, reasoning_state.wrap(PROVIDER, {"sigs": self._sigs})))
            out.append(ItemDone(REASONING_KEY))
        if reason in FAILED_REASONS:
            detail = message or FAILED_REASONS[reason]
            out.append(StreamError(f"{detail} (finishReason {reason})", code=f"upstream_{reason.lower()}"))
            return
        status, incomplete = _CONTENT_FILTER if blocked else map_finish_reason(reason)
        out.append(Finish(status, incomplete, upstream_model=self._model, upstream_id=self._response_id or None))

    def _late(self, data: bytes) -> list[Delta]:
        """A chunk after the finish: only its usage counts."""
        try:
            chunk = orjson.loads(data)
        except orjson.JSONDecodeError:
            return []
        usage = usage_update(chunk.get("usageMetadata")) if isinstance(chunk, dict) else None
        return [usage] if usage is not None else []

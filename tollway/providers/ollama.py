"""Ollama native chat adapter (``POST {base_url}/api/chat``, NDJSON streaming; not the OpenAI shim).

``base_url`` is the server root (``http://127.0.0.1:11434``); no key is needed, but when one is configured
(Ollama's cloud, or a proxy in front of a server) it is sent as ``authorization: Bearer``. The request body is
built by :mod:`tollway.providers.ollama_request` (see its docstring for the mapping decisions). This module
holds the adapter, the response parser and the stream parser:

* ``message.thinking`` becomes a reasoning item with ``reasoning_text`` (Ollama has no opaque reasoning state,
  so there is no ``encrypted_content``); ``message.content`` an assistant message; ``message.tool_calls``
  function calls whose ``arguments`` (an object on the wire) are serialised compactly.
* Call ids: Ollama's documented API has none (newer servers add ``id`` to tool calls; it is used when
  present). Otherwise the id is ``call_`` + a digest of the response's ``created_at``, the call's position
  and its name and arguments: the same upstream answer always gets the same ids. Results go back by tool
  name (see the request module).
* ``done_reason``: ``length`` -> incomplete (``max_output_tokens``); ``stop``, ``load``/``unload`` (a model
  load or unload with nothing generated), a missing or an unknown value -> completed. Ollama has no content
  filter, so ``content_filter`` never occurs.
* Usage: ``prompt_eval_count`` -> input, ``eval_count`` -> output (thinking tokens included; Ollama does not
  count them separately, so reasoning tokens stay 0), ``prompt_eval_cached_count`` (sent by newer servers)
  -> cached input tokens.
* Streams: one JSON object per line; ``message`` carries partial ``thinking``/``content`` and whole tool
  calls; the line with ``done: true`` carries ``done_reason`` and the counts. A ``{"error": ...}`` line is
  the provider's in-stream error. A stream that ends without the ``done`` line is truncated (an error). With
  ``done_reason: "length"`` the item being written is left open, so it ends ``incomplete`` as in a JSON answer.
"""

from __future__ import annotations

import hashlib
from typing import Any

import orjson

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
    ResponseStatus,
    StreamError,
    TextDelta,
    ToolCallArgsDelta,
    ToolCallStart,
    Usage,
    UsageUpdate,
)
from tollway.providers.base import ProviderSettings, StreamParser, UpstreamRequest
from tollway.providers.ollama_request import PROVIDER, build_body

__all__ = ["DONE_REASONS", "PROVIDER", "OllamaAdapter", "OllamaStreamParser", "call_id", "map_done_reason"]

PATH = "/api/chat"
# done_reason -> (status, incomplete_reason); anything else completes
DONE_REASONS: dict[str, tuple[ResponseStatus, str | None]] = {
    "stop": ("completed", None),
    "length": ("incomplete", "max_output_tokens"),
    "load": ("completed", None),
    "unload": ("completed", None),
}
_COMPLETED: tuple[ResponseStatus, str | None] = ("completed", None)
_NO_ARGS = "{}"
_MAX_ERROR_TEXT = 2000


def map_done_reason(done_reason: Any) -> tuple[ResponseStatus, str | None]:
    if isinstance(done_reason, str):
        return DONE_REASONS.get(done_reason, _COMPLETED)
    return _COMPLETED


def call_id(created_at: str, index: int, name: str, arguments: str) -> str:
    """The deterministic id of the ``index``-th tool call of the answer created at ``created_at``."""
    seed = f"{created_at}\x00{index}\x00{name}\x00{arguments}".encode()
    return "call_" + hashlib.sha256(seed).hexdigest()[:24]


def _str(value: Any) -> str | None:
    return value if isinstance(value, str) and value else None


def _count(value: Any) -> int | None:
    return value if type(value) is int and value >= 0 else None


def _arguments(function: JSON) -> str:
    args = function.get("arguments")
    if isinstance(args, str):  # servers in front of Ollama may already send a string
        return args or _NO_ARGS
    return _NO_ARGS if args is None else orjson.dumps(args).decode()


def _call(raw: Any, created_at: str, index: int) -> tuple[str, str, str] | None:
    """A wire tool call -> (call_id, name, arguments), or None when it names no function."""
    if not isinstance(raw, dict):
        return None
    function = raw.get("function")
    if not isinstance(function, dict):
        return None
    name = _str(function.get("name"))
    if name is None:
        return None
    arguments = _arguments(function)
    return _str(raw.get("id")) or call_id(created_at, index, name, arguments), name, arguments


def parse_usage(data: JSON) -> Usage | None:
    prompt = _count(data.get("prompt_eval_count"))
    output = _count(data.get("eval_count"))
    cached = _count(data.get("prompt_eval_cached_count"))
    if prompt is None and output is None:
        return None
    total = prompt or 0
    return Usage(input_tokens=total, output_tokens=output or 0, cached_tokens=min(cached or 0, total))


def _error_text(body: bytes) -> str:
    text = body.decode("utf-8", "replace").strip()
    return text[:_MAX_ERROR_TEXT] if text else "empty error body"


def _error_fields(data: Any) -> tuple[str, str | None] | None:
    """``{"error": "..."}`` (Ollama) or ``{"error": {"message", "type"|"code"}}`` (proxies)."""
    if not isinstance(data, dict):
        return None
    error = data.get("error")
    if isinstance(error, str) and error:
        return error, None
    if isinstance(error, dict):
        message = _str(error.get("message"))
        if message is not None:
            return message, _str(error.get("code")) or _str(error.get("type"))
    return None


def convert_message(message: JSON, created_at: str, status: ResponseStatus) -> list[Item]:
    """An Ollama ``message`` -> canonical output items: reasoning, message, function calls."""
    items: list[Item] = []
    thinking = _str(message.get("thinking"))
    if thinking is not None:
        items.append({"type": "reasoning", "summary": [], "content": [{"type": "reasoning_text", "text": thinking}]})
    content = _str(message.get("content"))
    if content is not None:
        items.append(
            {
                "type": "message",
                "role": "assistant",
                "status": "incomplete" if status == "incomplete" else "completed",
                "content": [{"type": "output_text", "text": content, "annotations": []}],
            }
        )
    calls = message.get("tool_calls")
    index = 0
    for raw in calls if isinstance(calls, list) else ():
        call = _call(raw, created_at, index)
        if call is None:
            continue
        index += 1
        items.append(
            {"type": "function_call", "call_id": call[0], "name": call[1], "arguments": call[2], "status": "completed"}
        )
    return items


class OllamaAdapter:
    kind = "ollama"

    def build_request(
        self, req: CanonicalRequest, model: str, settings: ProviderSettings, fidelity: Fidelity
    ) -> UpstreamRequest:
        body = build_body(req, model, fidelity)
        headers = {"content-type": "application/json"}
        if settings.api_key:
            headers["authorization"] = f"Bearer {settings.api_key}"
        if req.stream:
            headers["accept"] = "application/x-ndjson"
        headers.update(settings.headers)
        return UpstreamRequest(
            method="POST",
            url=settings.base_url.rstrip("/") + PATH,
            headers=headers,
            body=orjson.dumps(body),
            stream=req.stream,
            stream_format="ndjson",
        )

    def parse_response(self, body: bytes) -> CanonicalResponse:
        try:
            data = orjson.loads(body)
        except orjson.JSONDecodeError:
            data = None
        if not isinstance(data, dict):
            raise GatewayError(
                502,
                "ollama: the provider returned a malformed response body.",
                type="server_error",
                code="upstream_bad_response",
            )
        message = data.get("message")
        if not isinstance(message, dict):
            found = _error_fields(data)
            if found is not None:
                raise GatewayError(502, f"ollama: {found[0]}", type="server_error", code=found[1] or "upstream_error")
            raise GatewayError(
                502,
                "ollama: the provider's response has no message.",
                type="server_error",
                code="upstream_bad_response",
            )
        status, reason = map_done_reason(data.get("done_reason"))
        return CanonicalResponse(
            output=convert_message(message, str(data.get("created_at") or ""), status),
            status=status,
            incomplete_reason=reason,
            usage=parse_usage(data),
            upstream_model=_str(data.get("model")),
            upstream_id=None,  # Ollama answers carry no id
        )

    def stream_parser(self, req: CanonicalRequest) -> StreamParser:
        return OllamaStreamParser()

    def error_message(self, body: bytes) -> tuple[str, str | None]:
        try:
            data = orjson.loads(body)
        except orjson.JSONDecodeError:
            return _error_text(body), None
        return _error_fields(data) or (_error_text(body), None)


class OllamaStreamParser:
    """NDJSON lines -> canonical deltas.

    Every item gets a fresh integer key in order of appearance. Reasoning and text are sequential: when one
    starts, the open one is finished. A tool call arrives whole, so it is started, given its arguments in one
    delta and finished at once (after finishing the open reasoning/text item).
    """

    __slots__ = ("_current", "_done", "_kind", "_model", "_next_key", "_tool_calls")

    def __init__(self) -> None:
        self._current: int | None = None  # key of the open reasoning/text item
        self._kind: str | None = None  # its kind: "reasoning" or "text"
        self._next_key = 0
        self._tool_calls = 0
        self._model: str | None = None
        self._done = False

    def feed(self, event: str | None, data: bytes) -> list[Delta]:
        if self._done:
            return []
        try:
            chunk = orjson.loads(data)
        except orjson.JSONDecodeError:
            chunk = None
        if not isinstance(chunk, dict):
            self._done = True
            return [StreamError(f"malformed stream line: {data[:200]!r}", code="upstream_bad_chunk")]
        if "error" in chunk and not isinstance(chunk.get("message"), dict):
            self._done = True
            text, code = _error_fields(chunk) or ("stream error", None)
            return [StreamError(text, code=code)]
        if self._model is None:
            self._model = _str(chunk.get("model"))
        out: list[Delta] = []
        message = chunk.get("message")
        if isinstance(message, dict):
            self._message(message, str(chunk.get("created_at") or ""), out)
        if chunk.get("done") is True:
            self._end(chunk, out)
        return out

    def close(self) -> list[Delta]:
        if self._done:
            return []
        self._done = True
        return [StreamError("stream ended before its final (done) line", code="upstream_stream_truncated")]

    def _key(self) -> int:
        key = self._next_key
        self._next_key += 1
        return key

    def _finish_current(self, out: list[Delta]) -> None:
        if self._current is not None:
            out.append(ItemDone(self._current))
            self._current = None
            self._kind = None

    def _item(self, kind: str, out: list[Delta]) -> int:
        if self._current is not None and self._kind == kind:
            return self._current
        self._finish_current(out)
        key = self._current = self._key()
        self._kind = kind
        return key

    def _message(self, message: JSON, created_at: str, out: list[Delta]) -> None:
        thinking = _str(message.get("thinking"))
        if thinking is not None:
            out.append(ReasoningDelta(self._item("reasoning", out), thinking))
        content = _str(message.get("content"))
        if content is not None:
            out.append(TextDelta(self._item("text", out), content))
        calls = message.get("tool_calls")
        for raw in calls if isinstance(calls, list) else ():
            call = _call(raw, created_at, self._tool_calls)
            if call is None:
                continue
            self._tool_calls += 1
            self._finish_current(out)
            key = self._key()
            out.append(ToolCallStart(key, call[0], call[1]))
            out.append(ToolCallArgsDelta(key, call[2]))
            out.append(ItemDone(key))

    def _end(self, chunk: JSON, out: list[Delta]) -> None:
        self._done = True
        status, reason = map_done_reason(chunk.get("done_reason"))
        if status == "completed":
            self._finish_current(out)
        # else the text (or reasoning) that was cut short stays open and ends "incomplete", as in a JSON answer
        usage = parse_usage(chunk)
        if usage is not None:
            out.append(
                UsageUpdate(
                    input_tokens=usage.input_tokens,
                    output_tokens=usage.output_tokens,
                    cached_tokens=usage.cached_tokens,
                )
            )
        out.append(Finish(status=status, incomplete_reason=reason, upstream_model=self._model))

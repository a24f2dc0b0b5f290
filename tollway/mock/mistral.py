"""``POST /mistral/v1/chat/completions`` in Mistral's chat completions wire format (a route of its own, so the
OpenAI chat route stays OpenAI-exact).

Request checks, as the real API makes them: unknown top-level fields are refused ("Extra inputs are not
permitted"), roles are ``system``/``user``/``assistant``/``tool``, tool call ids must be 9 characters
``[a-zA-Z0-9]``, every tool result must answer a call of the assistant message before it (and every call
must be answered before the conversation goes on), function tools need ``parameters``, and the last message
must be a user or tool message or an assistant message with ``prefix: true``. ``thinking`` chunks sent back
in assistant messages must carry exactly the reasoning text this mock produced for that turn
(``"thinking about: <the user text before it>"``) and no signature (this mock never signs): that is how the
reasoning round trip is verified.

Answers: ``magistral-*`` models always reason, other models when ``reasoning_effort`` is set and not
``none``; reasoning comes first as ``thinking`` content chunks (the message content is then a list of
chunks). Tool calls carry 9-character ids and, as Mistral does, arrive complete in a single stream delta.
Usage has ``prompt_tokens_details.cached_tokens`` (half the input with ``prompt_cache_key``) and no reasoning
token count. Streams end with a chunk carrying ``finish_reason`` and ``usage``, then ``data: [DONE]``.
Errors use Mistral's bodies: ``{"object": "error", ...}`` (validation errors: 422 with
``message.detail``), ``{"message": "Unauthorized", ...}`` for 401/429 and ``{"detail": ...}`` for 403.
"""

from __future__ import annotations

import re
import time
import uuid
from typing import Any

import orjson

from tollway.mock.scenario import Ask, Controls, RequestInvalid, Script, count_words, strip_directives
from tollway.mock.wire import ErrorKind, StreamPlan, Wire

_DONE = b"data: [DONE]\n\n"
_CALL_ID = re.compile(r"[A-Za-z0-9]{9}")
_FIELDS = frozenset(
    {
        "model",
        "temperature",
        "top_p",
        "max_tokens",
        "stream",
        "stop",
        "random_seed",
        "metadata",
        "messages",
        "response_format",
        "tools",
        "tool_choice",
        "presence_penalty",
        "frequency_penalty",
        "n",
        "prediction",
        "parallel_tool_calls",
        "reasoning_effort",
        "prompt_mode",
        "guardrails",
        "prompt_cache_key",
        "service_tier",
        "safe_prompt",
    }
)
_ROLES = frozenset({"system", "user", "assistant", "tool"})
_CHUNK_TYPES = frozenset({"text", "image_url", "document_url", "reference", "file", "thinking", "input_audio"})
_TOOL_CHOICES = frozenset({"auto", "none", "any", "required"})
_EFFORTS = frozenset({"none", "minimal", "low", "medium", "high", "xhigh"})
_REASONING_PREFIX = "thinking about: "


def _text(content: Any) -> str:
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return " ".join(
            c["text"]
            for c in content
            if isinstance(c, dict) and c.get("type") == "text" and isinstance(c.get("text"), str)
        )
    return ""


def _thinking_text(chunk: dict[str, Any]) -> str:
    return "".join(
        t["text"]
        for t in chunk.get("thinking") or ()
        if isinstance(t, dict) and t.get("type") == "text" and isinstance(t.get("text"), str)
    )


def _content_chunks(content: Any, p: str) -> list[dict[str, Any]]:
    if content is None or isinstance(content, str):
        return []
    if not isinstance(content, list):
        raise RequestInvalid("Input should be a valid string or list", f"{p}.content")
    for j, chunk in enumerate(content):
        if not isinstance(chunk, dict) or chunk.get("type", "text") not in _CHUNK_TYPES:
            raise RequestInvalid("Input tag does not match any of the expected tags", f"{p}.content.{j}")
    return content


class _Conversation:
    """Walks ``messages`` once: counts input words, checks tool call pairing and thinking chunks."""

    def __init__(self) -> None:
        self.words = 0
        self.user_text = ""
        self.pending: set[str] = set()  # calls of the last assistant message not yet answered

    def message(self, i: int, message: Any, last: bool) -> None:
        p = f"messages.{i}"
        if not isinstance(message, dict):
            raise RequestInvalid("Input should be a valid dictionary", p)
        role = message.get("role")
        if role not in _ROLES:
            raise RequestInvalid(
                "Input tag does not match any of the expected tags: 'system', 'user', 'assistant', 'tool'", f"{p}.role"
            )
        if role != "tool" and self.pending:
            raise RequestInvalid("Not the same number of function calls and responses", "messages")
        content = message.get("content")
        chunks = _content_chunks(content, p)
        self.words += count_words(_text(content))
        if message.get("prefix") is True and (role != "assistant" or not last):
            raise RequestInvalid("Only the last message can be an assistant message with prefix True", f"{p}.prefix")
        if role == "user":
            self.user_text = _text(content)
        elif role == "assistant":
            self._assistant(p, message, chunks)
        elif role == "tool":
            call_id = message.get("tool_call_id")
            if not isinstance(call_id, str) or not _CALL_ID.fullmatch(call_id):
                raise RequestInvalid(
                    f"Tool call id was {call_id} but must be a-z, A-Z, 0-9, with a length of 9.", f"{p}.tool_call_id"
                )
            if call_id not in self.pending:
                raise RequestInvalid(f"Tool message answers no pending tool call: {call_id!r}", f"{p}.tool_call_id")
            self.pending.discard(call_id)

    def _assistant(self, p: str, message: dict[str, Any], chunks: list[dict[str, Any]]) -> None:
        expected = _REASONING_PREFIX + strip_directives(self.user_text, Controls())
        for j, chunk in enumerate(chunks):
            if chunk.get("type") != "thinking":
                continue
            if chunk.get("signature") is not None:
                raise RequestInvalid("Invalid thinking signature", f"{p}.content.{j}.signature")
            text = _thinking_text(chunk)
            if text != expected:
                raise RequestInvalid(
                    f"Thinking chunk does not match the reasoning produced for this turn: {text[:80]!r}",
                    f"{p}.content.{j}.thinking",
                )
            self.words += count_words(text)
        calls = message.get("tool_calls")
        for k, call in enumerate(calls if isinstance(calls, list) else ()):
            call_id = call.get("id") if isinstance(call, dict) else None
            if not isinstance(call_id, str) or not _CALL_ID.fullmatch(call_id):
                raise RequestInvalid(
                    f"Tool call id was {call_id} but must be a-z, A-Z, 0-9, with a length of 9.",
                    f"{p}.tool_calls.{k}.id",
                )
            function = call.get("function")
            arguments = function.get("arguments") if isinstance(function, dict) else None
            if isinstance(arguments, dict):
                arguments = orjson.dumps(arguments).decode()
            if isinstance(arguments, str):
                self.words += count_words(arguments)
            self.pending.add(call_id)


def _tool_names(data: dict[str, Any]) -> list[str]:
    names: list[str] = []
    for k, tool in enumerate(data.get("tools") or ()):
        if not isinstance(tool, dict) or tool.get("type", "function") != "function":
            continue
        function = tool.get("function")
        if not isinstance(function, dict) or not isinstance(function.get("name"), str):
            raise RequestInvalid("Field required", f"tools.{k}.function.name")
        if not isinstance(function.get("parameters"), dict):
            raise RequestInvalid("Field required", f"tools.{k}.function.parameters")
        names.append(function["name"])
    choice = data.get("tool_choice")
    if choice is None or isinstance(choice, str):
        if choice is not None and choice not in _TOOL_CHOICES:
            raise RequestInvalid("Input should be 'auto', 'none', 'any' or 'required'", "tool_choice")
        return [] if choice == "none" else names
    function = choice.get("function") if isinstance(choice, dict) else None
    name = function.get("name") if isinstance(function, dict) else None
    if name not in names:
        raise RequestInvalid(f"Tool choice names a function that is not in tools: {name!r}", "tool_choice")
    return [name]


def parse(data: dict[str, Any]) -> Ask:
    for key in data:
        if key not in _FIELDS:
            raise RequestInvalid("Extra inputs are not permitted", key)
    model = data.get("model")
    if not isinstance(model, str) or not model:
        raise RequestInvalid("Field required", "model")
    messages = data.get("messages")
    if not isinstance(messages, list) or not messages:
        raise RequestInvalid("Field required", "messages")
    convo = _Conversation()
    for i, message in enumerate(messages):
        convo.message(i, message, i == len(messages) - 1)
    last = messages[-1]
    if last.get("role") == "assistant" and last.get("prefix") is not True:
        raise RequestInvalid(
            "Expected last role User or Tool (or Assistant with prefix True) for serving but got assistant", "messages"
        )

    tool_outputs: list[str] | None = None
    if last.get("role") == "tool":
        trailing: list[str] = []
        for message in reversed(messages):
            if message.get("role") != "tool":
                break
            trailing.append(_text(message.get("content")))
        tool_outputs = trailing[::-1]

    temperature = data.get("temperature")
    if temperature is not None and (not isinstance(temperature, int | float) or not 0 <= temperature <= 1.5):
        raise RequestInvalid("Input should be less than or equal to 1.5", "temperature")
    effort = data.get("reasoning_effort")
    if effort is not None and effort not in _EFFORTS:
        raise RequestInvalid(f"Input should be one of {sorted(_EFFORTS)}", "reasoning_effort")
    fmt = data.get("response_format")
    if isinstance(fmt, dict) and fmt.get("type") == "json_schema":
        schema = fmt.get("json_schema")
        if not isinstance(schema, dict) or not isinstance(schema.get("name"), str) or "schema" not in schema:
            raise RequestInvalid("Field required", "response_format.json_schema")
    max_tokens = data.get("max_tokens")
    cache_key = data.get("prompt_cache_key")
    return Ask(
        model=model,
        user_text=convo.user_text,
        tool_outputs=tool_outputs,
        tools=_tool_names(data),
        parallel=data.get("parallel_tool_calls") is not False,
        reasoning=model.startswith("magistral") or (effort is not None and effort != "none"),
        json_output=isinstance(fmt, dict) and fmt.get("type") in ("json_schema", "json_object"),
        max_tokens=max_tokens if type(max_tokens) is int else None,
        input_words=convo.words,
        cache=isinstance(cache_key, str) and bool(cache_key),
        stream=data.get("stream") is True,
    )


# ---------------------------------------------------------------------------------------------------
# answers


def _usage(script: Script) -> dict[str, Any]:
    return {
        "prompt_tokens": script.input_tokens,
        "completion_tokens": script.output_tokens,
        "total_tokens": script.input_tokens + script.output_tokens,
        "prompt_tokens_details": {"cached_tokens": script.cached_tokens},
    }


def _finish_reason(script: Script) -> str:
    if script.incomplete:
        return "length"
    return "tool_calls" if script.tool_calls else "stop"


def _thinking(text: str) -> dict[str, Any]:
    return {"type": "thinking", "thinking": [{"type": "text", "text": text}]}


def _calls(script: Script) -> list[dict[str, Any]]:
    return [
        {"id": call.digest[:9], "function": {"name": call.name, "arguments": call.arguments}, "index": i}
        for i, call in enumerate(script.tool_calls)
    ]


def render_json(script: Script, data: dict[str, Any]) -> bytes:
    content: Any = script.text or ""
    if script.reasoning is not None:
        content = [_thinking(script.reasoning)]
        if script.text:
            content.append({"type": "text", "text": script.text})
    message = {"role": "assistant", "content": content, "tool_calls": _calls(script) or None}
    body = {
        "id": uuid.uuid4().hex,
        "object": "chat.completion",
        "created": int(time.time()),
        "model": script.model,
        "choices": [{"index": 0, "message": message, "finish_reason": _finish_reason(script)}],
        "usage": _usage(script),
    }
    return orjson.dumps(body)


def render_stream(script: Script, data: dict[str, Any]) -> StreamPlan:
    head = orjson.dumps(
        {"id": uuid.uuid4().hex, "object": "chat.completion.chunk", "created": int(time.time()), "model": script.model}
    )[:-1]
    start = b"data: " + head + b',"choices":[{"index":0,"delta":'
    end = b',"finish_reason":null}]}\n\n'
    frames: list[bytes] = []
    deltas: list[int] = []

    def add(delta: dict[str, Any]) -> None:
        deltas.append(len(frames))
        frames.append(start + orjson.dumps(delta) + end)

    frames.append(start + b'{"role":"assistant","content":""}' + end)
    for piece in script.reasoning_pieces:
        add({"content": [_thinking(piece)]})
    if script.tool_calls:
        add({"tool_calls": _calls(script)})
    for piece in script.text_pieces:
        add({"content": piece})
    finish = b',"finish_reason":"' + _finish_reason(script).encode() + b'"}],"usage":'
    frames.append(start + b'{"content":""}' + finish + orjson.dumps(_usage(script)) + b"}\n\n")
    frames.append(_DONE)
    return StreamPlan(frames, deltas)


# ---------------------------------------------------------------------------------------------------
# errors


def _object_error(message: Any, type_: str, param: str | None = None, code: str | None = None) -> bytes:
    return orjson.dumps({"object": "error", "message": message, "type": type_, "param": param, "code": code})


def error(kind: ErrorKind, message: str | None, param: str | None, code: str | None) -> tuple[int, bytes]:
    if kind == "invalid":
        if message is None:
            text = f"Invalid value for '{param}' (mock fault)."
            return 400, _object_error(text, "invalid_request_error", param, code)
        loc: list[Any] = ["body", *(param.split(".") if param else [])]
        detail = [{"type": "value_error", "loc": loc, "msg": message, "input": None}]
        return 422, _object_error({"detail": detail}, "invalid_request_message_error", None, code)
    if kind == "auth":
        return 401, orjson.dumps({"message": "Unauthorized", "request_id": uuid.uuid4().hex})
    if kind == "forbidden":
        return 403, orjson.dumps({"detail": "Forbidden: this API key may not use the requested model (mock)."})
    if kind == "not_found":
        return 404, _object_error("Invalid model: the model does not exist (mock).", "invalid_model", None, "1500")
    if kind == "rate_limit":
        return 429, orjson.dumps({"message": "Requests rate limit exceeded (mock)", "request_id": uuid.uuid4().hex})
    if kind == "overloaded":
        return 503, _object_error("Service unavailable: the model is overloaded (mock).", "service_unavailable")
    return 500, _object_error("Internal server error (mock).", "internal_server_error")


def stream_error(sent: int) -> bytes:
    return b"data: " + _object_error("Internal server error (mock, in-stream).", "internal_server_error") + b"\n\n"


WIRE = Wire(
    name="mistral",
    parse=parse,
    render_json=render_json,
    render_stream=render_stream,
    error=error,
    stream_error=stream_error,
    malformed_json=b'{"id": "malformed", "object": "chat.completion", "choices": [{"index": 0, ',
    malformed_frame=b'data: {"id": "malformed", "choices": [{"index": 0, "delta": {"content": \n\n',
    default_param="messages",
)

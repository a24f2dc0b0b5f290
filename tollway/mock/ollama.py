"""``POST /api/chat`` in Ollama's native wire format: request parsing, the JSON answer, the NDJSON stream
(``application/x-ndjson``: one object per line, partial ``thinking``/``content``, whole tool calls, a final
``done: true`` line with ``done_reason`` and the counts) and Ollama's ``{"error": "..."}`` bodies.

Like the real server, the mock streams unless the request says ``"stream": false``. It checks what a real
server would reject (non-string content, tool-call ``arguments`` that are not an object, images that are not
bare base64) plus two things that prove a client's round trip: a ``tool`` message's ``tool_name`` must name
a call of the assistant message before it, and an assistant message's ``thinking`` must be the reasoning
this mock produced for that turn, intact (Ollama has no opaque reasoning state; the text is what goes back).
"""

from __future__ import annotations

import binascii
from datetime import UTC, datetime
from typing import Any

import orjson

from tollway.mock.scenario import Ask, Controls, RequestInvalid, Script, count_words, strip_directives
from tollway.mock.wire import ErrorKind, StreamPlan, Wire

_THINK_LEVELS = frozenset({"low", "medium", "high", "max"})
_REASONING_PREFIX = "thinking about: "
_NS_PER_TOKEN = 12_500_000  # plausible durations: 80 tokens/s
_LOAD_NS = 41_295_167

# kind -> (status, canned message); Ollama's errors carry only a message
_ERRORS: dict[ErrorKind, tuple[int, str]] = {
    "invalid": (400, "invalid {param} (mock fault)"),
    "auth": (401, "unauthorized"),
    "forbidden": (403, "you do not have access to this model (mock)"),
    "not_found": (404, "model not found, try pulling it first (mock)"),
    "rate_limit": (429, "too many requests: rate limit exceeded (mock), please try again later"),
    "server": (500, "an error was encountered while running the model"),
    "overloaded": (503, "server busy, please try again.  maximum pending requests exceeded"),
}


def error(kind: ErrorKind, message: str | None, param: str | None, code: str | None) -> tuple[int, bytes]:
    status, canned = _ERRORS[kind]
    return status, orjson.dumps({"error": message if message is not None else canned.format(param=param)})


# ---------------------------------------------------------------------------------------------------
# request


def _expected_thinking(user_text: str) -> str:
    return _REASONING_PREFIX + strip_directives(user_text, Controls())


def _check_images(images: Any, where: str) -> None:
    if images is None:
        return
    if not isinstance(images, list):
        raise RequestInvalid(f"{where}: images must be an array of base64 strings", where)
    for k, image in enumerate(images):
        if not isinstance(image, str) or image.startswith("data:"):
            raise RequestInvalid(f"{where}[{k}]: illegal base64 data at input byte 4", f"{where}[{k}]")
        try:
            binascii.a2b_base64(image.encode("ascii"), strict_mode=True)
        except (binascii.Error, UnicodeEncodeError):
            raise RequestInvalid(f"{where}[{k}]: illegal base64 data", f"{where}[{k}]") from None


def _tool_call_names(calls: Any, where: str) -> tuple[list[str], int]:
    """Names of an assistant message's tool calls, and the words of their arguments."""
    names: list[str] = []
    words = 0
    if not isinstance(calls, list):
        raise RequestInvalid(f"{where}: tool_calls must be an array", where)
    for k, call in enumerate(calls):
        function = call.get("function") if isinstance(call, dict) else None
        if not isinstance(function, dict) or not isinstance(function.get("name"), str):
            raise RequestInvalid(f"{where}[{k}].function.name is required", f"{where}[{k}].function.name")
        arguments = function.get("arguments", {})
        if not isinstance(arguments, dict):
            raise RequestInvalid(
                f"json: cannot unmarshal {type(arguments).__name__} into Go struct field "
                "ToolCallFunction.messages.tool_calls.function.arguments of type api.ToolCallFunctionArguments",
                f"{where}[{k}].function.arguments",
            )
        names.append(function["name"])
        words += count_words(orjson.dumps(arguments).decode())
    return names, words


def parse(data: dict[str, Any]) -> Ask:
    model = data.get("model")
    if not isinstance(model, str) or not model:
        raise RequestInvalid("model is required", "model")
    messages = data.get("messages")
    if not isinstance(messages, list) or not messages:
        raise RequestInvalid("messages is required", "messages")

    words = 0
    user_text = ""
    calls: list[str] = []  # tool names of the latest assistant message with tool calls
    for i, message in enumerate(messages):
        where = f"messages[{i}]"
        if not isinstance(message, dict):
            raise RequestInvalid(f"{where}: expected an object", where)
        content = message.get("content", "")
        if not isinstance(content, str):
            raise RequestInvalid(
                f"json: cannot unmarshal {type(content).__name__} into Go struct field "
                "Message.messages.content of type string",
                f"{where}.content",
            )
        words += count_words(content)
        _check_images(message.get("images"), f"{where}.images")
        role = message.get("role")
        if role == "user":
            user_text = content
        elif role == "assistant":
            thinking = message.get("thinking")
            if thinking is not None:
                expected = _expected_thinking(user_text)
                if not isinstance(thinking, str) or not thinking or not expected.startswith(thinking):
                    raise RequestInvalid(
                        f"{where}.thinking: not the reasoning this model produced for the turn (mock)",
                        f"{where}.thinking",
                    )
                words += count_words(thinking)
            if message.get("tool_calls") is not None:
                calls, arg_words = _tool_call_names(message["tool_calls"], f"{where}.tool_calls")
                words += arg_words
        elif role == "tool":
            name = message.get("tool_name")
            if name not in calls:
                raise RequestInvalid(
                    f"{where}.tool_name: {name!r} names no tool call of the preceding assistant message (mock)",
                    f"{where}.tool_name",
                )
        elif role != "system":
            raise RequestInvalid(f"{where}.role: invalid role {role!r}", f"{where}.role")

    tool_outputs: list[str] | None = None
    if messages[-1].get("role") == "tool":
        trailing: list[str] = []
        for message in reversed(messages):
            if message.get("role") != "tool":
                break
            trailing.append(message.get("content") or "")
        tool_outputs = trailing[::-1]

    names: list[str] = []
    for tool in data.get("tools") or ():
        function = tool.get("function") if isinstance(tool, dict) and tool.get("type") == "function" else None
        if isinstance(function, dict) and isinstance(function.get("name"), str):
            names.append(function["name"])

    think = data.get("think")
    if think is not None and not isinstance(think, bool) and think not in _THINK_LEVELS:
        raise RequestInvalid(f"invalid think value: {think!r}", "think")
    fmt = data.get("format")
    if fmt not in (None, "", "json") and not isinstance(fmt, dict):
        raise RequestInvalid(f"invalid format: {fmt!r}", "format")
    options = data.get("options")
    if options is not None and not isinstance(options, dict):
        raise RequestInvalid("options must be an object", "options")
    num_predict = (options or {}).get("num_predict")
    return Ask(
        model=model,
        user_text=user_text,
        tool_outputs=tool_outputs,
        tools=names,
        parallel=True,  # Ollama has no switch for parallel calls
        reasoning=think is True or think in _THINK_LEVELS,
        json_output=fmt == "json" or isinstance(fmt, dict),
        max_tokens=num_predict if type(num_predict) is int and num_predict > 0 else None,
        input_words=words,
        stream=data.get("stream") is not False,  # Ollama streams by default
    )


# ---------------------------------------------------------------------------------------------------
# response


def _now() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def _done_reason(script: Script) -> str:
    return "length" if script.incomplete else "stop"


def _metrics(script: Script) -> dict[str, Any]:
    prompt_ns = script.input_tokens * _NS_PER_TOKEN // 10
    eval_ns = script.output_tokens * _NS_PER_TOKEN
    return {
        "total_duration": _LOAD_NS + prompt_ns + eval_ns,
        "load_duration": _LOAD_NS,
        "prompt_eval_count": script.input_tokens,
        "prompt_eval_duration": prompt_ns,
        "eval_count": script.output_tokens,
        "eval_duration": eval_ns,
    }


def _tool_calls(script: Script) -> list[dict[str, Any]]:
    return [{"function": {"name": c.name, "arguments": orjson.loads(c.arguments)}} for c in script.tool_calls]


def render_json(script: Script, data: dict[str, Any]) -> bytes:
    message: dict[str, Any] = {"role": "assistant", "content": script.text or ""}
    if script.reasoning is not None:
        message["thinking"] = script.reasoning
    if script.tool_calls:
        message["tool_calls"] = _tool_calls(script)
    body = {
        "model": script.model,
        "created_at": _now(),
        "message": message,
        "done_reason": _done_reason(script),
        "done": True,
        **_metrics(script),
    }
    return orjson.dumps(body)


def render_stream(script: Script, data: dict[str, Any]) -> StreamPlan:
    head = b'{"model":' + orjson.dumps(script.model) + b',"created_at":"' + _now().encode() + b'","message":'
    tail = b',"done":false}\n'
    frames: list[bytes] = []
    deltas: list[int] = []

    def line(message: dict[str, Any]) -> None:
        deltas.append(len(frames))
        frames.append(head + orjson.dumps(message) + tail)

    for piece in script.reasoning_pieces:
        line({"role": "assistant", "content": "", "thinking": piece})
    for piece in script.text_pieces:
        line({"role": "assistant", "content": piece})
    for call in _tool_calls(script):
        line({"role": "assistant", "content": "", "tool_calls": [call]})
    final = {"done_reason": _done_reason(script), "done": True, **_metrics(script)}
    frames.append(head + b'{"role":"assistant","content":""},' + orjson.dumps(final)[1:] + b"\n")
    return StreamPlan(frames, deltas)


def stream_error(sent: int) -> bytes:
    return b'{"error":"an error was encountered while running the model"}\n'


WIRE = Wire(
    name="ollama",
    parse=parse,
    render_json=render_json,
    render_stream=render_stream,
    error=error,
    stream_error=stream_error,
    malformed_json=b'{"model":"mock","created_at":"2026-01-01T00:00:00Z","message":{"role":"assistant","cont',
    malformed_frame=b'{"model":"mock","message":{"role":"assistant","content":\n',
    default_param="messages",
    content_type=b"application/x-ndjson",
)

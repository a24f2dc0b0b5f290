"""``POST /hf/v1/chat/completions``: the Hugging Face Inference Providers router / TGI flavour of chat
completions, with the quirks the ``huggingface`` adapter has to handle.

Request parsing is OpenAI chat's (:func:`tollway.mock.openai_chat.parse`) plus what differs:

* the output limit is ``max_tokens`` only; ``max_completion_tokens`` is ignored, as TGI does;
* a named ``tool_choice`` may be ``{"function": {"name"}}`` without ``type``;
* ``response_format`` may also be TGI's ``{"type": "json", "value": schema}``;
* automatic prefix caching: a request that continues a conversation (it has an assistant message) or
  sends ``prompt_cache_key`` reports half its input tokens as cached;
* reasoning sent back as a ``<think>…</think>`` block at the start of an assistant message must be
  exactly the reasoning this mock produced for the preceding user message (``"thinking about: <text>"``,
  possibly cut short by ``max_tokens``); anything else is a 400, so a gateway that alters reasoning on the
  way back is caught. A ``<think>`` that does not open the message or is never closed is a 400 too.

Answers come in three flavours, chosen by the model id's ``:<suffix>`` (the router's provider-suffix
syntax):

* default, the router (recorded Together answers): reasoning as ``<think>`` tags in ``content`` (in a
  stream the tags are split across chunks), tool calls with ids and string arguments, Together's extra
  fields (``prompt``, ``seed``, ``choices[].text``, ``delta.token_id``), usage with a top-level
  ``cached_tokens`` on the finishing chunk whether or not ``stream_options`` asked for it;
* ``:tgi``, a self-hosted TGI: ``<think>`` tags, tool calls without ``id`` and ``type`` whose non-streamed
  ``arguments`` are a JSON object, ``finish_reason`` ``eos_token``, an empty response ``id``, and streamed
  usage only in a separate chunk when ``stream_options.include_usage`` is set;
* ``:vllm``, a vLLM-backed provider: reasoning in ``reasoning_content``, usage with
  ``prompt_tokens_details.cached_tokens`` and ``completion_tokens_details.reasoning_tokens`` (streamed only
  with ``include_usage``).

Errors use the shapes these servers send: the router's ``{"error": "..."}`` (401, 429), a nested
``{"error": {"message"}}`` (403), vLLM's ``{"object": "error", "message": ...}`` (404), TGI's
``{"error": "...", "error_type": ...}`` (400, 500, and in a stream) and a model still loading
(``529`` fault: 503 ``{"error": "... is currently loading", "estimated_time": 20.0}``).
"""

from __future__ import annotations

import time
from typing import Any

import orjson

from tollway.mock import openai_chat
from tollway.mock.scenario import Ask, Controls, RequestInvalid, Script, new_id, strip_directives
from tollway.mock.wire import ErrorKind, StreamPlan, Wire

_DONE = b"data: [DONE]\n\n"
_OPEN = "<think>"
_CLOSE = "</think>"
_TGI_FINGERPRINT = "3.3.6-dev0-native"


def _flavour(model: str) -> str:
    suffix = model.rpartition(":")[2] if ":" in model else ""
    return suffix if suffix in ("tgi", "vllm") else "router"


def _text(content: Any) -> str:
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return " ".join(
            p["text"]
            for p in content
            if isinstance(p, dict) and p.get("type") == "text" and isinstance(p.get("text"), str)
        )
    return ""


def _check_think(messages: list[Any]) -> None:
    """Reject altered, misplaced or unterminated ``<think>`` blocks in assistant messages."""
    user = ""
    for i, message in enumerate(messages):
        if not isinstance(message, dict):
            continue
        text = _text(message.get("content"))
        role = message.get("role")
        if role == "user":
            user = text
        if role != "assistant" or _OPEN not in text:
            continue
        body = text.lstrip()
        end = body.find(_CLOSE)
        param = f"messages[{i}].content"
        if not body.startswith(_OPEN) or end < 0:
            raise RequestInvalid(f"{param}: a <think> block must open the message and be closed", param)
        inner = body[len(_OPEN) : end].strip()
        expected = "thinking about: " + strip_directives(user, Controls())
        if not inner or not expected.startswith(inner):
            raise RequestInvalid(f"{param}: the reasoning in the <think> block was altered", param)


def parse(data: dict[str, Any]) -> Ask:
    messages = data.get("messages")
    if isinstance(messages, list):
        _check_think(messages)
    normal = dict(data)
    choice = data.get("tool_choice")
    if isinstance(choice, dict) and "type" not in choice:
        normal["tool_choice"] = {"type": "function", **choice}
    normal.pop("max_completion_tokens", None)
    fmt = data.get("response_format")
    if isinstance(fmt, dict) and fmt.get("type") == "json_schema" and "json_schema" not in fmt and "value" not in fmt:
        raise RequestInvalid("response_format: json_schema needs a schema", "response_format")
    ask = openai_chat.parse(normal)
    ask.json_output = ask.json_output or (isinstance(fmt, dict) and fmt.get("type") == "json")
    ask.cache = ask.cache or any(isinstance(m, dict) and m.get("role") == "assistant" for m in messages or ())
    return ask


# ---------------------------------------------------------------------------------------------------
# rendering


def _finish_reason(script: Script, flavour: str) -> str:
    if script.incomplete:
        return "length"
    if flavour == "tgi":
        return "eos_token"
    return "tool_calls" if script.tool_calls else "stop"


def _think_closed(script: Script) -> bool:
    """False when the limit cut the reasoning itself (then ``</think>`` never came)."""
    return not (script.incomplete and script.text is None and not script.tool_calls)


def _usage(script: Script, flavour: str) -> dict[str, Any]:
    usage: dict[str, Any] = {
        "prompt_tokens": script.input_tokens,
        "completion_tokens": script.output_tokens,
        "total_tokens": script.input_tokens + script.output_tokens,
    }
    if flavour == "router":
        usage["cached_tokens"] = script.cached_tokens
    elif flavour == "vllm":
        usage["prompt_tokens_details"] = {"cached_tokens": script.cached_tokens}
        usage["completion_tokens_details"] = {"reasoning_tokens": script.reasoning_tokens}
    return usage


def _call_id(script: Script, index: int, flavour: str) -> str:
    prefix = "chatcmpl-tool-" if flavour == "vllm" else "call_"
    return prefix + script.tool_calls[index].digest


def _response_id(flavour: str) -> str:
    return "" if flavour == "tgi" else new_id("chatcmpl-" if flavour == "vllm" else "oHF")


def render_json(script: Script, data: dict[str, Any]) -> bytes:
    flavour = _flavour(script.model)
    message: dict[str, Any] = {"role": "assistant"}
    if flavour == "vllm":
        message["content"] = script.text
        message["reasoning_content"] = script.reasoning
    elif script.reasoning is not None:
        content = f"{_OPEN}\n{script.reasoning}"
        if _think_closed(script):
            content += f"\n{_CLOSE}\n\n{script.text or ''}"
        message["content"] = content
    elif flavour == "router" or not script.tool_calls:
        message["content"] = script.text or ""
    calls: list[dict[str, Any]] = []
    for i, call in enumerate(script.tool_calls):
        if flavour == "tgi":
            calls.append(
                {"function": {"name": call.name, "arguments": orjson.loads(call.arguments), "description": None}}
            )
            continue
        entry: dict[str, Any] = {
            "id": _call_id(script, i, flavour),
            "type": "function",
            "function": {"name": call.name, "arguments": call.arguments},
        }
        if flavour == "router":
            entry["index"] = i
        calls.append(entry)
    if calls or flavour != "tgi":
        message["tool_calls"] = calls
    if flavour == "router":
        message["reasoning"] = None
    choice: dict[str, Any] = {
        "index": 0,
        "message": message,
        "logprobs": None,
        "finish_reason": _finish_reason(script, flavour),
    }
    body: dict[str, Any] = {
        "id": _response_id(flavour),
        "object": "chat.completion",
        "created": int(time.time()),
        "model": script.model,
        "choices": [choice],
        "usage": _usage(script, flavour),
    }
    if flavour == "router":
        choice["seed"] = 4242
        body["prompt"] = []
    elif flavour == "tgi":
        body["system_fingerprint"] = _TGI_FINGERPRINT
    else:
        choice["stop_reason"] = None
    return orjson.dumps(body)


def _content_pieces(script: Script) -> list[str]:
    """The streamed content deltas: ``<think>`` tags cut in two across chunk boundaries."""
    text = script.text_pieces
    if script.reasoning is None:
        return list(text)
    reasoning = script.reasoning_pieces
    pieces = ["<th", "ink>\n" + (reasoning[0] if reasoning else ""), *reasoning[1:]]
    if _think_closed(script):
        pieces[-1] += "\n</th"
        tail = "ink>\n\n"
        pieces.extend([tail + text[0], *text[1:]] if text else [tail])
    return pieces


def render_stream(script: Script, data: dict[str, Any]) -> StreamPlan:
    flavour = _flavour(script.model)
    include_usage = _include_usage(data)
    head: dict[str, Any] = {
        "id": _response_id(flavour),
        "object": "chat.completion.chunk",
        "created": int(time.time()),
        "model": script.model,
    }
    if flavour == "tgi":
        head["system_fingerprint"] = _TGI_FINGERPRINT
    frames: list[bytes] = []
    deltas: list[int] = []
    token = iter(range(1000, 1_000_000))

    def add(
        delta: dict[str, Any], *, is_delta: bool = True, finish: str | None = None, usage: dict[str, Any] | None = None
    ) -> None:
        if is_delta:
            deltas.append(len(frames))
        choice: dict[str, Any] = {"index": 0}
        if flavour == "router":
            delta = {"token_id": next(token), "role": "assistant", **delta}
            choice["text"] = delta.get("content") or ""
        elif flavour == "tgi":
            delta = {"role": "assistant", **delta}
        choice.update(delta=delta, logprobs=None, finish_reason=finish)
        if flavour == "router":
            choice["seed"] = 4242 if finish else None
        chunk = {**head, "choices": [choice]}
        if flavour == "router" or include_usage:
            chunk["usage"] = usage
        frames.append(b"data: " + orjson.dumps(chunk) + b"\n\n")

    if flavour == "vllm":
        add({"role": "assistant", "content": ""}, is_delta=False)
        for piece in script.reasoning_pieces:
            add({"reasoning_content": piece})
        for piece in script.text_pieces:
            add({"content": piece})
    else:
        for piece in _content_pieces(script):
            add({"content": piece})
    for i, call in enumerate(script.tool_calls):
        pieces = call.argument_pieces or [""]
        if flavour == "tgi":
            # no id, no type: the name comes with the first argument piece
            add({"tool_calls": [{"index": i, "function": {"name": call.name, "arguments": pieces[0]}}]})
            rest = pieces[1:]
        else:
            start = {
                "index": i,
                "id": _call_id(script, i, flavour),
                "type": "function",
                "function": {"name": call.name, "arguments": ""},
            }
            add({"tool_calls": [start]}, is_delta=False)
            rest = pieces
        for piece in rest:
            add({"tool_calls": [{"index": i, "function": {"arguments": piece}}]})
    usage = _usage(script, flavour)
    add(
        {"content": ""} if flavour != "vllm" else {},
        is_delta=False,
        finish=_finish_reason(script, flavour),
        usage=usage if flavour == "router" else None,
    )
    if include_usage and flavour != "router":
        frames.append(b"data: " + orjson.dumps({**head, "choices": [], "usage": usage}) + b"\n\n")
    frames.append(_DONE)
    return StreamPlan(frames, deltas)


def _include_usage(data: dict[str, Any]) -> bool:
    options = data.get("stream_options")
    return isinstance(options, dict) and options.get("include_usage") is True


# ---------------------------------------------------------------------------------------------------
# errors

# kind -> (status, canned message)
_CANNED: dict[ErrorKind, tuple[int, str]] = {
    "invalid": (400, "Input validation error: `{param}` is not valid (mock)"),
    "auth": (401, "Invalid credentials in Authorization header"),
    "forbidden": (
        403,
        "This authentication method does not have sufficient permissions to call Inference "
        "Providers on behalf of user mock",
    ),
    "not_found": (404, "The model `mock` does not exist."),
    "rate_limit": (429, "You have exceeded your monthly included credits for Inference Providers (mock)."),
    "server": (500, "Request failed during generation: Server error: mock failure"),
    "overloaded": (503, "Model mock is currently loading"),
}


def error(kind: ErrorKind, message: str | None, param: str | None, code: str | None) -> tuple[int, bytes]:
    status, canned = _CANNED[kind]
    text = message if message is not None else canned.format(param=param)
    body: dict[str, Any]
    if kind in ("invalid", "server"):
        body = {"error": text, "error_type": "validation" if kind == "invalid" else "generation"}
    elif kind == "forbidden":
        body = {"error": {"message": text, "type": "permission_error", "code": code}}
    elif kind == "not_found":
        body = {"object": "error", "message": text, "type": "NotFoundError", "param": param, "code": 404}
    elif kind == "overloaded":
        body = {"error": text, "estimated_time": 20.0}
    else:
        body = {"error": text}
    return status, orjson.dumps(body)


def stream_error(sent: int) -> bytes:
    body = {
        "error": "Request failed during generation: Server error: CUDA out of memory (mock)",
        "error_type": "generation",
    }
    return b"data: " + orjson.dumps(body) + b"\n\n"


WIRE = Wire(
    name="huggingface",
    parse=parse,
    render_json=render_json,
    render_stream=render_stream,
    error=error,
    stream_error=stream_error,
    malformed_json=b'{"id": "oHFmalformed", "object": "chat.completion", "choices": [{"index": 0, ',
    malformed_frame=b'data: {"id": "oHFmalformed", "choices": [{"index": 0, "delta": {"content": \n\n',
    default_param="messages",
)

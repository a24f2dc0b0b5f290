"""``POST /v1/chat/completions`` in OpenAI's Chat Completions wire format: request parsing, the JSON
body and the SSE chunks (tool-call deltas, the ``stream_options.include_usage`` usage chunk and the
closing ``data: [DONE]``). Chat Completions never shows reasoning text: it is only counted in
``completion_tokens_details.reasoning_tokens``."""

from __future__ import annotations

import time
from typing import Any

import orjson

from tollway.mock.openai_errors import openai_error
from tollway.mock.scenario import Ask, RequestInvalid, Script, count_words, new_id
from tollway.mock.wire import StreamPlan, Wire

_DONE = b"data: [DONE]\n\n"
_FINGERPRINT = "fp_mock"  # the live API may send null; the OpenAPI type is a string


def _content_text(content: Any) -> str:
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        texts = [
            p["text"]
            for p in content
            if isinstance(p, dict) and p.get("type") == "text" and isinstance(p.get("text"), str)
        ]
        return " ".join(texts)
    return ""


def parse(data: dict[str, Any]) -> Ask:
    model = data.get("model")
    if not isinstance(model, str) or not model:
        raise RequestInvalid("you must provide a model parameter", "model", "missing_required_parameter")
    messages = data.get("messages")
    if not isinstance(messages, list) or not messages:
        raise RequestInvalid(
            "Missing required parameter: 'messages'.", "messages", "missing_required_parameter"
        )
    words = 0
    user_text = ""
    for index, message in enumerate(messages):
        if not isinstance(message, dict):
            raise RequestInvalid(
                f"Invalid type for 'messages[{index}]': expected an object.", f"messages[{index}]"
            )
        text = _content_text(message.get("content"))
        words += count_words(text)
        role = message.get("role")
        if role == "user":
            user_text = text
        elif role == "assistant":
            for call in message.get("tool_calls") or ():
                function = call.get("function") if isinstance(call, dict) else None
                if isinstance(function, dict) and isinstance(function.get("arguments"), str):
                    words += count_words(function["arguments"])

    tool_outputs: list[str] | None = None
    if isinstance(messages[-1], dict) and messages[-1].get("role") == "tool":
        trailing: list[str] = []
        for message in reversed(messages):
            if message.get("role") != "tool":
                break
            trailing.append(_content_text(message.get("content")))
        tool_outputs = trailing[::-1]

    names: list[str] = []
    for tool in data.get("tools") or ():
        function = tool.get("function") if isinstance(tool, dict) and tool.get("type") == "function" else None
        if isinstance(function, dict) and isinstance(function.get("name"), str):
            names.append(function["name"])
    choice = data.get("tool_choice")
    if choice == "none":
        names = []
    elif isinstance(choice, dict):
        if choice.get("type") == "function":
            function = choice.get("function")
            name = function.get("name") if isinstance(function, dict) else None
            if name not in names:
                raise RequestInvalid(
                    f"Invalid value for 'tool_choice': tool '{name}' is not in 'tools'.", "tool_choice"
                )
            names = [name]
        elif choice.get("type") == "allowed_tools":
            spec = choice.get("allowed_tools")
            listed = spec.get("tools") if isinstance(spec, dict) else None
            allowed = {
                t["function"].get("name")
                for t in listed or ()
                if isinstance(t, dict) and isinstance(t.get("function"), dict)
            }
            names = [n for n in names if n in allowed]

    effort = data.get("reasoning_effort")
    fmt = data.get("response_format")
    max_tokens = data.get("max_completion_tokens")
    if max_tokens is None:
        max_tokens = data.get("max_tokens")
    cache_key = data.get("prompt_cache_key")
    return Ask(
        model=model,
        user_text=user_text,
        tool_outputs=tool_outputs,
        tools=names,
        parallel=data.get("parallel_tool_calls") is not False,
        reasoning=isinstance(effort, str) and effort != "none",
        json_output=isinstance(fmt, dict) and fmt.get("type") in ("json_schema", "json_object"),
        max_tokens=max_tokens if isinstance(max_tokens, int) else None,
        input_words=words,
        cache=isinstance(cache_key, str) and bool(cache_key),
        stream=data.get("stream") is True,
    )


def _usage(script: Script) -> dict[str, Any]:
    return {
        "prompt_tokens": script.input_tokens,
        "completion_tokens": script.output_tokens,
        "total_tokens": script.input_tokens + script.output_tokens,
        "prompt_tokens_details": {"cached_tokens": script.cached_tokens, "audio_tokens": 0},
        "completion_tokens_details": {
            "reasoning_tokens": script.reasoning_tokens,
            "audio_tokens": 0,
            "accepted_prediction_tokens": 0,
            "rejected_prediction_tokens": 0,
        },
    }


def _finish_reason(script: Script) -> str:
    if script.incomplete:
        return "length"
    return "tool_calls" if script.tool_calls else "stop"


def render_json(script: Script, data: dict[str, Any]) -> bytes:
    message: dict[str, Any] = {
        "role": "assistant",
        "content": script.text,
        "refusal": None,
        "annotations": [],
    }
    if script.tool_calls:
        message["tool_calls"] = [
            {
                "id": "call_" + call.digest,
                "type": "function",
                "function": {"name": call.name, "arguments": call.arguments},
            }
            for call in script.tool_calls
        ]
    body = {
        "id": new_id("chatcmpl-"),
        "object": "chat.completion",
        "created": int(time.time()),
        "model": script.model,
        "choices": [
            {"index": 0, "message": message, "logprobs": None, "finish_reason": _finish_reason(script)}
        ],
        "usage": _usage(script),
        "service_tier": "default",
        "system_fingerprint": _FINGERPRINT,
    }
    return orjson.dumps(body)


def _include_usage(data: dict[str, Any]) -> bool:
    options = data.get("stream_options")
    return isinstance(options, dict) and options.get("include_usage") is True


def render_stream(script: Script, data: dict[str, Any]) -> StreamPlan:
    include_usage = _include_usage(data)
    head = orjson.dumps(
        {
            "id": new_id("chatcmpl-"),
            "object": "chat.completion.chunk",
            "created": int(time.time()),
            "model": script.model,
            "service_tier": "default",
            "system_fingerprint": _FINGERPRINT,
        }
    )[:-1]
    # every choice chunk is head + delta + tail; only the delta varies
    chunk_start = b"data: " + head + b',"choices":[{"index":0,"delta":'
    chunk_end = (
        b',"logprobs":null,"finish_reason":null}]' + (b',"usage":null' if include_usage else b"") + b"}\n\n"
    )
    frames: list[bytes] = []
    deltas: list[int] = []

    def add(delta: dict[str, Any], is_delta: bool = False) -> None:
        if is_delta:
            deltas.append(len(frames))
        frames.append(chunk_start + orjson.dumps(delta) + chunk_end)

    if script.tool_calls:
        for i, call in enumerate(script.tool_calls):
            start: dict[str, Any] = {
                "tool_calls": [
                    {
                        "index": i,
                        "id": "call_" + call.digest,
                        "type": "function",
                        "function": {"name": call.name, "arguments": ""},
                    }
                ]
            }
            if i == 0:
                start = {"role": "assistant", "content": None, **start, "refusal": None}
            add(start)
            for piece in call.argument_pieces:
                add({"tool_calls": [{"index": i, "function": {"arguments": piece}}]}, True)
    else:
        add({"role": "assistant", "content": "", "refusal": None})
        for piece in script.text_pieces:
            add({"content": piece}, True)

    finish = b',"logprobs":null,"finish_reason":"' + _finish_reason(script).encode() + b'"}]'
    frames.append(chunk_start + b"{}" + finish + (b',"usage":null' if include_usage else b"") + b"}\n\n")
    if include_usage:
        frames.append(b"data: " + head + b',"choices":[],"usage":' + orjson.dumps(_usage(script)) + b"}\n\n")
    frames.append(_DONE)
    return StreamPlan(frames, deltas)


def stream_error(sent: int) -> bytes:
    body = {
        "error": {
            "message": "The server had an error while processing your request. Sorry about that!",
            "type": "server_error",
            "param": None,
            "code": None,
        }
    }
    return b"data: " + orjson.dumps(body) + b"\n\n"


WIRE = Wire(
    name="openai_chat",
    parse=parse,
    render_json=render_json,
    render_stream=render_stream,
    error=openai_error,
    stream_error=stream_error,
    malformed_json=b'{"id": "chatcmpl-malformed", "object": "chat.completion", "choices": [{"index": 0, ',
    malformed_frame=b'data: {"id": "chatcmpl-malformed", "choices": [{"index": 0, "delta": {"content": \n\n',
    default_param="messages",
)

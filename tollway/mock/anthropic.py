"""``POST /v1/messages`` in Anthropic's Messages wire format: request parsing (thinking blocks must carry
a signature this mock issued), the JSON body and the SSE events (``message_start``,
``content_block_start/delta/stop`` with ``thinking_delta`` + ``signature_delta``, ``input_json_delta``,
``ping``, ``message_delta``, ``message_stop``) and Anthropic's error bodies."""

from __future__ import annotations

from typing import Any

import orjson

from tollway.mock.scenario import Ask, RequestInvalid, Script, count_words, make_state, new_id, state_valid
from tollway.mock.wire import ErrorKind, StreamPlan, Wire, sse

STATE_PREFIX = "sig_"
_PING = sse("ping", b'{"type":"ping"}')
_STOP = sse("message_stop", b'{"type":"message_stop"}')

# kind -> (status, error type, canned message)
_ERRORS: dict[ErrorKind, tuple[int, str, str]] = {
    "invalid": (400, "invalid_request_error", "{param}: Input is invalid (mock fault)"),
    "auth": (401, "authentication_error", "invalid x-api-key"),
    "forbidden": (403, "permission_error", "Your API key does not have permission to use the specified resource."),
    "not_found": (404, "not_found_error", "model: not found (mock)"),
    "rate_limit": (
        429,
        "rate_limit_error",
        "This request would exceed the rate limit for your organization (mock). Please try again later.",
    ),
    "server": (500, "api_error", "Internal server error"),
    "overloaded": (529, "overloaded_error", "Overloaded"),
}


def error(kind: ErrorKind, message: str | None, param: str | None, code: str | None) -> tuple[int, bytes]:
    status, type_, canned = _ERRORS[kind]
    body = {
        "type": "error",
        "error": {"type": type_, "message": message if message is not None else canned.format(param=param)},
        "request_id": new_id("req_"),
    }
    return status, orjson.dumps(body)


# ---------------------------------------------------------------------------------------------------
# request


def _blocks(content: Any) -> list[Any]:
    if isinstance(content, str):
        return [{"type": "text", "text": content}]
    return content if isinstance(content, list) else []


def _blocks_text(blocks: list[Any]) -> str:
    return " ".join(
        b["text"]
        for b in blocks
        if isinstance(b, dict) and b.get("type") == "text" and isinstance(b.get("text"), str)
    )


def parse(data: dict[str, Any]) -> Ask:
    model = data.get("model")
    if not isinstance(model, str) or not model:
        raise RequestInvalid("model: Field required", "model")
    max_tokens = data.get("max_tokens")
    if not isinstance(max_tokens, int) or isinstance(max_tokens, bool):
        raise RequestInvalid("max_tokens: Field required", "max_tokens")
    messages = data.get("messages")
    if not isinstance(messages, list):
        raise RequestInvalid("messages: Field required", "messages")

    cache = "cache_control" in data
    words = 0
    system = data.get("system")
    for block in _blocks(system):
        if isinstance(block, dict):
            cache = cache or "cache_control" in block
            if isinstance(block.get("text"), str):
                words += count_words(block["text"])

    user_text = ""
    tool_outputs: list[str] | None = None
    for i, message in enumerate(messages):
        if not isinstance(message, dict):
            raise RequestInvalid(f"messages.{i}: Input should be an object", f"messages.{i}")
        blocks = _blocks(message.get("content"))
        outputs: list[str] = []
        for j, block in enumerate(blocks):
            if not isinstance(block, dict):
                continue
            cache = cache or "cache_control" in block
            kind = block.get("type")
            if kind == "text" and isinstance(block.get("text"), str):
                words += count_words(block["text"])
            elif kind == "tool_result":
                inner = block.get("content")
                output = inner if isinstance(inner, str) else _blocks_text(_blocks(inner))
                outputs.append(output)
                words += count_words(output)
            elif kind == "tool_use":
                words += count_words(orjson.dumps(block.get("input", {})).decode())
            elif kind == "thinking":
                if not state_valid(STATE_PREFIX, block.get("signature")):
                    raise RequestInvalid(
                        f"messages.{i}.content.{j}: Invalid `signature` in `thinking` block",
                        f"messages.{i}.content.{j}.signature",
                    )
                if isinstance(block.get("thinking"), str):
                    words += count_words(block["thinking"])
            elif kind == "redacted_thinking":
                raise RequestInvalid(
                    f"messages.{i}.content.{j}: Invalid `data` in `redacted_thinking` block",
                    f"messages.{i}.content.{j}.data",
                )
        if message.get("role") == "user":
            text = _blocks_text(blocks)
            if text or not outputs:
                user_text = text
            tool_outputs = outputs or None
        else:
            tool_outputs = None

    names: list[str] = []
    for tool in data.get("tools") or ():
        if not isinstance(tool, dict):
            continue
        cache = cache or "cache_control" in tool
        if tool.get("type") in (None, "custom") and isinstance(tool.get("name"), str):
            names.append(tool["name"])
    choice = data.get("tool_choice")
    parallel = True
    if isinstance(choice, dict):
        parallel = choice.get("disable_parallel_tool_use") is not True
        kind = choice.get("type")
        if kind == "none":
            names = []
        elif kind == "tool":
            name = choice.get("name")
            if name not in names:
                raise RequestInvalid(
                    f"tool_choice.name: Tool '{name}' not found in tools", "tool_choice.name"
                )
            names = [name]

    thinking = data.get("thinking")
    fmt = data.get("output_format")
    config = data.get("output_config")
    if fmt is None and isinstance(config, dict):
        fmt = config.get("format")
    return Ask(
        model=model,
        user_text=user_text,
        tool_outputs=tool_outputs,
        tools=names,
        parallel=parallel,
        reasoning=isinstance(thinking, dict) and thinking.get("type") in ("enabled", "adaptive"),
        json_output=isinstance(fmt, dict) and fmt.get("type") == "json_schema",
        max_tokens=max_tokens,
        input_words=words,
        cache=cache,
        stream=data.get("stream") is True,
    )


# ---------------------------------------------------------------------------------------------------
# response


def _usage(script: Script, output_tokens: int) -> dict[str, Any]:
    return {
        "input_tokens": script.input_tokens - script.cached_tokens,
        "cache_creation_input_tokens": 0,
        "cache_read_input_tokens": script.cached_tokens,
        "cache_creation": {"ephemeral_5m_input_tokens": 0, "ephemeral_1h_input_tokens": 0},
        "output_tokens": output_tokens,
        "service_tier": "standard",
    }


def _stop_reason(script: Script) -> str:
    if script.incomplete:
        return "max_tokens"
    return "tool_use" if script.tool_calls else "end_turn"


def _message(
    script: Script, content: list[Any], stop_reason: str | None, output_tokens: int
) -> dict[str, Any]:
    return {
        "id": new_id("msg_"),
        "type": "message",
        "role": "assistant",
        "model": script.model,
        "content": content,
        "stop_reason": stop_reason,
        "stop_sequence": None,
        "usage": _usage(script, output_tokens),
    }


def render_json(script: Script, data: dict[str, Any]) -> bytes:
    content: list[Any] = []
    if script.reasoning is not None:
        signature = make_state(STATE_PREFIX, script.reasoning)
        content.append({"type": "thinking", "thinking": script.reasoning, "signature": signature})
    if script.text is not None:
        content.append({"type": "text", "text": script.text})
    for call in script.tool_calls:
        arguments = orjson.loads(call.arguments)
        content.append(
            {"type": "tool_use", "id": "toolu_" + call.digest, "name": call.name, "input": arguments}
        )
    return orjson.dumps(_message(script, content, _stop_reason(script), script.output_tokens))


def render_stream(script: Script, data: dict[str, Any]) -> StreamPlan:
    frames = [
        sse(
            "message_start", orjson.dumps({"type": "message_start", "message": _message(script, [], None, 1)})
        )
    ]
    deltas: list[int] = []
    index = 0

    def block(
        start: dict[str, Any], delta_kind: str, field: str, pieces: list[str], tail: list[bytes]
    ) -> None:
        nonlocal index
        frames.append(
            sse(
                "content_block_start",
                orjson.dumps({"type": "content_block_start", "index": index, "content_block": start}),
            )
        )
        if index == 0:
            frames.append(_PING)
        prefix = (
            b'{"type":"content_block_delta","index":'
            + str(index).encode()
            + b',"delta":{"type":"'
            + delta_kind.encode()
            + b'","'
            + field.encode()
            + b'":'
        )
        for piece in pieces:
            deltas.append(len(frames))
            frames.append(sse("content_block_delta", prefix + orjson.dumps(piece) + b"}}"))
        frames.extend(tail)
        frames.append(
            sse("content_block_stop", b'{"type":"content_block_stop","index":' + str(index).encode() + b"}")
        )
        index += 1

    if script.reasoning is not None:
        signature = make_state(STATE_PREFIX, script.reasoning)
        sig_delta = {
            "type": "content_block_delta",
            "index": index,
            "delta": {"type": "signature_delta", "signature": signature},
        }
        block(
            {"type": "thinking", "thinking": "", "signature": ""},
            "thinking_delta",
            "thinking",
            script.reasoning_pieces,
            [sse("content_block_delta", orjson.dumps(sig_delta))],
        )
    if script.text is not None:
        block({"type": "text", "text": ""}, "text_delta", "text", script.text_pieces, [])
    for call in script.tool_calls:
        start = {"type": "tool_use", "id": "toolu_" + call.digest, "name": call.name, "input": {}}
        block(start, "input_json_delta", "partial_json", call.argument_pieces, [])

    usage = _usage(script, script.output_tokens)
    del usage["cache_creation"], usage["service_tier"]
    message_delta = {
        "type": "message_delta",
        "delta": {"stop_reason": _stop_reason(script), "stop_sequence": None},
        "usage": usage,
    }
    frames.append(sse("message_delta", orjson.dumps(message_delta)))
    frames.append(_STOP)
    return StreamPlan(frames, deltas)


def stream_error(sent: int) -> bytes:
    return sse("error", b'{"type":"error","error":{"type":"overloaded_error","message":"Overloaded"}}')


WIRE = Wire(
    name="anthropic",
    parse=parse,
    render_json=render_json,
    render_stream=render_stream,
    error=error,
    stream_error=stream_error,
    malformed_json=b'{"id": "msg_malformed", "type": "message", "content": [{"type": "text", ',
    malformed_frame=(
        b'event: content_block_delta\ndata: {"type": "content_block_delta", "index": 0, "delta": \n\n'
    ),
    default_param="messages",
)

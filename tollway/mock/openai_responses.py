"""``POST /v1/responses`` in OpenAI's Responses wire format: request parsing, the JSON body and the
full SSE event sequence (``response.created`` ... ``response.completed``/``response.incomplete``, every
event with ``sequence_number``)."""

from __future__ import annotations

import time
from typing import Any

import orjson

from tollway.mock.openai_errors import openai_error
from tollway.mock.scenario import Ask, RequestInvalid, Script, count_words, make_state, new_id, state_valid
from tollway.mock.wire import StreamPlan, Wire, sse

STATE_PREFIX = "enc_"
_ENCRYPTED = "reasoning.encrypted_content"
_TEXT_TYPES = frozenset({"input_text", "output_text", "text"})


# ---------------------------------------------------------------------------------------------------
# request


def _content_text(content: Any) -> str:
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        texts = [
            p["text"]
            for p in content
            if isinstance(p, dict) and p.get("type") in _TEXT_TYPES and isinstance(p.get("text"), str)
        ]
        return " ".join(texts)
    return ""


def parse(data: dict[str, Any]) -> Ask:
    model = data.get("model")
    if not isinstance(model, str) or not model:
        raise RequestInvalid("Missing required parameter: 'model'.", "model", "missing_required_parameter")
    words = 0
    user_text = ""
    instructions = data.get("instructions")
    if isinstance(instructions, str):
        words += count_words(instructions)
    inp = data.get("input")
    items: list[Any]
    if isinstance(inp, str):
        user_text = inp
        words += count_words(inp)
        items = []
    elif isinstance(inp, list):
        items = inp
    elif inp is None:
        items = []
    else:
        raise RequestInvalid(
            "Invalid type for 'input': expected a string or an array.", "input", "invalid_type"
        )

    for index, item in enumerate(items):
        if not isinstance(item, dict):
            raise RequestInvalid(f"Invalid type for 'input[{index}]': expected an object.", f"input[{index}]")
        kind = item.get("type") or ("message" if "role" in item else None)
        if kind == "message":
            text = _content_text(item.get("content"))
            words += count_words(text)
            if item.get("role") == "user":
                user_text = text
        elif kind == "function_call":
            arguments = item.get("arguments")
            if isinstance(arguments, str):
                words += count_words(arguments)
        elif kind == "function_call_output":
            words += count_words(_content_text(item.get("output")))
        elif kind == "reasoning":
            state = item.get("encrypted_content")
            if state is not None and not state_valid(STATE_PREFIX, state):
                raise RequestInvalid(
                    f"The encrypted content for item {item.get('id')} could not be verified.",
                    f"input[{index}].encrypted_content",
                    "invalid_encrypted_content",
                )
            for part in (item.get("summary") or []) + (item.get("content") or []):
                if isinstance(part, dict) and isinstance(part.get("text"), str):
                    words += count_words(part["text"])

    tool_outputs: list[str] | None = None
    if items and isinstance(items[-1], dict) and items[-1].get("type") == "function_call_output":
        trailing: list[str] = []
        for item in reversed(items):
            if not isinstance(item, dict) or item.get("type") != "function_call_output":
                break
            trailing.append(_content_text(item.get("output")))
        tool_outputs = trailing[::-1]

    names = [
        t["name"]
        for t in data.get("tools") or ()
        if isinstance(t, dict) and t.get("type") == "function" and isinstance(t.get("name"), str)
    ]
    choice = data.get("tool_choice")
    if choice == "none":
        names = []
    elif isinstance(choice, dict):
        if choice.get("type") == "function":
            name = choice.get("name")
            if name not in names:
                raise RequestInvalid(
                    f"Tool choice '{name}' not found in 'tools' parameter.", "tool_choice", "invalid_value"
                )
            names = [name]
        elif choice.get("type") == "allowed_tools":
            allowed = {t.get("name") for t in choice.get("tools") or () if isinstance(t, dict)}
            names = [n for n in names if n in allowed]

    reasoning = data.get("reasoning")
    thinks = False
    if isinstance(reasoning, dict):
        effort = reasoning.get("effort")
        thinks = effort != "none" and (effort is not None or reasoning.get("summary") is not None)
    fmt = (data.get("text") or {}).get("format") if isinstance(data.get("text"), dict) else None
    max_tokens = data.get("max_output_tokens")
    cache_key = data.get("prompt_cache_key")
    return Ask(
        model=model,
        user_text=user_text,
        tool_outputs=tool_outputs,
        tools=names,
        parallel=data.get("parallel_tool_calls") is not False,
        reasoning=thinks,
        json_output=isinstance(fmt, dict) and fmt.get("type") in ("json_schema", "json_object"),
        max_tokens=max_tokens if isinstance(max_tokens, int) else None,
        input_words=words,
        cache=isinstance(cache_key, str) and bool(cache_key),
        stream=data.get("stream") is True,
    )


# ---------------------------------------------------------------------------------------------------
# response objects


def _tools_echo(data: dict[str, Any]) -> list[Any]:
    out: list[Any] = []
    for t in data.get("tools") or ():
        if isinstance(t, dict) and t.get("type") == "function":
            out.append(
                {
                    "type": "function",
                    "name": t.get("name"),
                    "description": t.get("description"),
                    "parameters": t.get("parameters"),
                    "strict": t.get("strict", True),
                }
            )
        else:
            out.append(t)
    return out


def _usage(script: Script) -> dict[str, Any]:
    return {
        "input_tokens": script.input_tokens,
        "input_tokens_details": {"cached_tokens": script.cached_tokens, "cache_write_tokens": 0},
        "output_tokens": script.output_tokens,
        "output_tokens_details": {"reasoning_tokens": script.reasoning_tokens},
        "total_tokens": script.input_tokens + script.output_tokens,
    }


def _response(
    script: Script, data: dict[str, Any], rid: str, created: int, status: str, output: list[Any]
) -> dict[str, Any]:
    reasoning = data.get("reasoning") if isinstance(data.get("reasoning"), dict) else {}
    assert isinstance(reasoning, dict)
    text = data.get("text") if isinstance(data.get("text"), dict) else {}
    assert isinstance(text, dict)
    done = status in ("completed", "incomplete")
    body: dict[str, Any] = {
        "id": rid,
        "object": "response",
        "created_at": created,
        "status": status,
        "background": False,
        "completed_at": created if status == "completed" else None,
        "error": None,
        "incomplete_details": {"reason": "max_output_tokens"} if status == "incomplete" else None,
        "instructions": data.get("instructions"),
        "max_output_tokens": data.get("max_output_tokens"),
        "max_tool_calls": data.get("max_tool_calls"),
        "model": script.model,
        "output": output,
        "parallel_tool_calls": data.get("parallel_tool_calls") is not False,
        "previous_response_id": data.get("previous_response_id"),
        "prompt_cache_key": data.get("prompt_cache_key"),
        "reasoning": {"effort": reasoning.get("effort"), "summary": reasoning.get("summary")},
        "safety_identifier": data.get("safety_identifier"),
        "service_tier": "default",
        "store": data.get("store") is not False,
        "temperature": data.get("temperature", 1.0),
        "text": {
            "format": text.get("format") or {"type": "text"},
            "verbosity": text.get("verbosity", "medium"),
        },
        "tool_choice": data.get("tool_choice", "auto"),
        "tools": _tools_echo(data),
        "top_logprobs": data.get("top_logprobs", 0),
        "top_p": data.get("top_p", 1.0),
        "truncation": data.get("truncation", "disabled"),
        "metadata": data.get("metadata") or {},
    }
    # the live API sends ``"usage": null`` / ``"user": null``; the OpenAPI types forbid null, so they are
    # left out instead (both parse the same in the SDKs)
    if done:
        body["usage"] = _usage(script)
    if isinstance(data.get("user"), str):
        body["user"] = data["user"]
    return body


def _wants_state(data: dict[str, Any]) -> bool:
    include = data.get("include")
    return isinstance(include, list) and _ENCRYPTED in include


def _summary_mode(data: dict[str, Any]) -> bool:
    reasoning = data.get("reasoning")
    return isinstance(reasoning, dict) and reasoning.get("summary") is not None


def _reasoning_item(script: Script, data: dict[str, Any], rid: str, text: str) -> dict[str, Any]:
    item: dict[str, Any] = {"id": rid, "type": "reasoning"}
    if _summary_mode(data):
        item["summary"] = [{"type": "summary_text", "text": text}] if text else []
    else:
        item["summary"] = []
        item["content"] = [{"type": "reasoning_text", "text": text}] if text else []
    if _wants_state(data):
        item["encrypted_content"] = make_state(STATE_PREFIX, script.reasoning or "")
    return item


def _text_part(text: str) -> dict[str, Any]:
    return {"type": "output_text", "annotations": [], "logprobs": [], "text": text}


def _message_item(mid: str, text: str, status: str) -> dict[str, Any]:
    content = [_text_part(text)] if status != "in_progress" else []
    return {"id": mid, "type": "message", "status": status, "content": content, "role": "assistant"}


def _call_item(fid: str, call_id: str, name: str, arguments: str, status: str) -> dict[str, Any]:
    return {
        "id": fid,
        "type": "function_call",
        "status": status,
        "arguments": arguments,
        "call_id": call_id,
        "name": name,
    }


def _item_ids(script: Script) -> tuple[str, str, list[str]]:
    return new_id("rs_"), new_id("msg_"), [new_id("fc_") for _ in script.tool_calls]


def render_json(script: Script, data: dict[str, Any]) -> bytes:
    rs_id, msg_id, fc_ids = _item_ids(script)
    status = "incomplete" if script.incomplete else "completed"
    output: list[Any] = []
    if script.reasoning is not None:
        output.append(_reasoning_item(script, data, rs_id, script.reasoning))
    if script.text is not None:
        output.append(_message_item(msg_id, script.text, status))
    for fc_id, call in zip(fc_ids, script.tool_calls, strict=True):
        output.append(_call_item(fc_id, "call_" + call.digest, call.name, call.arguments, "completed"))
    return orjson.dumps(_response(script, data, new_id("resp_"), int(time.time()), status, output))


# ---------------------------------------------------------------------------------------------------
# stream


class _Events:
    """Accumulates frames; every event gets the next sequence_number."""

    __slots__ = ("deltas", "frames")

    def __init__(self) -> None:
        self.frames: list[bytes] = []
        self.deltas: list[int] = []

    def add(self, event: dict[str, Any]) -> None:
        event["sequence_number"] = len(self.frames)
        self.frames.append(sse(event["type"], orjson.dumps(event)))

    def add_deltas(self, kind: str, head: dict[str, Any], pieces: list[str]) -> None:
        """Delta events share everything but ``delta`` and ``sequence_number``: build those by bytes."""
        name = kind.encode()
        prefix = b"event: " + name + b"\ndata: " + orjson.dumps({"type": kind, **head})[:-1] + b',"delta":'
        for piece in pieces:
            self.deltas.append(len(self.frames))
            seq = str(len(self.frames)).encode()
            self.frames.append(prefix + orjson.dumps(piece) + b',"sequence_number":' + seq + b"}\n\n")


def render_stream(script: Script, data: dict[str, Any]) -> StreamPlan:
    rs_id, msg_id, fc_ids = _item_ids(script)
    rid = new_id("resp_")
    created = int(time.time())
    events = _Events()
    events.add(
        {"type": "response.created", "response": _response(script, data, rid, created, "in_progress", [])}
    )
    events.add(
        {"type": "response.in_progress", "response": _response(script, data, rid, created, "in_progress", [])}
    )
    output: list[Any] = []

    if script.reasoning is not None:
        index = len(output)
        where = {"item_id": rs_id, "output_index": index}
        events.add(
            {
                "type": "response.output_item.added",
                "output_index": index,
                "item": _reasoning_item(script, data, rs_id, ""),
            }
        )
        text = script.reasoning
        if _summary_mode(data):
            part = {"type": "summary_text", "text": ""}
            events.add(
                {"type": "response.reasoning_summary_part.added", **where, "summary_index": 0, "part": part}
            )
            events.add_deltas(
                "response.reasoning_summary_text.delta",
                {**where, "summary_index": 0},
                script.reasoning_pieces,
            )
            events.add(
                {"type": "response.reasoning_summary_text.done", **where, "summary_index": 0, "text": text}
            )
            done_part = {"type": "summary_text", "text": text}
            events.add(
                {
                    "type": "response.reasoning_summary_part.done",
                    **where,
                    "summary_index": 0,
                    "part": done_part,
                }
            )
        else:
            part = {"type": "reasoning_text", "text": ""}
            events.add({"type": "response.content_part.added", **where, "content_index": 0, "part": part})
            events.add_deltas(
                "response.reasoning_text.delta", {**where, "content_index": 0}, script.reasoning_pieces
            )
            events.add({"type": "response.reasoning_text.done", **where, "content_index": 0, "text": text})
            done_part = {"type": "reasoning_text", "text": text}
            events.add({"type": "response.content_part.done", **where, "content_index": 0, "part": done_part})
        item = _reasoning_item(script, data, rs_id, text)
        output.append(item)
        events.add({"type": "response.output_item.done", "output_index": index, "item": item})

    if script.text is not None:
        index = len(output)
        status = "incomplete" if script.incomplete else "completed"
        where = {"item_id": msg_id, "output_index": index, "content_index": 0}
        events.add(
            {
                "type": "response.output_item.added",
                "output_index": index,
                "item": _message_item(msg_id, "", "in_progress"),
            }
        )
        events.add({"type": "response.content_part.added", **where, "part": _text_part("")})
        events.add_deltas("response.output_text.delta", {**where, "logprobs": []}, script.text_pieces)
        events.add({"type": "response.output_text.done", **where, "text": script.text, "logprobs": []})
        events.add({"type": "response.content_part.done", **where, "part": _text_part(script.text)})
        item = _message_item(msg_id, script.text, status)
        output.append(item)
        events.add({"type": "response.output_item.done", "output_index": index, "item": item})

    for fc_id, call in zip(fc_ids, script.tool_calls, strict=True):
        index = len(output)
        call_id = "call_" + call.digest
        where = {"item_id": fc_id, "output_index": index}
        events.add(
            {
                "type": "response.output_item.added",
                "output_index": index,
                "item": _call_item(fc_id, call_id, call.name, "", "in_progress"),
            }
        )
        events.add_deltas("response.function_call_arguments.delta", where, call.argument_pieces)
        events.add(
            {
                "type": "response.function_call_arguments.done",
                **where,
                "name": call.name,
                "arguments": call.arguments,
            }
        )
        item = _call_item(fc_id, call_id, call.name, call.arguments, "completed")
        output.append(item)
        events.add({"type": "response.output_item.done", "output_index": index, "item": item})

    status = "incomplete" if script.incomplete else "completed"
    final = _response(script, data, rid, created, status, output)
    events.add(
        {"type": "response.incomplete" if script.incomplete else "response.completed", "response": final}
    )
    return StreamPlan(events.frames, events.deltas)


def stream_error(sent: int) -> bytes:
    event = {
        "type": "error",
        "code": "server_error",
        "message": "The server had an error while processing your request. Sorry about that!",
        "param": None,
        "sequence_number": sent,
    }
    return sse("error", orjson.dumps(event))


WIRE = Wire(
    name="openai_responses",
    parse=parse,
    render_json=render_json,
    render_stream=render_stream,
    error=openai_error,
    stream_error=stream_error,
    malformed_json=b'{"id": "resp_malformed", "object": "response", "output": [{"type": "message", ',
    malformed_frame=(
        b'event: response.output_text.delta\ndata: {"type": "response.output_text.delta", "delta": \n\n'
    ),
    default_param="input",
)

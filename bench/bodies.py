"""Fixed wire bodies: the requests the load generator sends and the answers the zero-delay upstream serves.

The upstream answers are shaped like real provider responses (OpenAI Chat Completions, OpenAI Responses,
Anthropic Messages), non-streaming as JSON and streaming as SSE with ``chunks`` text deltas, so every
system under test parses and re-emits realistic payloads.
"""

from __future__ import annotations

from typing import Any, Literal

import orjson

Endpoint = Literal["chat", "responses"]

PATHS: dict[Endpoint, str] = {"chat": "/v1/chat/completions", "responses": "/v1/responses"}
ANTHROPIC_PATH = "/v1/messages"

_PROMPT = "Write one short sentence about toll roads."
_WORDS = ("Toll", " roads", " fund", " their", " own", " upkeep", " by", " charging", " the", " drivers")
_CREATED = 1_763_900_000
_USAGE_IN = 14


def request_body(endpoint: Endpoint, model: str, stream: bool) -> bytes:
    """The client request for ``endpoint``."""
    body: dict[str, Any]
    if endpoint == "chat":
        body = {"model": model, "messages": [{"role": "user", "content": _PROMPT}], "max_tokens": 64}
    else:
        body = {"model": model, "input": _PROMPT, "max_output_tokens": 64}
    if stream:
        body["stream"] = True
    return orjson.dumps(body)


def _text(chunks: int) -> list[str]:
    return [_WORDS[i % len(_WORDS)] for i in range(chunks)]


def _sse(events: list[dict[str, Any]], named: bool) -> bytes:
    out = bytearray()
    for event in events:
        if named:
            out += b"event: " + str(event["type"]).encode() + b"\n"
        out += b"data: " + orjson.dumps(event) + b"\n\n"
    return bytes(out)


def chat_json(chunks: int) -> bytes:
    text = "".join(_text(chunks))
    return orjson.dumps(
        {
            "id": "chatcmpl-bench0001",
            "object": "chat.completion",
            "created": _CREATED,
            "model": "gpt-4o-mini-2024-07-18",
            "choices": [
                {
                    "index": 0,
                    "message": {"role": "assistant", "content": text, "refusal": None, "annotations": []},
                    "logprobs": None,
                    "finish_reason": "stop",
                }
            ],
            "usage": {"prompt_tokens": _USAGE_IN, "completion_tokens": chunks, "total_tokens": _USAGE_IN + chunks},
            "service_tier": "default",
            "system_fingerprint": "fp_bench",
        }
    )


def chat_sse(chunks: int) -> bytes:
    base = {
        "id": "chatcmpl-bench0001",
        "object": "chat.completion.chunk",
        "created": _CREATED,
        "model": "gpt-4o-mini-2024-07-18",
        "system_fingerprint": "fp_bench",
    }
    events = [{**base, "choices": [{"index": 0, "delta": {"role": "assistant", "content": ""}}]}]
    events += [
        {**base, "choices": [{"index": 0, "delta": {"content": word}, "finish_reason": None}]} for word in _text(chunks)
    ]
    events.append({**base, "choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}]})
    events.append(
        {
            **base,
            "choices": [],
            "usage": {"prompt_tokens": _USAGE_IN, "completion_tokens": chunks, "total_tokens": _USAGE_IN + chunks},
        }
    )
    return _sse(events, named=False) + b"data: [DONE]\n\n"


def _response(status: str, text: str | None, chunks: int) -> dict[str, Any]:
    output: list[dict[str, Any]] = []
    if text is not None:
        output.append(
            {
                "type": "message",
                "id": "msg_bench0001",
                "status": "completed",
                "role": "assistant",
                "content": [{"type": "output_text", "text": text, "annotations": [], "logprobs": []}],
            }
        )
    done = status == "completed"
    return {
        "id": "resp_bench0001",
        "object": "response",
        "created_at": _CREATED,
        "status": status,
        "error": None,
        "incomplete_details": None,
        "instructions": None,
        "max_output_tokens": 64,
        "model": "gpt-4o-mini-2024-07-18",
        "output": output,
        "parallel_tool_calls": True,
        "previous_response_id": None,
        "reasoning": {"effort": None, "summary": None},
        "store": True,
        "temperature": 1.0,
        "text": {"format": {"type": "text"}},
        "tool_choice": "auto",
        "tools": [],
        "top_p": 1.0,
        "truncation": "disabled",
        "usage": {
            "input_tokens": _USAGE_IN,
            "input_tokens_details": {"cached_tokens": 0},
            "output_tokens": chunks,
            "output_tokens_details": {"reasoning_tokens": 0},
            "total_tokens": _USAGE_IN + chunks,
        }
        if done
        else None,
        "user": None,
        "metadata": {},
    }


def responses_json(chunks: int) -> bytes:
    return orjson.dumps(_response("completed", "".join(_text(chunks)), chunks))


def responses_sse(chunks: int) -> bytes:
    words = _text(chunks)
    text = "".join(words)
    item_id = "msg_bench0001"
    part_empty = {"type": "output_text", "text": "", "annotations": [], "logprobs": []}
    part_done = {"type": "output_text", "text": text, "annotations": [], "logprobs": []}
    item_open = {"type": "message", "id": item_id, "status": "in_progress", "role": "assistant", "content": []}
    item_done = {**item_open, "status": "completed", "content": [part_done]}
    where = {"item_id": item_id, "output_index": 0, "content_index": 0}
    events: list[dict[str, Any]] = [
        {"type": "response.created", "response": _response("in_progress", None, chunks)},
        {"type": "response.in_progress", "response": _response("in_progress", None, chunks)},
        {"type": "response.output_item.added", "output_index": 0, "item": item_open},
        {"type": "response.content_part.added", **where, "part": part_empty},
    ]
    events += [{"type": "response.output_text.delta", **where, "delta": w, "logprobs": []} for w in words]
    events += [
        {"type": "response.output_text.done", **where, "text": text, "logprobs": []},
        {"type": "response.content_part.done", **where, "part": part_done},
        {"type": "response.output_item.done", "output_index": 0, "item": item_done},
        {"type": "response.completed", "response": _response("completed", text, chunks)},
    ]
    for number, event in enumerate(events):
        event["sequence_number"] = number
    return _sse(events, named=True)


def anthropic_json(chunks: int) -> bytes:
    return orjson.dumps(
        {
            "id": "msg_01Bench",
            "type": "message",
            "role": "assistant",
            "model": "claude-sonnet-4-5-20250929",
            "content": [{"type": "text", "text": "".join(_text(chunks))}],
            "stop_reason": "end_turn",
            "stop_sequence": None,
            "usage": {"input_tokens": _USAGE_IN, "output_tokens": chunks},
        }
    )


def anthropic_sse(chunks: int) -> bytes:
    start: dict[str, Any] = {
        "id": "msg_01Bench",
        "type": "message",
        "role": "assistant",
        "model": "claude-sonnet-4-5-20250929",
        "content": [],
        "stop_reason": None,
        "stop_sequence": None,
        "usage": {"input_tokens": _USAGE_IN, "output_tokens": 1},
    }
    events: list[dict[str, Any]] = [
        {"type": "message_start", "message": start},
        {"type": "content_block_start", "index": 0, "content_block": {"type": "text", "text": ""}},
    ]
    events += [
        {"type": "content_block_delta", "index": 0, "delta": {"type": "text_delta", "text": w}} for w in _text(chunks)
    ]
    events += [
        {"type": "content_block_stop", "index": 0},
        {
            "type": "message_delta",
            "delta": {"stop_reason": "end_turn", "stop_sequence": None},
            "usage": {"output_tokens": chunks},
        },
        {"type": "message_stop"},
    ]
    return _sse(events, named=True)


def upstream_files(chunks: int) -> dict[str, dict[str, bytes]]:
    """Per mode (``json``/``sse``), the file name (under the upstream's body root) to serve per path."""
    return {
        "json": {
            "chat.json": chat_json(chunks),
            "responses.json": responses_json(chunks),
            "messages.json": anthropic_json(chunks),
        },
        "sse": {
            "chat.sse": chat_sse(chunks),
            "responses.sse": responses_sse(chunks),
            "messages.sse": anthropic_sse(chunks),
        },
    }

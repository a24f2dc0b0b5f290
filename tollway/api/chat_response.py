"""Chat Completions front door, response side: :class:`CanonicalResponse` -> ``chat.completion`` object.

Shape choices (all accepted by the OpenAI SDK and by ``CreateChatCompletionResponse`` in OpenAI's OpenAPI):

* ``message.content`` is the ``output_text`` of every assistant message item, concatenated without a
  separator (the stream encoder emits the same text delta by delta); ``null`` when the answer is only tool
  calls or a refusal, ``""`` when the answer is empty.
* ``message.reasoning_content`` (a widely used extension) carries the reasoning text -- raw reasoning when
  the provider gave it, else the summary -- and is present only when there is some.
* ``usage`` is omitted when the provider reported none (the schema types it as a non-null object); when
  present it carries ``cost_usd`` (an exact decimal, ``null`` when the model is unpriced).
* ``system_fingerprint`` is omitted: OpenAI's schema types it as a non-null string and we have none.
* ``service_tier`` is present only when known; ``fast`` is reported as ``priority`` as OpenAI does.

The returned dict may contain :class:`orjson.Fragment` values: serialise it with :func:`orjson.dumps`.
"""

from __future__ import annotations

from typing import Any

import orjson

from tollway.core.types import CanonicalResponse, Item, Usage


def finish_reason(status: str, incomplete_reason: str | None, has_tool_calls: bool) -> str:
    """Chat ``finish_reason`` for a canonical outcome."""
    if status == "incomplete":
        if incomplete_reason == "max_output_tokens":
            return "length"
        if incomplete_reason == "content_filter":
            return "content_filter"
        return "stop"
    if has_tool_calls and status == "completed":
        return "tool_calls"
    return "stop"


def usage_json(usage: Usage, cost_usd: orjson.Fragment | None) -> dict[str, Any]:
    """OpenAI ``CompletionUsage`` plus tollway's ``cost_usd``."""
    return {
        "prompt_tokens": usage.input_tokens,
        "completion_tokens": usage.output_tokens,
        "total_tokens": usage.input_tokens + usage.output_tokens,
        "prompt_tokens_details": {
            "cached_tokens": usage.cached_tokens,
            "cache_write_tokens": usage.cache_write_tokens,
        },
        "completion_tokens_details": {"reasoning_tokens": usage.reasoning_tokens},
        "cost_usd": cost_usd,
    }


def chat_service_tier(service_tier: str | None) -> str | None:
    return "priority" if service_tier == "fast" else service_tier


def _annotations(part: Item, offset: int, out: list[dict[str, Any]]) -> None:
    """Open Responses ``url_citation`` annotations -> chat's nested shape, indices shifted by ``offset``."""
    for ann in part.get("annotations") or ():
        if ann.get("type") != "url_citation":
            continue
        out.append(
            {
                "type": "url_citation",
                "url_citation": {
                    "start_index": ann.get("start_index", 0) + offset,
                    "end_index": ann.get("end_index", 0) + offset,
                    "url": ann.get("url", ""),
                    "title": ann.get("title", ""),
                },
            }
        )


def _reasoning_text(item: Item) -> str:
    raw = "".join(part.get("text", "") for part in item.get("content") or ())
    if raw:
        return raw
    return "".join(part.get("text", "") for part in item.get("summary") or ())


def chat_completion_json(
    resp: CanonicalResponse,
    *,
    completion_id: str,
    created: int,
    model: str,
    cost_usd: orjson.Fragment | None,
    tollway: dict[str, Any] | None,
    service_tier: str | None = None,
) -> dict[str, Any]:
    """Render a finished canonical response as an OpenAI ``chat.completion`` object."""
    texts: list[str] = []
    length = 0
    has_text = False
    refusals: list[str] = []
    reasoning: list[str] = []
    annotations: list[dict[str, Any]] = []
    tool_calls: list[dict[str, Any]] = []
    for item in resp.output:
        itype = item.get("type")
        if itype == "message":
            for part in item.get("content") or ():
                ptype = part.get("type")
                if ptype == "output_text":
                    text = part.get("text", "")
                    _annotations(part, length, annotations)
                    texts.append(text)
                    length += len(text)
                    has_text = True
                elif ptype == "refusal":
                    refusals.append(part.get("refusal", ""))
        elif itype == "function_call":
            tool_calls.append(
                {
                    "id": item["call_id"],
                    "type": "function",
                    "function": {"name": item["name"], "arguments": item.get("arguments", "")},
                }
            )
        elif itype == "reasoning":
            text = _reasoning_text(item)
            if text:
                reasoning.append(text)

    content: str | None
    if has_text:
        content = "".join(texts)
    elif tool_calls or refusals:
        content = None
    else:
        content = ""
    message: dict[str, Any] = {
        "role": "assistant",
        "content": content,
        "refusal": "".join(refusals) if refusals else None,
        "annotations": annotations,
    }
    if tool_calls:
        message["tool_calls"] = tool_calls
    if reasoning:
        message["reasoning_content"] = "".join(reasoning)

    out: dict[str, Any] = {
        "id": completion_id,
        "object": "chat.completion",
        "created": created,
        "model": model,
        "choices": [
            {
                "index": 0,
                "message": message,
                "logprobs": None,
                "finish_reason": finish_reason(resp.status, resp.incomplete_reason, bool(tool_calls)),
            }
        ],
    }
    if resp.usage is not None:
        out["usage"] = usage_json(resp.usage, cost_usd)
    tier = chat_service_tier(service_tier)
    if tier is not None:
        out["service_tier"] = tier
    if tollway is not None:
        out["tollway"] = tollway
    return out

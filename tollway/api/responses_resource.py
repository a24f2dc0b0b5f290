"""Builds the Open Responses ``ResponseResource`` (all 31 fields, null where unknown) and its usage."""

from __future__ import annotations

from typing import Any

import orjson

from tollway.core.types import CanonicalRequest, Item, Usage

ENCRYPTED_INCLUDE = "reasoning.encrypted_content"
_OPENAI_STATE = "tw1.openai."


def usage_json(usage: Usage | None, cost_usd: orjson.Fragment | None) -> dict[str, Any] | None:
    if usage is None:
        return None
    return {
        "input_tokens": usage.input_tokens,
        "output_tokens": usage.output_tokens,
        "total_tokens": usage.total_tokens,
        "input_tokens_details": {"cached_tokens": usage.cached_tokens},
        "output_tokens_details": {"reasoning_tokens": usage.reasoning_tokens},
        "cost_usd": cost_usd,
    }


def visible_item(item: Item, include_encrypted: bool) -> Item:
    """The item as shown to the client. OpenAI's own encrypted reasoning is shown only when asked for
    (as OpenAI does); other providers' opaque state (e.g. Anthropic thinking signatures) is always
    shown, because a client replaying output items needs it to continue the conversation."""
    if item.get("type") != "reasoning" or include_encrypted:
        return item
    enc = item.get("encrypted_content")
    if enc is None or not enc.startswith(_OPENAI_STATE):
        return item
    return {k: v for k, v in item.items() if k != "encrypted_content"}


def _text_json(req: CanonicalRequest) -> dict[str, Any]:
    f = req.text_format
    if f.type == "json_schema":
        return {"format": {"type": "json_schema", "name": f.name, "description": f.description,
                           "schema": f.schema, "strict": bool(f.strict)}}
    return {"format": {"type": f.type}}


def build_resource(
    req: CanonicalRequest,
    *,
    response_id: str,
    created_at: int,
    completed_at: int | None,
    status: str,
    model: str,
    output: list[Item],
    usage: dict[str, Any] | None,
    incomplete_reason: str | None = None,
    error: dict[str, Any] | None = None,
    tollway: dict[str, Any] | None = None,
) -> dict[str, Any]:
    include_encrypted = ENCRYPTED_INCLUDE in req.include
    reasoning = None
    if req.reasoning_effort is not None or req.reasoning_summary is not None:
        reasoning = {"effort": req.reasoning_effort, "summary": req.reasoning_summary}
    resource: dict[str, Any] = {
        "id": response_id,
        "object": "response",
        "created_at": created_at,
        "completed_at": completed_at,
        "status": status,
        "incomplete_details": {"reason": incomplete_reason} if status == "incomplete" else None,
        "model": model,
        "previous_response_id": req.previous_response_id,
        "instructions": req.instructions,
        "output": [visible_item(it, include_encrypted) for it in output],
        "error": error,
        "tools": [t.to_json() for t in req.tools],
        "tool_choice": req.tool_choice.raw,
        "truncation": req.truncation or "disabled",
        "parallel_tool_calls": True if req.parallel_tool_calls is None else req.parallel_tool_calls,
        "text": _text_json(req),
        "top_p": 1.0 if req.top_p is None else req.top_p,
        "presence_penalty": req.presence_penalty or 0.0,
        "frequency_penalty": req.frequency_penalty or 0.0,
        "top_logprobs": req.top_logprobs or 0,
        "temperature": 1.0 if req.temperature is None else req.temperature,
        "reasoning": reasoning,
        "usage": usage,
        "max_output_tokens": req.max_output_tokens,
        "max_tool_calls": req.max_tool_calls,
        "store": req.store,
        "background": False,
        "service_tier": req.service_tier or "default",
        "metadata": req.metadata or {},
        "safety_identifier": req.user,
        "prompt_cache_key": req.prompt_cache_key,
    }
    if tollway is not None:
        resource["tollway"] = tollway
    return resource

"""Canonical request -> Anthropic Messages request body (the request half of the Anthropic adapter).

Mapping decisions:

* ``max_tokens`` is required by Anthropic. Without ``max_output_tokens`` tollway sends
  :data:`DEFAULT_MAX_TOKENS` (4096, what the recorded clients send and a value every Claude model accepts);
  when extended thinking is on and its budget is not below that, ``budget + 4096``.
* ``reasoning.effort`` becomes ``thinking: {"type": "enabled", "budget_tokens": N}`` with N from
  :data:`THINKING_BUDGETS` (``minimal`` is Anthropic's minimum budget, 1024; ``low`` 2048; ``medium`` 8192;
  ``high`` 16384; ``xhigh`` 24576) and is reported as approximated. A client ``max_output_tokens`` not above
  the budget halves the budget (Anthropic counts thinking inside ``max_tokens``). Thinking is left off (and
  ``reasoning.effort`` reported dropped) when Anthropic would reject it: forced tool use, a budget under
  1024, or a tool loop whose last assistant turn carries no Anthropic thinking block. With thinking on,
  ``temperature`` (unless 1), ``top_k`` and ``top_p`` below 0.95 are not allowed and are dropped.
* System and developer messages join ``instructions`` in ``system`` (in order, blank-line separated).
  Consecutive turns of one role merge into one message, so parallel tool results share a user message.
* Reasoning items whose ``encrypted_content`` is Anthropic state become ``thinking`` /
  ``redacted_thinking`` blocks; any other reasoning item is dropped and reported.
* An allowed-tools subset is enforced by sending only those tools; a single allowed tool with
  ``required`` becomes ``{"type": "tool", "name"}``.
* ``text.format`` has no general equivalent in the stable API: the format is appended to ``system`` as an
  instruction and reported as approximated.
* Anthropic's ``temperature`` ranges 0..1: larger values are clamped to 1 (approximated). ``top_k`` is
  taken from the request's extra fields; other extra fields are reported dropped.
"""

from __future__ import annotations

import re
from typing import Any

import orjson

from tollway.core.errors import invalid
from tollway.core.types import JSON, CanonicalRequest, Fidelity, FunctionTool, Item
from tollway.providers.items import TEXT_PARTS, call_arguments, own_reasoning_state, system_text

PROVIDER = "anthropic"
DEFAULT_MAX_TOKENS = 4096
MIN_THINKING_BUDGET = 1024
THINKING_BUDGETS: dict[str, int] = {
    "minimal": 1024,
    "low": 2048,
    "medium": 8192,
    "high": 16384,
    "xhigh": 24576,
}
_IMAGE_TYPES = frozenset({"image/jpeg", "image/png", "image/gif", "image/webp"})
_BAD_ID_CHARS = re.compile(r"[^a-zA-Z0-9_-]")
_JSON_OBJECT_INSTRUCTION = "Respond with one valid JSON object only, with no other text and no code fences."


def _dumps(value: Any) -> str:
    return orjson.dumps(value).decode()


# --------------------------------------------------------------------------------------------------
# Request: canonical input items -> system text + Anthropic messages
# --------------------------------------------------------------------------------------------------


def _tool_id(call_id: Any, param: str) -> str:
    """Anthropic tool ids must match ``^[a-zA-Z0-9_-]+$``; ids from other providers are made to fit (the
    same way on both the tool_use and the tool_result side, so pairs still match)."""
    if not isinstance(call_id, str) or not call_id:
        raise invalid("A call_id is required.", param, code="missing_required_parameter")
    return _BAD_ID_CHARS.sub("_", call_id)


def _data_url(url: str, param: str) -> tuple[str, str]:
    """``data:<media type>[;params];base64,<data>`` -> (media type, base64 data)."""
    header, comma, data = url[5:].partition(",")
    if not comma or not header.endswith(";base64") or not data:
        raise invalid("Only base64 data URLs are supported.", param)
    return header.split(";", 1)[0].strip().lower(), data


def _image_block(part: JSON, param: str, fidelity: Fidelity) -> JSON | None:
    url = part.get("image_url")
    if isinstance(url, dict):  # chat-style {"url": ...}
        url = url.get("url")
    if not isinstance(url, str) or not url:
        fidelity.dropped.append(f"{param} (image without URL)")
        return None
    detail = part.get("detail")
    if detail not in (None, "auto"):
        fidelity.dropped.append(f"{param}.detail")
    if url.startswith("data:"):
        media_type, data = _data_url(url, f"{param}.image_url")
        if media_type == "image/jpg":
            media_type = "image/jpeg"
        if media_type not in _IMAGE_TYPES:
            raise invalid(
                f"Image type {media_type!r} is not supported by this provider (jpeg, png, gif, webp).",
                f"{param}.image_url",
            )
        return {"type": "image", "source": {"type": "base64", "media_type": media_type, "data": data}}
    if url.startswith(("https://", "http://")):
        return {"type": "image", "source": {"type": "url", "url": url}}
    raise invalid("Image URLs must be http(s) or base64 data URLs.", f"{param}.image_url")


def _file_block(part: JSON, param: str, fidelity: Fidelity) -> JSON | None:
    """PDF documents (data URL or http(s) URL); anything else has no Messages equivalent."""
    data = part.get("file_data")
    if isinstance(data, str) and data.startswith("data:"):
        media_type, payload = _data_url(data, f"{param}.file_data")
        if media_type == "application/pdf":
            return {
                "type": "document",
                "source": {"type": "base64", "media_type": media_type, "data": payload},
            }
    url = part.get("file_url")
    if isinstance(url, str) and url.startswith(("https://", "http://")):
        return {"type": "document", "source": {"type": "url", "url": url}}
    fidelity.dropped.append(f"{param} (input_file)")
    return None


def _content_blocks(content: Any, param: str, fidelity: Fidelity) -> list[JSON]:
    if isinstance(content, str):
        return [{"type": "text", "text": content}] if content else []
    blocks: list[JSON] = []
    if not isinstance(content, list):
        return blocks
    for j, part in enumerate(content):
        if not isinstance(part, dict):
            fidelity.dropped.append(f"{param}[{j}]")
            continue
        ptype = part.get("type")
        if ptype in TEXT_PARTS:
            text = part.get("text")
            if text:  # Anthropic rejects empty text blocks
                blocks.append({"type": "text", "text": text})
        elif ptype == "refusal":
            if part.get("refusal"):
                blocks.append({"type": "text", "text": part["refusal"]})
        elif ptype == "input_image":
            block = _image_block(part, f"{param}[{j}]", fidelity)
            if block is not None:
                blocks.append(block)
        elif ptype == "input_file":
            block = _file_block(part, f"{param}[{j}]", fidelity)
            if block is not None:
                blocks.append(block)
        else:
            fidelity.dropped.append(f"{param}[{j}] ({ptype})")
    return blocks


def _tool_use_block(item: Item, param: str) -> JSON:
    args = call_arguments(item, param)
    return {
        "type": "tool_use",
        "id": _tool_id(item.get("call_id"), f"{param}.call_id"),
        "name": item.get("name"),
        "input": args,
    }


def _tool_result_block(item: Item, param: str, fidelity: Fidelity) -> JSON:
    output = item.get("output")
    content: Any
    if isinstance(output, list):
        content = _content_blocks(output, f"{param}.output", fidelity)
    elif output is None:
        content = ""
    else:
        content = output if isinstance(output, str) else _dumps(output)
    return {
        "type": "tool_result",
        "tool_use_id": _tool_id(item.get("call_id"), f"{param}.call_id"),
        "content": content,
        "is_error": False,
    }


def _thinking_block(item: Item, param: str, fidelity: Fidelity) -> JSON | None:
    state = own_reasoning_state(item, param, PROVIDER, fidelity)
    if state is None:
        return None
    redacted = state.get("redacted_data")
    if isinstance(redacted, str):
        return {"type": "redacted_thinking", "data": redacted}
    signature = state.get("signature")
    if not isinstance(signature, str):
        fidelity.dropped.append(f"{param}.reasoning (corrupt state)")
        return None
    parts = item.get("content") or item.get("summary") or []
    text = "\n\n".join(p.get("text") or "" for p in parts if isinstance(p, dict))
    return {"type": "thinking", "thinking": text, "signature": signature}


def convert_input(items: list[Item], fidelity: Fidelity) -> tuple[list[str], list[JSON]]:
    """Canonical input -> (system texts, Anthropic messages with consecutive same-role turns merged)."""
    system: list[str] = []
    messages: list[JSON] = []

    def push(role: str, blocks: list[JSON]) -> None:
        if not blocks:
            return
        if messages and messages[-1]["role"] == role:
            messages[-1]["content"].extend(blocks)
        else:
            messages.append({"role": role, "content": blocks})

    for i, item in enumerate(items):
        param = f"input[{i}]"
        itype = item.get("type", "message")
        if itype == "message":
            role = item.get("role")
            if role in ("user", "assistant"):
                push(role, _content_blocks(item.get("content"), f"{param}.content", fidelity))
            elif role in ("system", "developer"):
                text = system_text(item.get("content"), f"{param}.content", fidelity)
                if text:
                    system.append(text)
            else:
                raise invalid(f"Unsupported message role {role!r}.", f"{param}.role")
        elif itype == "function_call":
            push("assistant", [_tool_use_block(item, param)])
        elif itype == "function_call_output":
            push("user", [_tool_result_block(item, param, fidelity)])
        elif itype == "reasoning":
            block = _thinking_block(item, param, fidelity)
            if block is not None:
                push("assistant", [block])
        else:
            fidelity.dropped.append(f"{param} ({itype})")
    return system, messages


def _tool_loop_without_thinking(messages: list[JSON]) -> bool:
    """True when the conversation continues a tool loop whose assistant turn has no thinking block: with
    thinking enabled Anthropic requires that turn to start with one."""
    if len(messages) < 2:
        return False
    last, prev = messages[-1], messages[-2]
    if last["role"] != "user" or prev["role"] != "assistant":
        return False
    if not any(b["type"] == "tool_result" for b in last["content"]):
        return False
    return prev["content"][0]["type"] not in ("thinking", "redacted_thinking")


# --------------------------------------------------------------------------------------------------
# Request: tools, thinking, sampling
# --------------------------------------------------------------------------------------------------


def _tool_json(tool: FunctionTool) -> JSON:
    out: JSON = {"name": tool.name, "input_schema": tool.parameters or {"type": "object", "properties": {}}}
    if tool.description is not None:
        out["description"] = tool.description
    return out


def _tools(req: CanonicalRequest, fidelity: Fidelity) -> tuple[list[JSON], JSON | None]:
    if not req.tools:
        return [], None
    choice = req.tool_choice
    tools = req.tools
    if choice.allowed is not None and choice.mode != "none":
        allowed = set(choice.allowed)
        tools = [t for t in tools if t.name in allowed]
        if not tools:
            raise invalid("tool_choice allows no tool defined in 'tools'.", "tool_choice")
    if any(t.strict for t in tools):
        fidelity.dropped.append("tools.strict")
    tool_choice: JSON
    if choice.mode == "none":
        tool_choice = {"type": "none"}
    elif choice.mode == "required":
        if choice.allowed is not None and len(tools) == 1:
            tool_choice = {"type": "tool", "name": tools[0].name}
        else:
            tool_choice = {"type": "any"}
    else:
        tool_choice = {"type": "auto"}
    if req.parallel_tool_calls is False and choice.mode != "none":
        tool_choice["disable_parallel_tool_use"] = True
    return [_tool_json(t) for t in tools], tool_choice


def _thinking_budget(
    req: CanonicalRequest, tool_choice: JSON | None, messages: list[JSON], fidelity: Fidelity
) -> int | None:
    effort = req.reasoning_effort
    if effort is None or effort == "none":
        return None
    budget = THINKING_BUDGETS.get(effort)
    if budget is None:
        raise invalid(f"Unsupported reasoning effort {effort!r}.", "reasoning.effort")
    forced = tool_choice is not None and tool_choice["type"] in ("any", "tool")
    if req.max_output_tokens is not None and budget >= req.max_output_tokens:
        budget = req.max_output_tokens // 2
    if forced or budget < MIN_THINKING_BUDGET or _tool_loop_without_thinking(messages):
        fidelity.dropped.append("reasoning.effort")
        return None
    fidelity.approximated.append("reasoning.effort")
    return budget


def _sampling(req: CanonicalRequest, body: JSON, thinking: bool, fidelity: Fidelity) -> None:
    temperature = req.temperature
    if temperature is not None:
        if thinking and temperature != 1:
            fidelity.dropped.append("temperature")
        elif temperature > 1:
            body["temperature"] = 1.0
            fidelity.approximated.append("temperature")
        else:
            body["temperature"] = temperature
    if req.top_p is not None:
        if thinking and req.top_p < 0.95:
            fidelity.dropped.append("top_p")
        else:
            body["top_p"] = req.top_p
    for key, value in req.extra.items():
        if key == "top_k" and isinstance(value, int) and not isinstance(value, bool) and not thinking:
            body["top_k"] = value
        else:
            fidelity.dropped.append(key)
    if req.stop:
        body["stop_sequences"] = list(req.stop)
    if req.user:
        body["metadata"] = {"user_id": req.user}
    if req.seed is not None:
        fidelity.dropped.append("seed")
    if req.presence_penalty:
        fidelity.dropped.append("presence_penalty")
    if req.frequency_penalty:
        fidelity.dropped.append("frequency_penalty")
    if req.top_logprobs:
        fidelity.dropped.append("top_logprobs")
    if req.service_tier not in (None, "auto", "default"):
        fidelity.dropped.append("service_tier")
    if req.prompt_cache_key is not None:
        fidelity.dropped.append("prompt_cache_key")
    if req.max_tool_calls is not None:
        fidelity.dropped.append("max_tool_calls")
    if req.truncation not in (None, "disabled"):
        fidelity.dropped.append("truncation")  # Anthropic rejects an over-long prompt instead of truncating it


def _format_instruction(req: CanonicalRequest, fidelity: Fidelity) -> str | None:
    fmt = req.text_format
    if fmt.type == "json_object":
        fidelity.approximated.append("text.format")
        return _JSON_OBJECT_INSTRUCTION
    if fmt.type == "json_schema":
        fidelity.approximated.append("text.format")
        named = f" named {fmt.name!r}" if fmt.name else ""
        about = f" ({fmt.description})" if fmt.description else ""
        return (
            f"Respond with a single JSON value only, with no other text and no code fences. It must conform "
            f"to this JSON schema{named}{about}:\n{_dumps(fmt.schema or {})}"
        )
    return None


# --------------------------------------------------------------------------------------------------
# The body
# --------------------------------------------------------------------------------------------------


def build_body(req: CanonicalRequest, model: str, fidelity: Fidelity) -> JSON:
    """The Messages request body for ``req`` sent to upstream model ``model``."""
    system, messages = convert_input(req.input, fidelity)
    if not messages:
        raise invalid("The input must contain at least one user or assistant message.", "input")
    if req.instructions:
        system.insert(0, req.instructions)
    instruction = _format_instruction(req, fidelity)
    if instruction is not None:
        system.append(instruction)
    tools, tool_choice = _tools(req, fidelity)
    budget = _thinking_budget(req, tool_choice, messages, fidelity)
    if req.max_output_tokens is not None:
        max_tokens = req.max_output_tokens
    elif budget is not None and budget >= DEFAULT_MAX_TOKENS:
        max_tokens = budget + DEFAULT_MAX_TOKENS
    else:
        max_tokens = DEFAULT_MAX_TOKENS
    body: JSON = {"model": model, "max_tokens": max_tokens, "messages": messages, "stream": req.stream}
    if system:
        body["system"] = "\n\n".join(system)
    if tools:
        body["tools"] = tools
        body["tool_choice"] = tool_choice
    if budget is not None:
        body["thinking"] = {"type": "enabled", "budget_tokens": budget}
    _sampling(req, body, budget is not None, fidelity)
    return body

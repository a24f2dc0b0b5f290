"""Canonical request -> Bedrock Converse request body (the request half of the Bedrock adapter).

The model id and the streaming switch travel in the URL (see :mod:`tollway.providers.bedrock`); the body is
the same for ``Converse`` and ``ConverseStream``. Mapping decisions:

* ``instructions`` and system/developer messages become ``system`` text blocks, in order. Consecutive turns
  of one role merge into one message (Bedrock requires alternating roles), so parallel tool results share a
  user message. Empty text is skipped (Bedrock rejects blank text blocks).
* Images must be inline: ``data:`` URLs become ``image`` blocks (png, jpeg, gif, webp); http(s) image URLs
  cannot be sent (Converse only takes bytes or S3 locations) and are dropped and reported, as is ``detail``.
  ``input_file`` data URLs of the formats Converse knows (pdf, csv, doc(x), xls(x), html, txt, md) become
  ``document`` blocks; file URLs and ids are dropped.
* ``function_call`` / ``function_call_output`` become ``toolUse`` / ``toolResult`` (without ``status``: the
  default, success, is all the canonical model knows). Call ids are made to fit Bedrock's
  ``[a-zA-Z0-9_.:-]{1,64}``, identically on both sides of a pair.
* Reasoning items whose ``encrypted_content`` is Bedrock state become ``reasoningContent`` blocks
  (``reasoningText`` with its signature, or ``redactedContent``); anything else is dropped and reported.
* Tools: ``toolConfig.tools[].toolSpec``. ``auto`` is Bedrock's default and not sent; ``required`` is
  ``{"any": {}}``; a single allowed tool with ``required`` is ``{"tool": {"name"}}`` (all tools still sent);
  a larger allowed set is enforced by sending only those tools. Bedrock has no ``none``: without tool
  history the tools are simply not sent (exact); with tool history (Bedrock rejects ``toolUse`` /
  ``toolResult`` blocks without a ``toolConfig``) the tools are sent with an instruction not to call them
  (approximated). Tool history without any tools gets minimal specs named after the calls (approximated).
  ``parallel_tool_calls: false`` has no Converse equivalent (dropped).
* ``reasoning.effort``: Anthropic models get ``additionalModelRequestFields.thinking`` with the same budgets
  and the same restrictions as the Anthropic adapter; Amazon Nova 2 gets ``reasoningConfig`` with
  ``maxReasoningEffort`` (minimal -> low, xhigh -> high); both are reported approximated. Other models have
  no reasoning switch in Converse (dropped).
* ``text.format`` json_schema uses Converse's native ``outputConfig.textFormat`` on models that support
  structured outputs (Anthropic Claude 4.5 and later, OpenAI gpt-oss, Moonshot Kimi); elsewhere, and for
  json_object, the format is appended to ``system`` as an instruction (approximated). ``strict`` tools are
  sent as ``toolSpec.strict`` on the same models and dropped elsewhere.
* ``prompt_cache_key`` has no Converse equivalent, but it signals that the client wants prompt caching,
  which Bedrock only does at explicit ``cachePoint`` markers: on models with prompt caching (Claude, Nova)
  a cache point is placed after the system prompt, after the tools and at the end of the conversation
  (approximated); elsewhere it is dropped.
* ``temperature`` is clamped to Bedrock's 0..1 (approximated above 1); ``service_tier`` priority/flex map
  to ``serviceTier``; ``user`` goes to ``requestMetadata`` (Bedrock's invocation-log tags) when it fits the
  allowed characters. ``seed``, penalties, ``top_logprobs`` and ``max_tool_calls`` are dropped.
"""

from __future__ import annotations

import hashlib
import re
from typing import Any

import orjson

from tollway.core.errors import invalid
from tollway.core.types import JSON, CanonicalRequest, Fidelity, FunctionTool, Item
from tollway.providers.anthropic_request import MIN_THINKING_BUDGET, THINKING_BUDGETS
from tollway.providers.items import TEXT_PARTS, call_arguments, own_reasoning_state, system_text

PROVIDER = "bedrock"
DEFAULT_MAX_TOKENS = 4096
NOVA_EFFORTS: dict[str, str] = {"minimal": "low", "low": "low", "medium": "medium", "high": "high", "xhigh": "high"}
NO_TOOLS_INSTRUCTION = "Do not call any tools in this turn; answer directly."
_JSON_OBJECT_INSTRUCTION = "Respond with one valid JSON object only, with no other text and no code fences."
_CACHE_POINT: JSON = {"cachePoint": {"type": "default"}}

_IMAGE_FORMATS: dict[str, str] = {
    "image/png": "png",
    "image/jpeg": "jpeg",
    "image/jpg": "jpeg",
    "image/gif": "gif",
    "image/webp": "webp",
}
_DOCUMENT_FORMATS: dict[str, str] = {
    "application/pdf": "pdf",
    "text/csv": "csv",
    "application/msword": "doc",
    "application/vnd.openxmlformats-officedocument.wordprocessingml.document": "docx",
    "application/vnd.ms-excel": "xls",
    "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet": "xlsx",
    "text/html": "html",
    "text/plain": "txt",
    "text/markdown": "md",
}
_BAD_ID_CHARS = re.compile(r"[^a-zA-Z0-9_.:-]")
_MAX_ID = 64
_BAD_DOC_NAME_CHARS = re.compile(r"[^a-zA-Z0-9\s\-()\[\]]")
_SPACES = re.compile(r"\s+")
_METADATA_VALUE = re.compile(r"[a-zA-Z0-9\s:_@$#=/+,.-]{0,256}")
# Cross-region inference profile prefixes (geography or global) before a base model id.
_GEOS = frozenset({"us", "us-gov", "eu", "apac", "au", "jp", "ca", "in", "global"})
# Claude generation in a base model id: claude-3-5-sonnet-..., claude-sonnet-4-5-..., claude-opus-4-...
_CLAUDE_VERSION = re.compile(r"claude-(?:[a-z]+-)*?(\d+)(?:-(\d)(?=-|$))?")
_NATIVE_SCHEMA_PREFIXES = ("openai.gpt-oss", "moonshot")
_SERVICE_TIERS = frozenset({"priority", "flex"})


def _dumps(value: Any) -> str:
    return orjson.dumps(value).decode()


# --------------------------------------------------------------------------------------------------
# Model families
# --------------------------------------------------------------------------------------------------


def base_model_id(model: str) -> str:
    """The foundation model id behind ``model``: ARNs lose everything up to the last ``/``, inference
    profiles their geography prefix (``us.anthropic.claude-…`` -> ``anthropic.claude-…``)."""
    base = model.rsplit("/", 1)[-1]
    head, dot, rest = base.partition(".")
    if dot and head in _GEOS and "." in rest:
        return rest
    return base


def is_claude(base: str) -> bool:
    return base.startswith("anthropic.claude")


def claude_version(base: str) -> tuple[int, int] | None:
    """``(major, minor)`` of an Anthropic Claude base model id; None for other models and unknown names."""
    if not is_claude(base):
        return None
    match = _CLAUDE_VERSION.search(base)
    if match is None:
        return None
    return int(match.group(1)), int(match.group(2) or 0)


def native_structured_output(base: str) -> bool:
    """Models with Converse structured outputs (``outputConfig.textFormat``, ``toolSpec.strict``)."""
    if is_claude(base):
        version = claude_version(base)
        return version is not None and version >= (4, 5)
    return base.startswith(_NATIVE_SCHEMA_PREFIXES)


def prompt_caching(base: str) -> bool:
    """Models with Bedrock prompt caching (``cachePoint`` blocks)."""
    if is_claude(base):
        version = claude_version(base)
        return version is not None and version >= (3, 5)
    return base.startswith("amazon.nova")


# --------------------------------------------------------------------------------------------------
# Input items -> system blocks + messages
# --------------------------------------------------------------------------------------------------


def tool_use_id(call_id: Any, param: str) -> str:
    """Bedrock tool use ids match ``[a-zA-Z0-9_.:-]{1,64}``; other ids are made to fit, the same way on the
    toolUse and the toolResult side (a too-long id becomes a digest of itself)."""
    if not isinstance(call_id, str) or not call_id:
        raise invalid("A call_id is required.", param, code="missing_required_parameter")
    fitted = _BAD_ID_CHARS.sub("_", call_id)
    if len(fitted) > _MAX_ID:
        fitted = "tw_" + hashlib.sha256(call_id.encode()).hexdigest()[:40]
    return fitted


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
    if part.get("detail") not in (None, "auto"):
        fidelity.dropped.append(f"{param}.detail")
    if url.startswith("data:"):
        media_type, data = _data_url(url, f"{param}.image_url")
        fmt = _IMAGE_FORMATS.get(media_type)
        if fmt is None:
            raise invalid(
                f"Image type {media_type!r} is not supported by this provider (png, jpeg, gif, webp).",
                f"{param}.image_url",
            )
        return {"image": {"format": fmt, "source": {"bytes": data}}}
    if url.startswith(("https://", "http://")):
        fidelity.dropped.append(f"{param} (image URL: Bedrock takes inline images only)")
        return None
    raise invalid("Image URLs must be http(s) or base64 data URLs.", f"{param}.image_url")


def _document_name(part: JSON, index: int) -> str:
    """Bedrock document names allow letters, digits, single spaces, hyphens, parentheses and brackets."""
    filename = part.get("filename")
    name = ""
    if isinstance(filename, str):
        stem = filename.rsplit(".", 1)[0] if "." in filename else filename
        name = _SPACES.sub(" ", _BAD_DOC_NAME_CHARS.sub(" ", stem)).strip()[:200]
    return name or f"document {index + 1}"


def _document_block(part: JSON, param: str, index: int, fidelity: Fidelity) -> JSON | None:
    data = part.get("file_data")
    if isinstance(data, str) and data.startswith("data:"):
        media_type, payload = _data_url(data, f"{param}.file_data")
        fmt = _DOCUMENT_FORMATS.get(media_type)
        if fmt is not None:
            return {"document": {"format": fmt, "name": _document_name(part, index), "source": {"bytes": payload}}}
    fidelity.dropped.append(f"{param} (input_file)")
    return None


def _content_blocks(content: Any, param: str, fidelity: Fidelity) -> list[JSON]:
    if isinstance(content, str):
        return [{"text": content}] if content else []
    blocks: list[JSON] = []
    if not isinstance(content, list):
        return blocks
    for j, part in enumerate(content):
        if not isinstance(part, dict):
            fidelity.dropped.append(f"{param}[{j}]")
            continue
        ptype = part.get("type")
        block: JSON | None = None
        if ptype in TEXT_PARTS:
            text = part.get("text")
            if text:
                block = {"text": text}
        elif ptype == "refusal":
            if part.get("refusal"):
                block = {"text": part["refusal"]}
        elif ptype == "input_image":
            block = _image_block(part, f"{param}[{j}]", fidelity)
        elif ptype == "input_file":
            block = _document_block(part, f"{param}[{j}]", j, fidelity)
        else:
            fidelity.dropped.append(f"{param}[{j}] ({ptype})")
        if block is not None:
            blocks.append(block)
    return blocks


def _tool_use_block(item: Item, param: str) -> JSON:
    args = call_arguments(item, param)
    return {
        "toolUse": {
            "toolUseId": tool_use_id(item.get("call_id"), f"{param}.call_id"),
            "name": item.get("name"),
            "input": args,
        }
    }


def _tool_result_block(item: Item, param: str, fidelity: Fidelity) -> JSON:
    output = item.get("output")
    content: list[JSON]
    if isinstance(output, list):
        content = _content_blocks(output, f"{param}.output", fidelity)
    elif output is None or output == "":
        content = []
    else:
        content = [{"text": output if isinstance(output, str) else _dumps(output)}]
    return {"toolResult": {"toolUseId": tool_use_id(item.get("call_id"), f"{param}.call_id"), "content": content}}


def _reasoning_block(item: Item, param: str, fidelity: Fidelity) -> JSON | None:
    state = own_reasoning_state(item, param, PROVIDER, fidelity)
    if state is None:
        return None
    redacted = state.get("redacted")
    if isinstance(redacted, str) and redacted:
        return {"reasoningContent": {"redactedContent": redacted}}
    signature = state.get("signature")
    if not isinstance(signature, str) or not signature:
        fidelity.dropped.append(f"{param}.reasoning (corrupt state)")
        return None
    parts = item.get("content") or item.get("summary") or []
    text = "\n\n".join(p.get("text") or "" for p in parts if isinstance(p, dict))
    return {"reasoningContent": {"reasoningText": {"text": text, "signature": signature}}}


def convert_input(items: list[Item], fidelity: Fidelity) -> tuple[list[str], list[JSON], list[str]]:
    """Canonical input -> (system texts, Converse messages with consecutive same-role turns merged, names of
    the tools called in the history)."""
    system: list[str] = []
    messages: list[JSON] = []
    called: list[str] = []

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
            block = _tool_use_block(item, param)
            name = block["toolUse"]["name"]
            if isinstance(name, str) and name not in called:
                called.append(name)
            push("assistant", [block])
        elif itype == "function_call_output":
            push("user", [_tool_result_block(item, param, fidelity)])
        elif itype == "reasoning":
            reasoning = _reasoning_block(item, param, fidelity)
            if reasoning is not None:
                push("assistant", [reasoning])
        else:
            fidelity.dropped.append(f"{param} ({itype})")
    return system, messages, called


def _has_tool_blocks(messages: list[JSON]) -> bool:
    return any("toolUse" in b or "toolResult" in b for m in messages for b in m["content"])


def _tool_loop_without_reasoning(messages: list[JSON]) -> bool:
    """True when the conversation continues a tool loop whose assistant turn has no reasoning block: with
    thinking enabled, Claude requires that turn to start with one."""
    if len(messages) < 2:
        return False
    last, prev = messages[-1], messages[-2]
    if last["role"] != "user" or prev["role"] != "assistant":
        return False
    if not any("toolResult" in b for b in last["content"]):
        return False
    return "reasoningContent" not in prev["content"][0]


# --------------------------------------------------------------------------------------------------
# Tools, reasoning, sampling, output format
# --------------------------------------------------------------------------------------------------


def _tool_spec(tool: FunctionTool, strict: bool) -> JSON:
    spec: JSON = {"name": tool.name}
    if tool.description:
        spec["description"] = tool.description
    spec["inputSchema"] = {"json": tool.parameters or {"type": "object", "properties": {}}}
    if strict and tool.strict:
        spec["strict"] = True
    return {"toolSpec": spec}


def _tool_config(
    req: CanonicalRequest, messages: list[JSON], called: list[str], native: bool, fidelity: Fidelity
) -> tuple[JSON | None, bool]:
    """``(toolConfig or None, whether the model must be told not to call tools)``."""
    history = _has_tool_blocks(messages)
    if not req.tools:
        if not history:
            return None, False
        fidelity.approximated.append("tools")
        specs = [{"toolSpec": {"name": n, "inputSchema": {"json": {"type": "object"}}}} for n in called]
        return {"tools": specs}, True
    choice = req.tool_choice
    tools = req.tools
    if choice.mode == "none":
        if not history:
            return None, False
        fidelity.approximated.append("tool_choice")
        return {"tools": [_tool_spec(t, False) for t in tools]}, True
    forced: str | None = None  # a single required tool: enforced by toolChoice.tool, every tool still sent
    if choice.allowed is not None:
        allowed = set(choice.allowed)
        subset = [t for t in tools if t.name in allowed]
        if not subset:
            raise invalid("tool_choice allows no tool defined in 'tools'.", "tool_choice")
        if choice.mode == "required" and len(subset) == 1:
            forced = subset[0].name
        else:
            tools = subset
    if any(t.strict for t in tools) and not native:
        fidelity.dropped.append("tools.strict")
    config: JSON = {"tools": [_tool_spec(t, native) for t in tools]}
    if forced is not None:
        config["toolChoice"] = {"tool": {"name": forced}}
    elif choice.mode == "required":
        config["toolChoice"] = {"any": {}}
    if req.parallel_tool_calls is False:
        fidelity.dropped.append("parallel_tool_calls")
    return config, False


def _claude_budget(req: CanonicalRequest, config: JSON | None, messages: list[JSON], fidelity: Fidelity) -> int | None:
    effort = req.reasoning_effort
    budget = THINKING_BUDGETS.get(effort or "")
    if budget is None:
        raise invalid(f"Unsupported reasoning effort {effort!r}.", "reasoning.effort")
    forced = config is not None and "toolChoice" in config
    if req.max_output_tokens is not None and budget >= req.max_output_tokens:
        budget = req.max_output_tokens // 2
    if forced or budget < MIN_THINKING_BUDGET or _tool_loop_without_reasoning(messages):
        fidelity.dropped.append("reasoning.effort")
        return None
    fidelity.approximated.append("reasoning.effort")
    return budget


def _reasoning_fields(
    req: CanonicalRequest, base: str, config: JSON | None, messages: list[JSON], fidelity: Fidelity
) -> tuple[JSON, int | None]:
    """``(additionalModelRequestFields, Claude thinking budget or None)``."""
    effort = req.reasoning_effort
    if effort is None or effort == "none":
        return {}, None
    if is_claude(base):
        budget = _claude_budget(req, config, messages, fidelity)
        if budget is None:
            return {}, None
        return {"thinking": {"type": "enabled", "budget_tokens": budget}}, budget
    if base.startswith("amazon.nova-2"):
        level = NOVA_EFFORTS.get(effort)
        if level is None:
            raise invalid(f"Unsupported reasoning effort {effort!r}.", "reasoning.effort")
        fidelity.approximated.append("reasoning.effort")
        return {"reasoningConfig": {"type": "enabled", "maxReasoningEffort": level}}, None
    fidelity.dropped.append("reasoning.effort")
    return {}, None


def _inference_config(req: CanonicalRequest, budget: int | None, fidelity: Fidelity) -> JSON:
    config: JSON = {}
    if req.max_output_tokens is not None:
        config["maxTokens"] = req.max_output_tokens
    elif budget is not None and budget >= DEFAULT_MAX_TOKENS:
        config["maxTokens"] = budget + DEFAULT_MAX_TOKENS  # Claude counts thinking inside maxTokens
    thinking = budget is not None
    temperature = req.temperature
    if temperature is not None:
        if thinking and temperature != 1:
            fidelity.dropped.append("temperature")
        elif temperature > 1:
            config["temperature"] = 1.0
            fidelity.approximated.append("temperature")
        else:
            config["temperature"] = temperature
    if req.top_p is not None:
        if thinking and req.top_p < 0.95:
            fidelity.dropped.append("top_p")
        else:
            config["topP"] = req.top_p
    if req.stop:
        config["stopSequences"] = [s for s in req.stop if s]
    return config


def _unsupported(req: CanonicalRequest, body: JSON, fidelity: Fidelity) -> None:
    if req.seed is not None:
        fidelity.dropped.append("seed")
    if req.presence_penalty:
        fidelity.dropped.append("presence_penalty")
    if req.frequency_penalty:
        fidelity.dropped.append("frequency_penalty")
    if req.top_logprobs:
        fidelity.dropped.append("top_logprobs")
    if req.max_tool_calls is not None:
        fidelity.dropped.append("max_tool_calls")
    tier = req.service_tier
    if tier in _SERVICE_TIERS:
        body["serviceTier"] = {"type": tier}
    elif tier not in (None, "auto", "default"):
        fidelity.dropped.append("service_tier")
    if req.user:
        if _METADATA_VALUE.fullmatch(req.user):
            body["requestMetadata"] = {"user": req.user}
        else:
            fidelity.dropped.append("user")


def _output_format(req: CanonicalRequest, native: bool, fidelity: Fidelity) -> tuple[JSON | None, str | None]:
    """``(outputConfig or None, system instruction or None)`` for ``text.format``."""
    fmt = req.text_format
    if fmt.type == "json_object":
        fidelity.approximated.append("text.format")
        return None, _JSON_OBJECT_INSTRUCTION
    if fmt.type != "json_schema":
        return None, None
    if native:
        schema: JSON = {"schema": _dumps(fmt.schema or {})}
        if fmt.name:
            schema["name"] = fmt.name
        if fmt.description:
            schema["description"] = fmt.description
        return {"textFormat": {"type": "json_schema", "structure": {"jsonSchema": schema}}}, None
    fidelity.approximated.append("text.format")
    named = f" named {fmt.name!r}" if fmt.name else ""
    about = f" ({fmt.description})" if fmt.description else ""
    return None, (
        f"Respond with a single JSON value only, with no other text and no code fences. It must conform "
        f"to this JSON schema{named}{about}:\n{_dumps(fmt.schema or {})}"
    )


def _cache_points(
    req: CanonicalRequest,
    base: str,
    system: list[JSON],
    config: JSON | None,
    messages: list[JSON],
    fidelity: Fidelity,
) -> None:
    if req.prompt_cache_key is None:
        return
    if not prompt_caching(base):
        fidelity.dropped.append("prompt_cache_key")
        return
    fidelity.approximated.append("prompt_cache_key")
    if system:
        system.append(dict(_CACHE_POINT))
    if config is not None:
        config["tools"].append(dict(_CACHE_POINT))
    messages[-1]["content"].append(dict(_CACHE_POINT))


# --------------------------------------------------------------------------------------------------
# The body
# --------------------------------------------------------------------------------------------------


def build_body(req: CanonicalRequest, model: str, fidelity: Fidelity) -> JSON:
    """The Converse / ConverseStream request body for ``req`` sent to Bedrock model ``model``."""
    base = base_model_id(model)
    native = native_structured_output(base)
    texts, messages, called = convert_input(req.input, fidelity)
    if not messages:
        raise invalid("The input must contain at least one user or assistant message.", "input")
    if req.instructions:
        texts.insert(0, req.instructions)
    config, no_tools = _tool_config(req, messages, called, native, fidelity)
    if no_tools:
        texts.append(NO_TOOLS_INSTRUCTION)
    output_config, instruction = _output_format(req, native, fidelity)
    if instruction is not None:
        texts.append(instruction)
    additional, budget = _reasoning_fields(req, base, config, messages, fidelity)
    system: list[JSON] = [{"text": t} for t in texts if t]
    _cache_points(req, base, system, config, messages, fidelity)

    body: JSON = {"messages": messages}
    if system:
        body["system"] = system
    inference = _inference_config(req, budget, fidelity)
    if inference:
        body["inferenceConfig"] = inference
    if config is not None:
        body["toolConfig"] = config
    if additional:
        body["additionalModelRequestFields"] = additional
    if output_config is not None:
        body["outputConfig"] = output_config
    _unsupported(req, body, fidelity)
    return body

"""Open Responses request body → :class:`CanonicalRequest`.

Input is accepted leniently (string input, messages without ``type``, OpenAI chat-style parts); every
other field is checked, and a bad one is a 400 naming its path. Unknown top-level fields are refused,
as OpenAI does, so a typo never silently changes behaviour.
"""

from __future__ import annotations

from typing import Any

from tollway.core.errors import GatewayError, invalid
from tollway.core.types import CanonicalRequest, FunctionTool, Item, TextFormat, ToolChoice

KNOWN_FIELDS = frozenset({
    "model", "input", "previous_response_id", "include", "tools", "tool_choice", "metadata", "text",
    "temperature", "top_p", "presence_penalty", "frequency_penalty", "parallel_tool_calls", "stream",
    "stream_options", "background", "max_output_tokens", "max_tool_calls", "reasoning", "safety_identifier",
    "prompt_cache_key", "truncation", "instructions", "store", "service_tier", "top_logprobs", "user",
})
INCLUDE_VALUES = frozenset({"reasoning.encrypted_content", "message.output_text.logprobs"})
ROLES = frozenset({"user", "assistant", "system", "developer"})
EFFORTS = frozenset({"none", "minimal", "low", "medium", "high", "xhigh"})
SUMMARIES = frozenset({"auto", "concise", "detailed"})


def _type_name(v: object) -> str:
    return "null" if v is None else type(v).__name__


def _str(body: dict[str, Any], key: str, *, required: bool = False) -> str | None:
    v = body.get(key)
    if v is None:
        if required:
            raise invalid(f"Missing required parameter: '{key}'.", key, "missing_required_parameter")
        return None
    if not isinstance(v, str):
        raise invalid(f"Invalid type for '{key}': expected a string, got {_type_name(v)}.", key, "invalid_type")
    return v


def _bool(body: dict[str, Any], key: str) -> bool | None:
    v = body.get(key)
    if v is None:
        return None
    if not isinstance(v, bool):
        raise invalid(f"Invalid type for '{key}': expected a boolean, got {_type_name(v)}.", key, "invalid_type")
    return v


def _number(body: dict[str, Any], key: str, lo: float, hi: float) -> float | None:
    v = body.get(key)
    if v is None:
        return None
    if isinstance(v, bool) or not isinstance(v, int | float):
        raise invalid(f"Invalid type for '{key}': expected a number, got {_type_name(v)}.", key, "invalid_type")
    if not lo <= v <= hi:
        raise invalid(f"Invalid value for '{key}': {v} is outside [{lo}, {hi}].", key)
    return float(v)


def _int(body: dict[str, Any], key: str, lo: int, param: str | None = None) -> int | None:
    v = body.get(key)
    if v is None:
        return None
    if isinstance(v, bool) or not isinstance(v, int):
        raise invalid(f"Invalid type for '{param or key}': expected an integer, got {_type_name(v)}.",
                      param or key, "invalid_type")
    if v < lo:
        raise invalid(f"Invalid value for '{param or key}': must be >= {lo}, got {v}.", param or key)
    return int(v)


def _text_part(part: Any, path: str, role: str) -> dict[str, Any]:
    if isinstance(part, str):
        if role == "assistant":
            return {"type": "output_text", "text": part, "annotations": []}
        return {"type": "input_text", "text": part}
    if not isinstance(part, dict):
        raise invalid(f"Invalid content part at '{path}': expected an object, got {_type_name(part)}.", path,
                      "invalid_type")
    kind = part.get("type")
    if kind in ("input_text", "output_text", "text", "summary_text", "reasoning_text"):
        text = part.get("text")
        if not isinstance(text, str):
            raise invalid(f"Missing or invalid '{path}.text': expected a string.", f"{path}.text", "invalid_type")
        if role == "assistant":
            return {"type": "output_text", "text": text, "annotations": part.get("annotations") or []}
        return {"type": "input_text", "text": text}
    if kind == "refusal":
        text = part.get("refusal")
        if not isinstance(text, str):
            raise invalid(f"Missing or invalid '{path}.refusal'.", f"{path}.refusal", "invalid_type")
        return {"type": "refusal", "refusal": text}
    if kind in ("input_image", "image_url"):
        url = part.get("image_url")
        detail = part.get("detail")
        if isinstance(url, dict):  # chat style {"image_url": {"url", "detail"}}
            detail = url.get("detail", detail)
            url = url.get("url")
        if not isinstance(url, str) or not url:
            if part.get("file_id"):
                raise invalid("Image file_id references are not supported; send image_url (URL or data URL).",
                              f"{path}.file_id", "unsupported_value")
            raise invalid(f"Missing '{path}.image_url': expected a URL or data URL.", f"{path}.image_url")
        if detail not in (None, "auto", "low", "high"):
            raise invalid(f"Invalid '{path}.detail': {detail!r}.", f"{path}.detail")
        return {"type": "input_image", "image_url": url, "detail": detail or "auto"}
    raise invalid(f"Unsupported content part type {kind!r} at '{path}.type'.", f"{path}.type", "unsupported_value")


def _message(item: dict[str, Any], path: str) -> Item:
    role = item.get("role")
    if role not in ROLES:
        raise invalid(f"Invalid '{path}.role': {role!r}; expected one of {sorted(ROLES)}.", f"{path}.role")
    content = item.get("content")
    if isinstance(content, str):
        parts = [_text_part(content, f"{path}.content", role)]
    elif isinstance(content, list):
        parts = [_text_part(p, f"{path}.content[{i}]", role) for i, p in enumerate(content)]
    else:
        raise invalid(f"Invalid '{path}.content': expected a string or an array of parts.", f"{path}.content",
                      "invalid_type")
    out: Item = {"type": "message", "role": role, "content": parts}
    for key in ("id", "status"):
        if isinstance(item.get(key), str):
            out[key] = item[key]
    phase = item.get("phase")
    if phase is not None:
        if phase not in ("commentary", "final_answer"):
            raise invalid(f"Invalid '{path}.phase': {phase!r}.", f"{path}.phase")
        out["phase"] = phase
    return out


def _req_str(item: dict[str, Any], key: str, path: str) -> str:
    v = item.get(key)
    if not isinstance(v, str):
        raise invalid(f"Missing or invalid '{path}.{key}': expected a string.", f"{path}.{key}", "invalid_type")
    return v


def _item(item: Any, path: str) -> Item:
    if not isinstance(item, dict):
        raise invalid(f"Invalid '{path}': expected an object, got {_type_name(item)}.", path, "invalid_type")
    kind = item.get("type", "message" if "role" in item else None)
    if kind == "message":
        return _message(item, path)
    if kind == "function_call":
        out: Item = {"type": "function_call", "call_id": _req_str(item, "call_id", path),
                     "name": _req_str(item, "name", path), "arguments": _req_str(item, "arguments", path)}
    elif kind == "function_call_output":
        output = item.get("output")
        if isinstance(output, list):
            output = "".join(p.get("text", "") for p in output if isinstance(p, dict))
        if not isinstance(output, str):
            raise invalid(f"Missing or invalid '{path}.output'.", f"{path}.output", "invalid_type")
        out = {"type": "function_call_output", "call_id": _req_str(item, "call_id", path), "output": output}
    elif kind == "reasoning":
        out = {"type": "reasoning",
               "summary": [_text_part(p, f"{path}.summary[{i}]", "user") for i, p in
                           enumerate(item.get("summary") or [])],
               "content": [_text_part(p, f"{path}.content[{i}]", "user") for i, p in
                           enumerate(item.get("content") or [])]}
        for p in out["summary"]:
            p["type"] = "summary_text"
        for p in out["content"]:
            p["type"] = "reasoning_text"
        enc = item.get("encrypted_content")
        if enc is not None:
            if not isinstance(enc, str):
                raise invalid(f"Invalid '{path}.encrypted_content'.", f"{path}.encrypted_content", "invalid_type")
            out["encrypted_content"] = enc
    elif kind is None:
        raise invalid(f"Missing '{path}.type'.", f"{path}.type", "missing_required_parameter")
    else:
        raise invalid(f"Unsupported input item type {kind!r} at '{path}.type'.", f"{path}.type", "unsupported_value")
    if isinstance(item.get("id"), str):
        out["id"] = item["id"]
    return out


def parse_input(value: Any) -> list[Item]:
    if isinstance(value, str):
        return [{"type": "message", "role": "user", "content": [{"type": "input_text", "text": value}]}]
    if not isinstance(value, list):
        raise invalid(f"Invalid type for 'input': expected a string or an array, got {_type_name(value)}.",
                      "input", "invalid_type")
    return [_item(it, f"input[{i}]") for i, it in enumerate(value)]


def _tools(value: Any) -> list[FunctionTool]:
    if value is None:
        return []
    if not isinstance(value, list):
        raise invalid("Invalid type for 'tools': expected an array.", "tools", "invalid_type")
    tools: list[FunctionTool] = []
    seen: set[str] = set()
    for i, t in enumerate(value):
        path = f"tools[{i}]"
        if not isinstance(t, dict):
            raise invalid(f"Invalid '{path}': expected an object.", path, "invalid_type")
        if t.get("type") != "function":
            raise invalid(f"Unsupported tool type {t.get('type')!r} at '{path}.type': only 'function' tools are "
                          "supported.", f"{path}.type", "unsupported_value")
        nested = t.get("function")
        fn: dict[str, Any] = nested if isinstance(nested, dict) else t  # tolerate chat-style nesting
        name = fn.get("name")
        if not isinstance(name, str) or not name:
            raise invalid(f"Missing '{path}.name'.", f"{path}.name", "missing_required_parameter")
        if name in seen:
            raise invalid(f"Duplicate tool name {name!r} at '{path}.name'.", f"{path}.name")
        seen.add(name)
        params = fn.get("parameters")
        if params is not None and not isinstance(params, dict):
            raise invalid(f"Invalid '{path}.parameters': expected a JSON schema object.", f"{path}.parameters")
        desc = fn.get("description")
        strict = fn.get("strict")
        if strict is not None and not isinstance(strict, bool):
            raise invalid(f"Invalid '{path}.strict': expected a boolean.", f"{path}.strict", "invalid_type")
        tools.append(FunctionTool(name, desc if isinstance(desc, str) else None, params, strict))
    return tools


def _tool_names(value: Any, path: str, known: set[str]) -> list[str]:
    if not isinstance(value, list) or not value:
        raise invalid(f"Invalid '{path}': expected a non-empty array of tools.", path)
    names = []
    for i, t in enumerate(value):
        name = t.get("name") if isinstance(t, dict) else None
        if not isinstance(name, str):
            raise invalid(f"Missing '{path}[{i}].name'.", f"{path}[{i}].name")
        if name not in known:
            raise invalid(f"'{path}[{i}].name' names {name!r}, which is not in 'tools'.", f"{path}[{i}].name")
        names.append(name)
    return names


def _tool_choice(value: Any, tools: list[FunctionTool]) -> ToolChoice:
    if value is None:
        return ToolChoice()
    if value in ("auto", "none", "required"):
        return ToolChoice(mode=value, raw=value)
    known = {t.name for t in tools}
    if isinstance(value, dict):
        kind = value.get("type")
        if kind == "function":
            name = value.get("name")
            if not isinstance(name, str) or name not in known:
                raise invalid(f"'tool_choice.name' names {name!r}, which is not in 'tools'.", "tool_choice.name")
            return ToolChoice(mode="required", allowed=[name], raw={"type": "function", "name": name})
        if kind == "allowed_tools":
            mode = value.get("mode", "auto")
            if mode not in ("auto", "required"):
                raise invalid(f"Invalid 'tool_choice.mode': {mode!r}.", "tool_choice.mode")
            names = _tool_names(value.get("tools"), "tool_choice.tools", known)
            raw = {"type": "allowed_tools", "mode": mode, "tools": [{"type": "function", "name": n} for n in names]}
            return ToolChoice(mode=mode, allowed=names, raw=raw)
    raise invalid(f"Invalid 'tool_choice': {value!r}.", "tool_choice")


def _text_format(value: Any) -> TextFormat:
    if value is None:
        return TextFormat()
    if not isinstance(value, dict):
        raise invalid("Invalid type for 'text': expected an object.", "text", "invalid_type")
    fmt = value.get("format")
    if fmt is None:
        return TextFormat()
    if not isinstance(fmt, dict):
        raise invalid("Invalid type for 'text.format': expected an object.", "text.format", "invalid_type")
    kind = fmt.get("type")
    if kind in ("text", "json_object"):
        return TextFormat(type=kind)
    if kind == "json_schema":
        name = fmt.get("name")
        schema = fmt.get("schema")
        if not isinstance(name, str) or not name:
            raise invalid("Missing 'text.format.name'.", "text.format.name", "missing_required_parameter")
        if not isinstance(schema, dict):
            raise invalid("Missing or invalid 'text.format.schema': expected a JSON schema object.",
                          "text.format.schema", "missing_required_parameter")
        strict = fmt.get("strict")
        desc = fmt.get("description")
        return TextFormat("json_schema", name, schema, strict if isinstance(strict, bool) else None,
                          desc if isinstance(desc, str) else None)
    raise invalid(f"Invalid 'text.format.type': {kind!r}.", "text.format.type")


def _metadata(value: Any) -> dict[str, str] | None:
    if value is None:
        return None
    if not isinstance(value, dict):
        raise invalid("Invalid type for 'metadata': expected an object.", "metadata", "invalid_type")
    if len(value) > 16:
        raise invalid("'metadata' may hold at most 16 keys.", "metadata")
    for k, v in value.items():
        if len(k) > 64:
            raise invalid(f"'metadata' key {k[:20]!r}… is longer than 64 characters.", f"metadata.{k}")
        if not isinstance(v, str) or len(v) > 512:
            raise invalid(f"'metadata.{k}' must be a string of at most 512 characters.", f"metadata.{k}")
    return dict(value)


def parse_responses_request(body: Any) -> CanonicalRequest:
    if not isinstance(body, dict):
        raise invalid(f"Request body must be a JSON object, got {_type_name(body)}.", None, "invalid_json")
    unknown = [k for k in body if k not in KNOWN_FIELDS]
    if unknown:
        raise invalid(f"Unrecognized request argument supplied: {unknown[0]}.", unknown[0], "unknown_parameter")
    model = _str(body, "model", required=True)
    assert model is not None
    if "input" not in body and body.get("previous_response_id") is None:
        raise invalid("Missing required parameter: 'input'.", "input", "missing_required_parameter")
    items = parse_input(body.get("input", []))
    tools = _tools(body.get("tools"))
    reasoning = body.get("reasoning")
    effort = summary = None
    if reasoning is not None:
        if not isinstance(reasoning, dict):
            raise invalid("Invalid type for 'reasoning': expected an object.", "reasoning", "invalid_type")
        effort = reasoning.get("effort")
        summary = reasoning.get("summary")
        if effort is not None and effort not in EFFORTS:
            raise invalid(f"Invalid 'reasoning.effort': {effort!r}.", "reasoning.effort")
        if summary is not None and summary not in SUMMARIES:
            raise invalid(f"Invalid 'reasoning.summary': {summary!r}.", "reasoning.summary")
    include = body.get("include") or []
    if not isinstance(include, list) or any(not isinstance(v, str) for v in include):
        raise invalid("Invalid type for 'include': expected an array of strings.", "include", "invalid_type")
    for i, v in enumerate(include):
        if v not in INCLUDE_VALUES:
            raise invalid(f"Unsupported 'include' value {v!r}.", f"include[{i}]", "unsupported_value")
    truncation = _str(body, "truncation")
    if truncation not in (None, "auto", "disabled"):
        raise invalid(f"Invalid 'truncation': {truncation!r}.", "truncation")
    if body.get("background") is True:
        raise GatewayError(400, "Background responses are not supported by this gateway.", param="background",
                           code="unsupported_value")
    instructions = body.get("instructions")
    if instructions is not None and not isinstance(instructions, str):
        raise invalid("Invalid type for 'instructions': expected a string.", "instructions", "invalid_type")
    store = _bool(body, "store")
    stream = _bool(body, "stream")
    if body.get("stream_options") is not None and not stream:
        raise invalid("'stream_options' is only allowed when 'stream' is true.", "stream_options")
    return CanonicalRequest(
        model=model,
        input=items,
        instructions=instructions,
        tools=tools,
        tool_choice=_tool_choice(body.get("tool_choice"), tools),
        text_format=_text_format(body.get("text")),
        reasoning_effort=effort,
        reasoning_summary=summary,
        max_output_tokens=_int(body, "max_output_tokens", 1),
        temperature=_number(body, "temperature", 0, 2),
        top_p=_number(body, "top_p", 0, 1),
        presence_penalty=_number(body, "presence_penalty", -2, 2),
        frequency_penalty=_number(body, "frequency_penalty", -2, 2),
        parallel_tool_calls=_bool(body, "parallel_tool_calls"),
        include=include,
        metadata=_metadata(body.get("metadata")),
        store=True if store is None else store,
        stream=bool(stream),
        previous_response_id=_str(body, "previous_response_id"),
        truncation=truncation,
        user=_str(body, "safety_identifier") or _str(body, "user"),
        prompt_cache_key=_str(body, "prompt_cache_key"),
        service_tier=_str(body, "service_tier"),
        top_logprobs=_int(body, "top_logprobs", 0),
        max_tool_calls=_int(body, "max_tool_calls", 1),
    )

"""Chat Completions front door, request side: ``POST /v1/chat/completions`` body -> :class:`CanonicalRequest`.

Chat is translated into canonical (Open Responses) items here and never used as the internal pivot.
Every client mistake is a 400 :func:`~tollway.core.errors.invalid` naming the exact field path
(``messages[2].content[0].image_url.url``, ``tools[0].function.name``, ``temperature``...).

Mapping notes (what the rest of the pipeline can rely on):

* system / developer / user messages become ``message`` items with ``input_text`` / ``input_image`` parts;
  ``instructions`` stays ``None`` (system messages stay items, in order).
* an assistant message becomes a ``message`` item (``output_text`` / ``refusal`` parts; omitted when it has
  no parts) followed by one ``function_call`` item per tool call; a tool message becomes a
  ``function_call_output`` item (text parts joined).
* ``store`` is always ``False`` on the canonical request: chat completions are not stored for
  ``previous_response_id``. A client's ``store: true`` is kept in ``extra["store"]`` so it is reported.
* ``extra`` holds every accepted field without a canonical slot under the client's name (``logit_bias``,
  ``modalities``, ``audio``, ``prediction``, ``web_search_options``, ``functions``, ``verbosity``,
  ``logprobs`` when true, any unknown field...), plus per-message fields we drop under their path
  (``messages[3].name``, ``messages[0].content[1].prompt_cache_breakpoint``). The pipeline reports these
  in ``fidelity.dropped`` -- except the keys in :data:`DOOR_EXTRA_KEYS`, which the door itself consumes:
  ``stream_options`` (the validated object, read by the stream encoder through :func:`include_usage`).
"""

from __future__ import annotations

import re
from typing import Any, Literal, NoReturn

from tollway.core.errors import invalid
from tollway.core.types import CanonicalRequest, FunctionTool, Item, TextFormat, ToolChoice

# Keys the chat door puts in ``CanonicalRequest.extra`` for its own use; not to be reported as dropped.
DOOR_EXTRA_KEYS = frozenset({"stream_options"})

_NAME_RE = re.compile(r"^[a-zA-Z0-9_-]{1,64}$")
_ROLES = ("system", "developer", "user", "assistant", "tool")
_IMAGE_DETAILS = frozenset({"auto", "low", "high"})
_REASONING_EFFORTS = frozenset({"none", "minimal", "low", "medium", "high", "xhigh", "max"})
_SERVICE_TIERS = frozenset({"auto", "default", "flex", "scale", "priority", "fast"})
_TOOL_CHOICE_MODES: dict[str, Literal["auto", "none", "required"]] = {
    "auto": "auto",
    "none": "none",
    "required": "required",
}
_MAX_METADATA = 16

# Top-level fields this module consumes; everything else (non-null) lands in ``extra``.
_HANDLED = frozenset(
    {
        "model",
        "messages",
        "temperature",
        "top_p",
        "n",
        "stream",
        "stream_options",
        "max_tokens",
        "max_completion_tokens",
        "presence_penalty",
        "frequency_penalty",
        "stop",
        "seed",
        "user",
        "safety_identifier",
        "reasoning_effort",
        "metadata",
        "store",
        "tools",
        "tool_choice",
        "parallel_tool_calls",
        "response_format",
        "logprobs",
        "top_logprobs",
        "logit_bias",
        "prompt_cache_key",
        "service_tier",
    }
)

_PartKind = Literal["user", "system", "assistant"]
_PART_TYPES = {"user": "'text' or 'image_url'", "system": "'text'", "assistant": "'text' or 'refusal'"}


# --------------------------------------------------------------------------------------------------
# error helpers
# --------------------------------------------------------------------------------------------------


def _kind(value: object) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, int | float):
        return "a number"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, list):
        return "an array"
    if isinstance(value, dict):
        return "an object"
    return type(value).__name__


def _bad_type(param: str, expected: str, value: object) -> NoReturn:
    raise invalid(
        f"Invalid type for '{param}': expected {expected}, but got {_kind(value)} instead.",
        param=param,
        code="invalid_type",
    )


def _bad_value(param: str, message: str, code: str = "invalid_value") -> NoReturn:
    raise invalid(f"Invalid value for '{param}': {message}", param=param, code=code)


def _missing(param: str) -> NoReturn:
    raise invalid(f"Missing required parameter: '{param}'.", param=param, code="missing_required_parameter")


# --------------------------------------------------------------------------------------------------
# scalar readers (``None`` means absent; bool is never a number)
# --------------------------------------------------------------------------------------------------


def _opt_str(value: object, param: str) -> str | None:
    if value is None or isinstance(value, str):
        return value
    _bad_type(param, "a string", value)


def _req_str(value: object, param: str) -> str:
    if isinstance(value, str):
        return value
    if value is None:
        _missing(param)
    _bad_type(param, "a string", value)


def _opt_bool(value: object, param: str) -> bool | None:
    if value is None or isinstance(value, bool):
        return value
    _bad_type(param, "a boolean", value)


def _opt_num(value: object, param: str, lo: float, hi: float) -> float | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float):
        _bad_type(param, "a number", value)
    if not lo <= value <= hi:
        _bad_value(param, f"expected a number between {lo:g} and {hi:g}, but got {value}.")
    return float(value)


def _opt_int(value: object, param: str, lo: int | None = None, hi: int | None = None) -> int | None:
    if value is None:
        return None
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    if isinstance(value, bool) or not isinstance(value, int):
        _bad_type(param, "an integer", value)
    if lo is not None and value < lo:
        _bad_value(param, f"expected an integer >= {lo}, but got {value}.")
    if hi is not None and value > hi:
        _bad_value(param, f"expected an integer <= {hi}, but got {value}.")
    return value


def _opt_enum(value: object, param: str, allowed: frozenset[str]) -> str | None:
    text = _opt_str(value, param)
    if text is not None and text not in allowed:
        _bad_value(param, f"'{text}' is not one of {sorted(allowed)}.", code="unsupported_value")
    return text


def _obj(value: object, param: str) -> dict[str, Any]:
    if isinstance(value, dict):
        return value
    if value is None:
        _missing(param)
    _bad_type(param, "an object", value)


# --------------------------------------------------------------------------------------------------
# messages
# --------------------------------------------------------------------------------------------------


def _image_part(part: dict[str, Any], p: str) -> Item:
    image = _obj(part.get("image_url"), f"{p}.image_url")
    url = _req_str(image.get("url"), f"{p}.image_url.url")
    if not url:
        _bad_value(f"{p}.image_url.url", "expected a non-empty URL or data: URL.")
    detail = _opt_enum(image.get("detail"), f"{p}.image_url.detail", _IMAGE_DETAILS)
    return {"type": "input_image", "image_url": url, "detail": detail or "auto"}


def _parts(content: object, p: str, kind: _PartKind, extra: dict[str, Any]) -> list[Item]:
    """Content (string or list of parts) of a system/developer/user/assistant message -> canonical parts."""
    if isinstance(content, str):
        if kind == "assistant":
            return [{"type": "output_text", "text": content, "annotations": []}]
        return [{"type": "input_text", "text": content}]
    if not isinstance(content, list):
        if content is None:
            _missing(f"{p}.content")
        _bad_type(f"{p}.content", "a string or an array of content parts", content)
    if not content:
        _bad_value(f"{p}.content", "expected a non-empty array of content parts.", code="empty_array")
    out: list[Item] = []
    for j, part in enumerate(content):
        pp = f"{p}.content[{j}]"
        if not isinstance(part, dict):
            _bad_type(pp, "an object", part)
        ptype = part.get("type")
        if ptype == "text":
            text = _req_str(part.get("text"), f"{pp}.text")
            if kind == "assistant":
                out.append({"type": "output_text", "text": text, "annotations": []})
            else:
                out.append({"type": "input_text", "text": text})
        elif ptype == "image_url" and kind == "user":
            out.append(_image_part(part, pp))
        elif ptype == "refusal" and kind == "assistant":
            out.append({"type": "refusal", "refusal": _req_str(part.get("refusal"), f"{pp}.refusal")})
        elif ptype in ("input_audio", "file") and kind == "user":
            _bad_value(f"{pp}.type", f"{ptype!r} content parts are not supported.", "unsupported_value")
        elif ptype is None:
            _missing(f"{pp}.type")
        else:
            _bad_value(f"{pp}.type", f"expected {_PART_TYPES[kind]}, but got {ptype!r}.")
        breakpoint_ = part.get("prompt_cache_breakpoint")
        if breakpoint_ is not None:
            extra[f"{pp}.prompt_cache_breakpoint"] = breakpoint_
    return out


def _tool_text(content: object, p: str, extra: dict[str, Any]) -> str:
    if isinstance(content, str):
        return content
    return "".join(part["text"] for part in _parts(content, p, "system", extra))


def _tool_calls(raw: object, p: str) -> list[Item]:
    if not isinstance(raw, list):
        _bad_type(p, "an array", raw)
    calls: list[Item] = []
    for j, call in enumerate(raw):
        cp = f"{p}[{j}]"
        if not isinstance(call, dict):
            _bad_type(cp, "an object", call)
        call_id = _req_str(call.get("id"), f"{cp}.id")
        ctype = call.get("type", "function")
        if ctype != "function":
            if ctype == "custom":
                _bad_value(f"{cp}.type", "custom tool calls are not supported.", "unsupported_value")
            _bad_value(f"{cp}.type", f"expected 'function', but got {ctype!r}.")
        fn = _obj(call.get("function"), f"{cp}.function")
        name = _req_str(fn.get("name"), f"{cp}.function.name")
        arguments = _req_str(fn.get("arguments"), f"{cp}.function.arguments")
        calls.append({"type": "function_call", "call_id": call_id, "name": name, "arguments": arguments})
    return calls


def _assistant(msg: dict[str, Any], p: str, items: list[Item], extra: dict[str, Any]) -> None:
    content = msg.get("content")
    parts = [] if content is None else _parts(content, p, "assistant", extra)
    refusal = _opt_str(msg.get("refusal"), f"{p}.refusal")
    if refusal is not None:
        parts.append({"type": "refusal", "refusal": refusal})
    raw_calls = msg.get("tool_calls")
    calls = [] if raw_calls is None else _tool_calls(raw_calls, f"{p}.tool_calls")
    if msg.get("function_call") is not None:
        _bad_value(
            f"{p}.function_call",
            "the deprecated function_call is not supported; use tool_calls.",
            "unsupported_value",
        )
    if msg.get("audio") is not None:
        extra[f"{p}.audio"] = msg["audio"]
    if calls:
        # Clients commonly send content "" next to tool calls; an empty text block is not a message.
        parts = [part for part in parts if part["type"] != "output_text" or part["text"]]
    elif content is None and refusal is None:
        _missing(f"{p}.content")
    if parts:
        items.append({"type": "message", "role": "assistant", "content": parts})
    items.extend(calls)


def _messages(raw: object, extra: dict[str, Any]) -> list[Item]:
    if not isinstance(raw, list):
        if raw is None:
            _missing("messages")
        _bad_type("messages", "an array", raw)
    if not raw:
        _bad_value("messages", "expected a non-empty array of messages.", code="empty_array")
    items: list[Item] = []
    for i, msg in enumerate(raw):
        p = f"messages[{i}]"
        if not isinstance(msg, dict):
            _bad_type(p, "an object", msg)
        role = msg.get("role")
        if role not in _ROLES:
            if role is None:
                _missing(f"{p}.role")
            if not isinstance(role, str):
                _bad_type(f"{p}.role", "a string", role)
            if role == "function":
                _bad_value(
                    f"{p}.role",
                    "the deprecated 'function' role is not supported; use 'tool'.",
                    "unsupported_value",
                )
            _bad_value(f"{p}.role", f"expected one of {list(_ROLES)}, but got {role!r}.")
        name = _opt_str(msg.get("name"), f"{p}.name")
        if name is not None:
            extra[f"{p}.name"] = name
        if role == "assistant":
            _assistant(msg, p, items, extra)
        elif role == "tool":
            call_id = _req_str(msg.get("tool_call_id"), f"{p}.tool_call_id")
            output = _tool_text(msg.get("content"), p, extra)
            items.append({"type": "function_call_output", "call_id": call_id, "output": output})
        else:
            kind: _PartKind = "user" if role == "user" else "system"
            items.append({"type": "message", "role": role, "content": _parts(msg.get("content"), p, kind, extra)})
    return items


# --------------------------------------------------------------------------------------------------
# tools, tool_choice, response_format, metadata, stop
# --------------------------------------------------------------------------------------------------


def _tools(raw: object) -> list[FunctionTool]:
    if raw is None:
        return []
    if not isinstance(raw, list):
        _bad_type("tools", "an array", raw)
    tools: list[FunctionTool] = []
    seen: set[str] = set()
    for i, tool in enumerate(raw):
        p = f"tools[{i}]"
        if not isinstance(tool, dict):
            _bad_type(p, "an object", tool)
        ttype = tool.get("type")
        if ttype != "function":
            if ttype is None:
                _missing(f"{p}.type")
            _bad_value(f"{p}.type", f"only 'function' tools are supported: {ttype!r}.", "unsupported_value")
        fn = _obj(tool.get("function"), f"{p}.function")
        name = _req_str(fn.get("name"), f"{p}.function.name")
        if not _NAME_RE.match(name):
            _bad_value(f"{p}.function.name", "expected 1-64 characters of a-z, A-Z, 0-9, '_' or '-'.")
        if name in seen:
            _bad_value(f"{p}.function.name", f"duplicate tool name {name!r}.")
        seen.add(name)
        params = fn.get("parameters")
        if params is not None and not isinstance(params, dict):
            _bad_type(f"{p}.function.parameters", "an object", params)
        tools.append(
            FunctionTool(
                name=name,
                description=_opt_str(fn.get("description"), f"{p}.function.description"),
                parameters=params,
                strict=_opt_bool(fn.get("strict"), f"{p}.function.strict"),
            )
        )
    return tools


def _known_tool(name: str, param: str, names: set[str]) -> str:
    if name not in names:
        _bad_value(param, f"no tool named {name!r} is defined in 'tools'.")
    return name


def _tool_choice(raw: object, names: set[str]) -> ToolChoice:
    if raw is None:
        return ToolChoice()
    if isinstance(raw, str):
        mode = _TOOL_CHOICE_MODES.get(raw)
        if mode is None:
            _bad_value("tool_choice", f"expected 'auto', 'none', 'required' or an object, but got {raw!r}.")
        if mode == "required" and not names:
            _bad_value("tool_choice", "'required' is only allowed when 'tools' are specified.")
        return ToolChoice(mode=mode, allowed=None, raw=raw)
    if not isinstance(raw, dict):
        _bad_type("tool_choice", "a string or an object", raw)
    ctype = raw.get("type")
    if ctype == "function":
        fn = _obj(raw.get("function"), "tool_choice.function")
        name = _known_tool(_req_str(fn.get("name"), "tool_choice.function.name"), "tool_choice.function.name", names)
        return ToolChoice(mode="required", allowed=[name], raw=raw)
    if ctype == "allowed_tools":
        spec = _obj(raw.get("allowed_tools"), "tool_choice.allowed_tools")
        amode = spec.get("mode")
        if amode not in ("auto", "required"):
            if amode is None:
                _missing("tool_choice.allowed_tools.mode")
            _bad_value("tool_choice.allowed_tools.mode", f"expected 'auto' or 'required', but got {amode!r}.")
        listed = spec.get("tools")
        if not isinstance(listed, list):
            if listed is None:
                _missing("tool_choice.allowed_tools.tools")
            _bad_type("tool_choice.allowed_tools.tools", "an array", listed)
        allowed: list[str] = []
        for j, ref in enumerate(listed):
            rp = f"tool_choice.allowed_tools.tools[{j}]"
            ref_obj = _obj(ref, rp)
            if ref_obj.get("type") != "function":
                _bad_value(f"{rp}.type", "only 'function' tools are supported.", "unsupported_value")
            fn = _obj(ref_obj.get("function"), f"{rp}.function")
            allowed.append(_known_tool(_req_str(fn.get("name"), f"{rp}.function.name"), f"{rp}.function.name", names))
        return ToolChoice(mode="auto" if amode == "auto" else "required", allowed=allowed, raw=raw)
    if ctype is None:
        _missing("tool_choice.type")
    if ctype == "custom":
        _bad_value("tool_choice.type", "custom tools are not supported.", "unsupported_value")
    _bad_value("tool_choice.type", f"expected 'function' or 'allowed_tools', but got {ctype!r}.")


def _response_format(raw: object) -> TextFormat:
    if raw is None:
        return TextFormat()
    fmt = _obj(raw, "response_format")
    ftype = fmt.get("type")
    if ftype == "text":
        return TextFormat(type="text")
    if ftype == "json_object":
        return TextFormat(type="json_object")
    if ftype == "json_schema":
        spec = _obj(fmt.get("json_schema"), "response_format.json_schema")
        name = _req_str(spec.get("name"), "response_format.json_schema.name")
        if not _NAME_RE.match(name):
            _bad_value("response_format.json_schema.name", "expected 1-64 characters of a-z, A-Z, 0-9, '_' or '-'.")
        schema = spec.get("schema")
        if not isinstance(schema, dict):
            if schema is None:
                _missing("response_format.json_schema.schema")
            _bad_type("response_format.json_schema.schema", "an object", schema)
        return TextFormat(
            type="json_schema",
            name=name,
            schema=schema,
            strict=_opt_bool(spec.get("strict"), "response_format.json_schema.strict"),
            description=_opt_str(spec.get("description"), "response_format.json_schema.description"),
        )
    if ftype is None:
        _missing("response_format.type")
    _bad_value("response_format.type", f"expected 'text', 'json_object' or 'json_schema', but got {ftype!r}.")


def _metadata(raw: object) -> dict[str, str] | None:
    if raw is None:
        return None
    meta = _obj(raw, "metadata")
    if len(meta) > _MAX_METADATA:
        _bad_value("metadata", f"expected at most {_MAX_METADATA} keys, but got {len(meta)}.")
    for key, value in meta.items():
        if len(key) > 64:
            _bad_value("metadata", f"key {key[:20]!r}... is longer than 64 characters.")
        if not isinstance(value, str):
            _bad_type(f"metadata.{key}", "a string", value)
        if len(value) > 512:
            _bad_value(f"metadata.{key}", "expected a string of at most 512 characters.")
    return meta


def _stop(raw: object) -> list[str] | None:
    if raw is None:
        return None
    if isinstance(raw, str):
        return [raw]
    if not isinstance(raw, list):
        _bad_type("stop", "a string or an array of strings", raw)
    for i, item in enumerate(raw):
        if not isinstance(item, str):
            _bad_type(f"stop[{i}]", "a string", item)
    return raw or None


def _logit_bias(raw: object) -> dict[str, Any] | None:
    if raw is None:
        return None
    bias = _obj(raw, "logit_bias")
    for key, value in bias.items():
        _opt_int(value, f"logit_bias.{key}", -100, 100)
    return bias


def _stream_options(raw: object, stream: bool) -> dict[str, Any] | None:
    if raw is None:
        return None
    opts = _obj(raw, "stream_options")
    if not stream:
        _bad_value("stream_options", "'stream_options' is only allowed when 'stream' is true.")
    _opt_bool(opts.get("include_usage"), "stream_options.include_usage")
    _opt_bool(opts.get("include_obfuscation"), "stream_options.include_obfuscation")
    return opts


# --------------------------------------------------------------------------------------------------
# entry points
# --------------------------------------------------------------------------------------------------


def parse_chat_request(body: object) -> CanonicalRequest:
    """Validate a decoded Chat Completions request body and translate it into a canonical request."""
    if not isinstance(body, dict):
        raise invalid(f"The request body must be a JSON object, but got {_kind(body)}.", code="invalid_type")
    get = body.get
    model = _req_str(get("model"), "model")
    if not model:
        _bad_value("model", "expected a non-empty model id.")
    extra: dict[str, Any] = {}
    items = _messages(get("messages"), extra)

    n = _opt_int(get("n"), "n", 1)
    if n is not None and n > 1:
        _bad_value("n", "only n=1 is supported.", "unsupported_value")
    stream = bool(_opt_bool(get("stream"), "stream"))
    stream_options = _stream_options(get("stream_options"), stream)
    if stream_options is not None:
        extra["stream_options"] = stream_options

    max_tokens = _opt_int(get("max_tokens"), "max_tokens", 1)
    max_completion = _opt_int(get("max_completion_tokens"), "max_completion_tokens", 1)
    if max_tokens is not None and max_completion is not None:
        _bad_value("max_tokens", "set either 'max_tokens' or 'max_completion_tokens', not both.")

    tools = _tools(get("tools"))
    tool_choice = _tool_choice(get("tool_choice"), {tool.name for tool in tools})

    logprobs = _opt_bool(get("logprobs"), "logprobs")
    top_logprobs = _opt_int(get("top_logprobs"), "top_logprobs", 0, 20)
    if top_logprobs is not None and not logprobs:
        _bad_value("top_logprobs", "'logprobs' must be true when 'top_logprobs' is set.")
    if logprobs:
        extra["logprobs"] = True
    logit_bias = _logit_bias(get("logit_bias"))
    if logit_bias is not None:
        extra["logit_bias"] = logit_bias

    user = _opt_str(get("user"), "user")
    safety_identifier = _opt_str(get("safety_identifier"), "safety_identifier")
    if safety_identifier is not None:
        if user is None:
            user = safety_identifier
        else:
            extra["safety_identifier"] = safety_identifier
    if _opt_bool(get("store"), "store"):
        extra["store"] = True

    req = CanonicalRequest(
        model=model,
        input=items,
        tools=tools,
        tool_choice=tool_choice,
        text_format=_response_format(get("response_format")),
        reasoning_effort=_opt_enum(get("reasoning_effort"), "reasoning_effort", _REASONING_EFFORTS),
        max_output_tokens=max_completion if max_completion is not None else max_tokens,
        temperature=_opt_num(get("temperature"), "temperature", 0.0, 2.0),
        top_p=_opt_num(get("top_p"), "top_p", 0.0, 1.0),
        presence_penalty=_opt_num(get("presence_penalty"), "presence_penalty", -2.0, 2.0),
        frequency_penalty=_opt_num(get("frequency_penalty"), "frequency_penalty", -2.0, 2.0),
        stop=_stop(get("stop")),
        seed=_opt_int(get("seed"), "seed"),
        parallel_tool_calls=_opt_bool(get("parallel_tool_calls"), "parallel_tool_calls"),
        metadata=_metadata(get("metadata")),
        store=False,
        stream=stream,
        user=user,
        prompt_cache_key=_opt_str(get("prompt_cache_key"), "prompt_cache_key"),
        service_tier=_opt_enum(get("service_tier"), "service_tier", _SERVICE_TIERS),
        top_logprobs=top_logprobs,
        extra=extra,
    )
    for key, value in body.items():
        if key not in _HANDLED and value is not None:
            extra[key] = value
    return req


def include_usage(req: CanonicalRequest) -> bool:
    """Whether a streaming chat request asked for the final usage chunk (``stream_options.include_usage``)."""
    opts = req.extra.get("stream_options")
    return isinstance(opts, dict) and opts.get("include_usage") is True

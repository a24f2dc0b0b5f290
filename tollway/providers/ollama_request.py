"""Canonical request -> Ollama ``POST /api/chat`` body (the request half of the Ollama adapter).

Mapping decisions (each one is reported in :class:`~tollway.core.types.Fidelity` when it loses anything):

* ``instructions`` and any ``tool_choice`` instruction (below) form one leading ``system`` message; system and
  developer items become ``system`` messages in place (Ollama has no developer role).
* Message content is one string: text parts are joined with newlines, refusal parts sent as text. Images go in
  the message's ``images`` list as bare base64 (the ``data:...;base64,`` prefix is stripped); Ollama cannot
  fetch URLs, so http(s) images are dropped and reported, as are ``detail`` and file parts.
* Assistant turns: consecutive assistant text, reasoning and function calls merge into one assistant message
  with ``thinking`` (the reasoning text, sent back so the model sees its earlier reasoning), ``content`` and
  ``tool_calls`` whose ``arguments`` are a JSON **object** (not a string as in OpenAI's format). Reasoning
  items carry no provider state for Ollama; opaque state from another provider is dropped and reported
  (its readable text is still sent as ``thinking``).
* Tool results are ``role: "tool"`` messages with ``tool_name``. Ollama has no call ids: the name is looked up
  from the function call the result answers (by ``call_id``, in conversation order), so results map back by
  name and position. Ids on the way out are synthesised by the response parser.
* ``tool_choice``: ``none`` sends no tools; an allowed-tools subset sends only those tools (exact). Ollama
  cannot force a call: ``required`` (or a named tool) adds a system instruction to call one of the sent tools
  and is reported as approximated. ``parallel_tool_calls: false`` cannot be enforced (dropped).
* ``reasoning.effort`` -> ``think``: ``none`` -> ``false``; gpt-oss models take a level (``low``/``medium``/
  ``high``; ``minimal`` -> ``low``, ``xhigh``/``max`` -> ``high``, approximated); other models take ``true``
  (the level is lost: approximated). A chat client may send Ollama's own ``think`` value, which wins.
* ``text.format``: ``json_object`` -> ``format: "json"``; ``json_schema`` -> ``format: <the schema>``.
* ``options``: ``num_predict`` (max_output_tokens), ``temperature``, ``top_p``, ``seed``, ``stop``,
  ``presence_penalty``, ``frequency_penalty``, plus ``top_k``/``min_p``/``repeat_penalty``/``num_ctx`` from a
  chat client's extra fields; ``keep_alive`` is only sent when the client gave one. ``stream`` is always
  explicit (Ollama streams by default).
"""

from __future__ import annotations

import binascii
from typing import Any

import orjson

from tollway.core import reasoning_state
from tollway.core.errors import invalid
from tollway.core.types import JSON, CanonicalRequest, Fidelity, FunctionTool, Item
from tollway.providers.items import TEXT_PARTS, call_arguments

PROVIDER = "ollama"
# think levels gpt-oss understands, per canonical reasoning effort
_GPT_OSS_LEVELS: dict[str, str] = {
    "minimal": "low",
    "low": "low",
    "medium": "medium",
    "high": "high",
    "xhigh": "high",
    "max": "high",
}
# Chat-door extra fields that are Ollama model options: name -> accepted JSON types
_EXTRA_OPTIONS: dict[str, tuple[type, ...]] = {
    "top_k": (int,),
    "min_p": (int, float),
    "repeat_penalty": (int, float),
    "num_ctx": (int,),
}
_B64_ALPHABET = frozenset(b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/=\n\r")


def _required_instruction(names: list[str]) -> str:
    if len(names) == 1:
        return f"You must respond by calling the tool {names[0]!r}; do not answer with text only."
    listed = ", ".join(repr(n) for n in names)
    return f"You must respond by calling one or more of these tools: {listed}; do not answer with text only."


# --------------------------------------------------------------------------------------------------
# content parts
# --------------------------------------------------------------------------------------------------


def _is_base64(data: str) -> bool:
    raw = data.encode("ascii", "replace")
    if not raw or not set(raw) <= _B64_ALPHABET:
        return False
    try:
        binascii.a2b_base64(raw)
    except binascii.Error:
        return False
    return True


def _image(part: JSON, param: str, fidelity: Fidelity) -> str | None:
    """An ``input_image`` part -> the bare base64 Ollama wants, or None (dropped and reported)."""
    url = part.get("image_url")
    if isinstance(url, dict):  # chat-style {"url": ...}
        url = url.get("url")
    if not isinstance(url, str) or not url:
        fidelity.dropped.append(f"{param} (image without inline data)")
        return None
    detail = part.get("detail")
    if detail not in (None, "auto"):
        fidelity.dropped.append(f"{param}.detail")
    if url.startswith("data:"):
        header, comma, data = url[5:].partition(",")
        if not comma or not header.endswith(";base64") or not _is_base64(data):
            raise invalid("Only base64 data URLs are supported for images.", f"{param}.image_url")
        return data
    if url.startswith(("https://", "http://")):
        fidelity.dropped.append(f"{param} (image URL: Ollama only accepts inline base64 images)")
        return None
    raise invalid("Image URLs must be http(s) or base64 data URLs.", f"{param}.image_url")


def _content(content: Any, param: str, images: list[str] | None, fidelity: Fidelity) -> str:
    """Message content -> one string; images are appended to ``images`` (None: images not allowed here)."""
    if isinstance(content, str):
        return content
    texts: list[str] = []
    for j, part in enumerate(content if isinstance(content, list) else ()):
        where = f"{param}[{j}]"
        ptype = part.get("type") if isinstance(part, dict) else None
        if ptype in TEXT_PARTS:
            texts.append(part.get("text") or "")
        elif ptype == "refusal":
            texts.append(part.get("refusal") or "")
        elif ptype == "input_image" and images is not None:
            image = _image(part, where, fidelity)
            if image is not None:
                images.append(image)
        else:
            fidelity.dropped.append(f"{where} ({ptype})")
    return "\n".join(texts)


def _tool_output(output: Any, param: str, fidelity: Fidelity) -> str:
    if isinstance(output, str):
        return output
    if isinstance(output, list):
        return _content(output, param, None, fidelity)
    return "" if output is None else orjson.dumps(output).decode()


def _reasoning_text(item: Item, param: str, fidelity: Fidelity) -> str:
    """The readable text of a reasoning item; any opaque state it carries is foreign to Ollama (reported)."""
    encrypted = item.get("encrypted_content")
    if isinstance(encrypted, str) and encrypted:
        unwrapped = reasoning_state.unwrap(encrypted)
        source = "corrupt state" if unwrapped is None else f"state from {unwrapped[0]}"
        fidelity.dropped.append(f"{param}.reasoning.encrypted_content ({source})")
    parts = item.get("content") or []
    text = "".join(p.get("text") or "" for p in parts if isinstance(p, dict))
    if not text:
        summary = item.get("summary") or []
        text = "\n\n".join(p.get("text") or "" for p in summary if isinstance(p, dict))
    return text


# --------------------------------------------------------------------------------------------------
# messages
# --------------------------------------------------------------------------------------------------


def convert_input(items: list[Item], fidelity: Fidelity) -> list[JSON]:
    """Canonical input items -> Ollama messages (without the leading instructions message)."""
    messages: list[JSON] = []
    names: dict[str, str] = {}  # call_id -> tool name, for tool results
    assistant: JSON | None = None  # the open assistant message later text / calls merge into

    def open_assistant(fresh: bool) -> JSON:
        nonlocal assistant
        if assistant is None or fresh:
            assistant = {"role": "assistant", "content": ""}
            messages.append(assistant)
        return assistant

    for i, item in enumerate(items):
        param = f"input[{i}]"
        itype = item.get("type", "message")
        if itype == "message":
            role = item.get("role")
            if role == "assistant":
                text = _content(item.get("content"), f"{param}.content", None, fidelity)
                current = assistant
                reuse = current is not None and not current["content"] and "tool_calls" not in current
                open_assistant(not reuse)["content"] = text
                continue
            assistant = None
            if role in ("system", "developer"):
                messages.append(
                    {"role": "system", "content": _content(item.get("content"), f"{param}.content", None, fidelity)}
                )
            elif role == "user":
                images: list[str] = []
                message: JSON = {
                    "role": "user",
                    "content": _content(item.get("content"), f"{param}.content", images, fidelity),
                }
                if images:
                    message["images"] = images
                messages.append(message)
            else:
                raise invalid(f"Unsupported message role {role!r}.", f"{param}.role")
        elif itype == "function_call":
            name = item.get("name")
            call_id = item.get("call_id")
            if isinstance(call_id, str) and isinstance(name, str):
                names[call_id] = name
            call = {"function": {"name": name, "arguments": call_arguments(item, param)}}
            open_assistant(False).setdefault("tool_calls", []).append(call)
        elif itype == "function_call_output":
            assistant = None
            result: JSON = {"role": "tool", "content": _tool_output(item.get("output"), f"{param}.output", fidelity)}
            tool_name = names.get(item.get("call_id") or "")
            if tool_name is not None:
                result["tool_name"] = tool_name
            messages.append(result)
        elif itype == "reasoning":
            text = _reasoning_text(item, param, fidelity)
            if not text:
                continue
            current = assistant
            fresh = current is not None and (bool(current["content"]) or "tool_calls" in current)
            target = open_assistant(fresh)
            target["thinking"] = target["thinking"] + "\n\n" + text if "thinking" in target else text
        else:
            fidelity.dropped.append(f"{param} ({itype})")
    return messages


# --------------------------------------------------------------------------------------------------
# tools, think, options
# --------------------------------------------------------------------------------------------------


def _tool_json(tool: FunctionTool) -> JSON:
    function: JSON = {"name": tool.name}
    if tool.description is not None:
        function["description"] = tool.description
    function["parameters"] = tool.parameters or {"type": "object", "properties": {}}
    return {"type": "function", "function": function}


def _tools(req: CanonicalRequest, fidelity: Fidelity) -> tuple[list[JSON], str | None]:
    """The tools to send and the system instruction that approximates a forced choice (if any)."""
    choice = req.tool_choice
    if not req.tools or choice.mode == "none":
        return [], None
    tools = req.tools
    if choice.allowed is not None:
        allowed = set(choice.allowed)
        tools = [t for t in tools if t.name in allowed]
        if not tools:
            raise invalid("tool_choice allows no tool defined in 'tools'.", "tool_choice")
    if any(t.strict for t in tools):
        fidelity.dropped.append("tools.strict")
    if req.parallel_tool_calls is False:
        fidelity.dropped.append("parallel_tool_calls")
    instruction = None
    if choice.mode == "required":
        fidelity.approximated.append("tool_choice")
        instruction = _required_instruction([t.name for t in tools])
    return [_tool_json(t) for t in tools], instruction


def is_gpt_oss(model: str) -> bool:
    return "gpt-oss" in model.lower()


def _think(req: CanonicalRequest, model: str, fidelity: Fidelity) -> bool | str | None:
    effort = req.reasoning_effort
    if effort is None:
        return None
    gpt_oss = is_gpt_oss(model)
    if effort == "none":
        if gpt_oss:  # its reasoning cannot be switched off: the lowest level is the closest
            fidelity.approximated.append("reasoning.effort")
            return "low"
        return False
    if gpt_oss:
        level = _GPT_OSS_LEVELS.get(effort)
        if level is None:
            raise invalid(f"Unsupported reasoning effort {effort!r}.", "reasoning.effort")
        if level != effort:
            fidelity.approximated.append("reasoning.effort")
        return level
    fidelity.approximated.append("reasoning.effort")  # thinking on; the level has no equivalent
    return True


def _options(req: CanonicalRequest, body: JSON, fidelity: Fidelity) -> None:
    options: JSON = {}
    if req.max_output_tokens is not None:
        options["num_predict"] = req.max_output_tokens
    if req.temperature is not None:
        options["temperature"] = req.temperature
    if req.top_p is not None:
        options["top_p"] = req.top_p
    if req.seed is not None:
        options["seed"] = req.seed
    if req.stop:
        options["stop"] = list(req.stop)
    if req.presence_penalty is not None:
        options["presence_penalty"] = req.presence_penalty
    if req.frequency_penalty is not None:
        options["frequency_penalty"] = req.frequency_penalty
    # The pipeline reports every extra field as dropped before building; the ones Ollama understands are
    # sent and un-reported.
    for key, value in req.extra.items():
        kinds = _EXTRA_OPTIONS.get(key)
        if kinds is not None and isinstance(value, kinds) and not isinstance(value, bool):
            options[key] = value
        elif key == "keep_alive" and isinstance(value, str | int | float) and not isinstance(value, bool):
            body["keep_alive"] = value
        elif key == "think" and (isinstance(value, bool) or value in ("low", "medium", "high", "max")):
            body["think"] = value
            if "reasoning.effort" in fidelity.approximated:
                fidelity.approximated.remove("reasoning.effort")
        else:
            continue
        if key in fidelity.dropped:
            fidelity.dropped.remove(key)
    if options:
        body["options"] = options


def _unsupported(req: CanonicalRequest, fidelity: Fidelity) -> None:
    if req.reasoning_summary is not None:
        fidelity.dropped.append("reasoning.summary")
    if req.top_logprobs:
        fidelity.dropped.append("top_logprobs")
    for i, name in enumerate(req.include):
        if name != "reasoning.encrypted_content":  # nothing to encrypt: reasoning text is returned as is
            fidelity.dropped.append(f"include[{i}] ({name})")
    if req.service_tier not in (None, "auto", "default"):
        fidelity.dropped.append("service_tier")
    if req.prompt_cache_key is not None:
        fidelity.dropped.append("prompt_cache_key")
    if req.truncation not in (None, "disabled"):
        fidelity.dropped.append("truncation")
    if req.max_tool_calls is not None:
        fidelity.dropped.append("max_tool_calls")
    if req.user is not None:
        fidelity.dropped.append("user")


# --------------------------------------------------------------------------------------------------
# the body
# --------------------------------------------------------------------------------------------------


def build_body(req: CanonicalRequest, model: str, fidelity: Fidelity) -> JSON:
    """The ``/api/chat`` request body for ``req`` sent to upstream model ``model``."""
    messages = convert_input(req.input, fidelity)
    if not messages:
        raise invalid("The input must contain at least one message.", "input")
    tools, instruction = _tools(req, fidelity)
    system = [text for text in (req.instructions, instruction) if text]
    if system:
        messages.insert(0, {"role": "system", "content": "\n\n".join(system)})
    body: JSON = {"model": model, "messages": messages}
    if tools:
        body["tools"] = tools
    fmt = req.text_format
    if fmt.type == "json_object":
        body["format"] = "json"
    elif fmt.type == "json_schema":
        body["format"] = fmt.schema or {"type": "object"}
    think = _think(req, model, fidelity)
    if think is not None:
        body["think"] = think
    _options(req, body, fidelity)
    _unsupported(req, fidelity)
    body["stream"] = req.stream
    return body

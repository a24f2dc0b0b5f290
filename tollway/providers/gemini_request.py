"""Canonical request -> Gemini ``GenerateContentRequest`` body (the request half of the Gemini adapter).

Mapping decisions:

* ``instructions`` and every system/developer message become parts of ``systemInstruction`` (in order).
  Gemini has no mid-conversation system turn: a system/developer message after the conversation started
  is moved there too and reported as approximated.
* ``contents`` alternate ``user`` / ``model``; consecutive turns of one role merge into one content, so
  parallel calls share a model content and their results a user content.
* Images: ``data:`` URLs become ``inlineData``; http(s) URLs become ``fileData`` when the image type can be
  told from the URL's extension, otherwise the image is dropped and reported (Gemini requires a MIME type).
  ``detail`` other than ``auto`` has no per-part equivalent and is reported dropped.
* Function calls go back as ``functionCall`` parts, results as ``functionResponse`` parts whose ``name`` is
  the matching call's name and whose ``response`` is the output when it is a JSON object, else
  ``{"output": <the output string>}``.
  Call ids Gemini issued (Gemini 3 does) go back as ``id``. Gemini 2.x issues none: tollway then names the
  call ``gmcall_<digest>`` (see :func:`tollway.providers.gemini_response.synth_call_id`) and sends that id
  back nowhere; Gemini pairs such calls and results by name and order, so the results of one turn are
  sent in the order of the calls they answer.
* Reasoning: a reasoning item carrying Gemini state (``tw1.gemini.…``) gives back its thought summary as a
  ``thought: true`` part and re-attaches every ``thoughtSignature`` to the part it came with: a function
  call by call id, a text part by the digest of its text, a thought part to the re-created thought part;
  the state covers the whole model turn it belongs to (the run of assistant items around it), so its
  position within the turn does not matter. Reasoning from other providers or without state is dropped and
  reported. Gemini 3 rejects a model turn of the current turn (after the last user message) whose first
  function call carries no signature (e.g. a turn from another provider, or from the Chat Completions door,
  which has no field for reasoning state): for models ``gemini-3`` and later such a call gets Google's
  documented validator-skip signature and is reported as approximated.
* ``reasoning.effort`` becomes ``thinkingConfig.thinkingBudget`` (:data:`THINKING_BUDGETS`; ``none`` is
  0) and is reported as approximated; thoughts are requested (``includeThoughts``) whenever an effort
  other than ``none`` or a ``reasoning.summary`` is given.
* ``text.format``: ``json_schema`` -> ``responseMimeType: application/json`` + ``responseJsonSchema``;
  ``json_object`` -> ``responseMimeType`` only.
* Tools are sent as ``functionDeclarations`` with ``parametersJsonSchema``. ``tool_choice``: ``auto`` is
  Gemini's default (no ``toolConfig``), ``none`` -> ``NONE``, ``required`` -> ``ANY``; an allowed-tools
  subset is ``allowedFunctionNames`` with ``ANY``, and (since Gemini takes that list only with ``ANY``)
  sending only the allowed declarations with ``auto``.
* ``prompt_cache_key`` naming an explicit context cache (``cachedContents/…``) becomes ``cachedContent``;
  any other key has no equivalent (Gemini caches implicitly) and is reported dropped.
* Dropped and reported: ``tools[].strict``, ``parallel_tool_calls: false``, ``top_logprobs``, ``user``,
  ``max_tool_calls``, ``service_tier`` other than auto/default; more than 5 stop sequences keep the first 5
  (approximated).
"""

from __future__ import annotations

import hashlib
import itertools
import re
from typing import Any

import orjson

from tollway.core.errors import invalid
from tollway.core.types import JSON, CanonicalRequest, Fidelity, Item
from tollway.providers.items import TEXT_PARTS, call_arguments, own_reasoning_state

PROVIDER = "gemini"
SYNTH_CALL_PREFIX = "gmcall_"
# Google's documented value for a function call whose signature is unavailable (Gemini 3 validation).
SKIP_SIGNATURE = "skip_thought_signature_validator"
THINKING_BUDGETS: dict[str, int] = {
    "none": 0,
    "minimal": 512,
    "low": 1024,
    "medium": 8192,
    "high": 24576,
    "xhigh": 32768,
}
MAX_STOP_SEQUENCES = 5
_IMAGE_EXTENSIONS: dict[str, str] = {
    "png": "image/png",
    "jpg": "image/jpeg",
    "jpeg": "image/jpeg",
    "webp": "image/webp",
    "gif": "image/gif",
    "heic": "image/heic",
    "heif": "image/heif",
}
_EXTENSION = re.compile(r"\.([A-Za-z0-9]+)$")
_MAJOR = re.compile(r"gemini-(\d+)")
_CACHE_PREFIX = "cachedContents/"


def text_digest(text: str) -> str:
    """The key a text part's signature is stored under (see :mod:`tollway.providers.gemini_response`)."""
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def strict_signatures(model: str) -> bool:
    """Gemini 3 and later reject function calls without thought signatures."""
    match = _MAJOR.search(model)
    return match is not None and int(match.group(1)) >= 3


def model_resource(model: str) -> str:
    """The URL resource of a model id: ``models/<id>`` (a leading ``models/`` is not doubled);
    ``tunedModels/<id>`` is kept."""
    return model if model.startswith(("models/", "tunedModels/")) else f"models/{model}"


# --------------------------------------------------------------------------------------------------
# content parts
# --------------------------------------------------------------------------------------------------


def _data_url(url: str, param: str) -> tuple[str, str]:
    """``data:<media type>[;params];base64,<data>`` -> (media type, base64 data)."""
    header, comma, data = url[5:].partition(",")
    if not comma or not header.endswith(";base64") or not data:
        raise invalid("Only base64 data URLs are supported.", param)
    media_type = header.split(";", 1)[0].strip().lower()
    return ("image/jpeg" if media_type == "image/jpg" else media_type), data


def _image_part(part: JSON, param: str, fidelity: Fidelity) -> JSON | None:
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
        return {"inlineData": {"mimeType": media_type, "data": data}}
    if url.startswith(("https://", "http://")):
        path = url.split("?", 1)[0].split("#", 1)[0]
        match = _EXTENSION.search(path.rsplit("/", 1)[-1])
        url_type = _IMAGE_EXTENSIONS.get(match.group(1).lower()) if match else None
        if url_type is None:
            fidelity.dropped.append(f"{param} (image URL of unknown type; Gemini needs a MIME type)")
            return None
        return {"fileData": {"mimeType": url_type, "fileUri": url}}
    raise invalid("Image URLs must be http(s) or base64 data URLs.", f"{param}.image_url")


def _user_parts(content: Any, param: str, fidelity: Fidelity) -> list[JSON]:
    if isinstance(content, str):
        return [{"text": content}] if content else []
    parts: list[JSON] = []
    for j, part in enumerate(content if isinstance(content, list) else ()):
        if not isinstance(part, dict):
            fidelity.dropped.append(f"{param}[{j}]")
            continue
        ptype = part.get("type")
        if ptype in TEXT_PARTS:
            if part.get("text"):
                parts.append({"text": part["text"]})
        elif ptype == "refusal":
            if part.get("refusal"):
                parts.append({"text": part["refusal"]})
        elif ptype == "input_image":
            image = _image_part(part, f"{param}[{j}]", fidelity)
            if image is not None:
                parts.append(image)
        else:
            fidelity.dropped.append(f"{param}[{j}] ({ptype})")
    return parts


def _plain_text(content: Any, param: str, fidelity: Fidelity) -> str:
    if isinstance(content, str):
        return content
    texts: list[str] = []
    for j, part in enumerate(content if isinstance(content, list) else ()):
        if isinstance(part, dict) and part.get("type") in TEXT_PARTS:
            texts.append(part.get("text") or "")
        elif isinstance(part, dict) and part.get("type") == "refusal":
            texts.append(part.get("refusal") or "")
        else:
            fidelity.dropped.append(f"{param}[{j}]")
    return "".join(texts)


def _call_id(item: Item, param: str) -> str:
    call_id = item.get("call_id")
    if not isinstance(call_id, str) or not call_id:
        raise invalid("A call_id is required.", f"{param}.call_id", code="missing_required_parameter")
    return call_id


# --------------------------------------------------------------------------------------------------
# model turns: reasoning state and thought signatures
# --------------------------------------------------------------------------------------------------


def _is_model_item(item: Item) -> bool:
    itype = item.get("type", "message")
    if itype in ("function_call", "reasoning"):
        return True
    return itype == "message" and item.get("role") == "assistant"


def _gemini_state(item: Item, param: str, fidelity: Fidelity) -> JSON | None:
    state = own_reasoning_state(item, param, PROVIDER, fidelity)
    if state is None:
        return None
    if not isinstance(state.get("sigs"), list):
        fidelity.dropped.append(f"{param}.reasoning (corrupt state)")
        return None
    return state


def _reasoning_text(item: Item) -> str:
    parts = item.get("summary") or item.get("content") or []
    return "\n\n".join(p.get("text") or "" for p in parts if isinstance(p, dict) and p.get("text"))


def _model_parts(
    items: list[Item], start: int, strict: bool, tags: dict[int, str], fidelity: Fidelity
) -> list[JSON]:
    """Parts of one model turn (a run of assistant-side items starting at ``input[start]``); records the
    call id of every functionCall part in ``tags``. ``strict``: the turn's first function call needs a
    signature (Gemini 3, current turn)."""
    by_call: dict[str, tuple[str, int]] = {}
    by_text: dict[str, tuple[str, int]] = {}
    thought_sigs: dict[int, str] = {}
    tail: list[str] = []
    states: dict[int, bool] = {}
    for k, item in enumerate(items):
        if item.get("type") != "reasoning":
            continue
        state = _gemini_state(item, f"input[{start + k}]", fidelity)
        states[k] = state is not None
        for entry in state["sigs"] if state is not None else ():
            if not (isinstance(entry, list) and len(entry) == 3 and isinstance(entry[2], str)):
                continue
            kind, ref, sig = entry
            if kind == "call" and isinstance(ref, str):
                by_call[ref] = (sig, k)
            elif kind == "text" and isinstance(ref, str):
                by_text[ref] = (sig, k)
            elif kind == "thought":
                thought_sigs.setdefault(k, sig)
            elif kind == "end":
                tail.append(sig)

    parts: list[JSON] = []
    for k, item in enumerate(items):
        param = f"input[{start + k}]"
        itype = item.get("type", "message")
        if itype == "reasoning":
            if not states.get(k):
                continue
            text = _reasoning_text(item)
            sig = thought_sigs.get(k)
            if text or sig is not None:
                part: JSON = {"text": text, "thought": True}
                if sig is not None:
                    part["thoughtSignature"] = sig
                parts.append(part)
        elif itype == "function_call":
            call_id = _call_id(item, param)
            call: JSON = {"name": item.get("name"), "args": call_arguments(item, param)}
            if not call_id.startswith(SYNTH_CALL_PREFIX):
                call["id"] = call_id
            part = {"functionCall": call}
            tags[id(part)] = call_id
            found = by_call.pop(call_id, None)
            if found is not None:
                part["thoughtSignature"] = found[0]
            parts.append(part)
        else:
            text = _plain_text(item.get("content"), f"{param}.content", fidelity)
            if not text:
                continue
            part = {"text": text}
            found = by_text.pop(text_digest(text), None)
            if found is not None:
                part["thoughtSignature"] = found[0]
            parts.append(part)
    parts.extend({"text": "", "thoughtSignature": sig} for sig in tail)
    for _, k in (*by_call.values(), *by_text.values()):
        fidelity.dropped.append(f"input[{start + k}].reasoning (signature of a part no longer in the input)")
    if strict:
        first_call = next((p for p in parts if "functionCall" in p), None)
        if first_call is not None and "thoughtSignature" not in first_call:
            first_call["thoughtSignature"] = SKIP_SIGNATURE
            fidelity.approximated.append(f"input[{start}] (model turn without a Gemini thought signature)")
    return parts


# --------------------------------------------------------------------------------------------------
# contents
# --------------------------------------------------------------------------------------------------


def _order_results(contents: list[JSON], tags: dict[int, str]) -> None:
    """Within each user content, put function responses in the order of the calls they answer (in the model
    content just before it): Gemini pairs calls without ids to results by name and order. ``tags`` maps
    ``id(part)`` of every functionCall / functionResponse part to its canonical call id."""
    for prev, cur in itertools.pairwise(contents):
        if prev["role"] != "model" or cur["role"] != "user":
            continue
        responses = [p for p in cur["parts"] if "functionResponse" in p]
        if len(responses) < 2:
            continue
        order = {tags.get(id(p)): n for n, p in enumerate(prev["parts"]) if "functionCall" in p}
        ranked = iter(sorted(responses, key=lambda p: order.get(tags.get(id(p)), len(order))))
        cur["parts"] = [next(ranked) if "functionResponse" in p else p for p in cur["parts"]]


def _result(output: Any) -> JSON:
    """A tool's output as ``functionResponse.response`` (a JSON object): an output that is a JSON object is
    sent as that object, anything else as ``{"output": <text>}`` (the key Google's docs use)."""
    text = output if isinstance(output, str) else orjson.dumps(output).decode()
    if text.startswith("{"):
        try:
            value = orjson.loads(text)
        except orjson.JSONDecodeError:
            value = None
        if isinstance(value, dict):
            return value
    return {"output": text}


def convert_input(req: CanonicalRequest, model: str, fidelity: Fidelity) -> tuple[list[str], list[JSON]]:
    """Canonical input -> (system texts, Gemini contents)."""
    items = req.input
    system: list[str] = []
    contents: list[JSON] = []
    names: dict[str, Any] = {}
    tags: dict[int, str] = {}
    for item in items:
        if item.get("type") == "function_call" and isinstance(item.get("call_id"), str):
            names[item["call_id"]] = item.get("name")

    def push(role: str, parts: list[JSON]) -> None:
        if not parts:
            return
        if contents and contents[-1]["role"] == role:
            contents[-1]["parts"].extend(parts)
        else:
            contents.append({"role": role, "parts": parts})

    # Gemini 3 checks signatures in the current turn: everything after the last user message
    strict = strict_signatures(model)
    last_user = max((k for k, it in enumerate(items) if it.get("type", "message") == "message"
                     and it.get("role") == "user"), default=-1)
    i = 0
    n = len(items)
    while i < n:
        item = items[i]
        param = f"input[{i}]"
        itype = item.get("type", "message")
        if _is_model_item(item):
            j = i + 1
            while j < n and _is_model_item(items[j]):
                j += 1
            push("model", _model_parts(items[i:j], i, strict and i > last_user, tags, fidelity))
            i = j
            continue
        if itype == "message":
            role = item.get("role")
            if role == "user":
                push("user", _user_parts(item.get("content"), f"{param}.content", fidelity))
            elif role in ("system", "developer"):
                text = _plain_text(item.get("content"), f"{param}.content", fidelity)
                if text:
                    if contents:
                        fidelity.approximated.append(f"{param} ({role} message moved to systemInstruction)")
                    system.append(text)
            else:
                raise invalid(f"Unsupported message role {role!r}.", f"{param}.role")
        elif itype == "function_call_output":
            call_id = _call_id(item, param)
            response: JSON = {"name": names.get(call_id), "response": _result(item.get("output"))}
            if response["name"] is None:
                raise invalid(f"No function call found for call_id {call_id!r}.", f"{param}.call_id")
            if not call_id.startswith(SYNTH_CALL_PREFIX):
                response["id"] = call_id
            result: JSON = {"functionResponse": response}
            tags[id(result)] = call_id
            push("user", [result])
        else:
            fidelity.dropped.append(f"{param} ({itype})")
        i += 1
    _order_results(contents, tags)
    return system, contents


# --------------------------------------------------------------------------------------------------
# tools, generation config
# --------------------------------------------------------------------------------------------------


def _tools(req: CanonicalRequest, body: JSON, fidelity: Fidelity) -> None:
    if not req.tools:
        return
    choice = req.tool_choice
    tools = req.tools
    allowed = choice.allowed if choice.mode != "none" else None
    if allowed is not None and not any(t.name in allowed for t in tools):
        raise invalid("tool_choice allows no tool defined in 'tools'.", "tool_choice")
    if allowed is not None and choice.mode == "auto":
        tools = [t for t in tools if t.name in allowed]
    if any(t.strict for t in tools):
        fidelity.dropped.append("tools.strict")
    declarations: list[JSON] = []
    for tool in tools:
        decl: JSON = {"name": tool.name}
        if tool.description is not None:
            decl["description"] = tool.description
        if tool.parameters is not None:
            decl["parametersJsonSchema"] = tool.parameters
        declarations.append(decl)
    body["tools"] = [{"functionDeclarations": declarations}]
    config: JSON | None = None
    if choice.mode == "none":
        config = {"mode": "NONE"}
    elif choice.mode == "required":
        config = {"mode": "ANY"}
        if allowed is not None:
            config["allowedFunctionNames"] = [t.name for t in tools if t.name in allowed]
    if config is not None:
        body["toolConfig"] = {"functionCallingConfig": config}
    if req.parallel_tool_calls is False and choice.mode != "none":
        fidelity.dropped.append("parallel_tool_calls")


def _generation_config(req: CanonicalRequest, fidelity: Fidelity) -> JSON:
    config: JSON = {}
    if req.temperature is not None:
        config["temperature"] = req.temperature
    if req.top_p is not None:
        config["topP"] = req.top_p
    if req.max_output_tokens is not None:
        config["maxOutputTokens"] = req.max_output_tokens
    if req.stop:
        if len(req.stop) > MAX_STOP_SEQUENCES:
            fidelity.approximated.append("stop")
        config["stopSequences"] = list(req.stop[:MAX_STOP_SEQUENCES])
    if req.seed is not None:
        config["seed"] = req.seed
    if req.presence_penalty is not None:
        config["presencePenalty"] = req.presence_penalty
    if req.frequency_penalty is not None:
        config["frequencyPenalty"] = req.frequency_penalty
    fmt = req.text_format
    if fmt.type == "json_schema":
        config["responseMimeType"] = "application/json"
        config["responseJsonSchema"] = fmt.schema or {}
    elif fmt.type == "json_object":
        config["responseMimeType"] = "application/json"
    thinking: JSON = {}
    effort = req.reasoning_effort
    if effort is not None:
        budget = THINKING_BUDGETS.get(effort)
        if budget is None:
            raise invalid(f"Unsupported reasoning effort {effort!r}.", "reasoning.effort")
        thinking["thinkingBudget"] = budget
        fidelity.approximated.append("reasoning.effort")
    if (effort is not None and effort != "none") or req.reasoning_summary not in (None, "none"):
        thinking["includeThoughts"] = True
    if thinking:
        config["thinkingConfig"] = thinking
    return config


def _unsupported(req: CanonicalRequest, body: JSON, fidelity: Fidelity) -> None:
    key = req.prompt_cache_key
    if key is not None:
        if key.startswith(_CACHE_PREFIX):
            body["cachedContent"] = key
        else:
            fidelity.dropped.append("prompt_cache_key")
    if req.top_logprobs:
        fidelity.dropped.append("top_logprobs")
    if req.user:
        fidelity.dropped.append("user")
    if req.max_tool_calls is not None:
        fidelity.dropped.append("max_tool_calls")
    if req.service_tier not in (None, "auto", "default"):
        fidelity.dropped.append("service_tier")


def build_body(req: CanonicalRequest, model: str, fidelity: Fidelity) -> JSON:
    """The ``generateContent`` / ``streamGenerateContent`` body for ``req`` sent to ``model``."""
    system, contents = convert_input(req, model, fidelity)
    if not contents:
        raise invalid("The input must contain at least one user or assistant message.", "input")
    if req.instructions:
        system.insert(0, req.instructions)
    body: JSON = {"contents": contents}
    if system:
        body["systemInstruction"] = {"parts": [{"text": text} for text in system]}
    _tools(req, body, fidelity)
    config = _generation_config(req, fidelity)
    if config:
        body["generationConfig"] = config
    _unsupported(req, body, fidelity)
    return body

"""``POST /v1beta/models/{model}:generateContent`` and ``:streamGenerateContent`` in Google's Gemini wire
format (Generative Language API): request parsing and checking, the ``GenerateContentResponse`` JSON body,
its SSE stream (one chunk per ``data:`` line, ``\\r\\n\\r\\n``-separated as Google sends it) and Google's
error bodies (``{"error": {"code", "message", "status", "details"}}``).

Gemini-specific behaviour on top of :mod:`tollway.mock.scenario`:

* The model and method come from the URL (:func:`from_path`); any other method is refused.
* Thinking: ``thinkingConfig.includeThoughts`` or a non-zero ``thinkingBudget`` makes the script reason;
  the thought text is shown (a ``thought: true`` part) only with ``includeThoughts``, and always counted in
  ``thoughtsTokenCount``.
* Thought signatures are bound to the part they come with: ``make_state("gts_", "<kind>:<content>")`` for
  the first function call (``call:<name>:<sorted args JSON>``) or else the text part (``text:<text>``).
  Models ``gemini-3`` and later always sign (and give function calls an ``id``), like Gemini 3; earlier
  models sign only when thinking. Every ``thoughtSignature`` that comes back must be the one issued for
  exactly that part (or Google's validator-skip value), else a 400; with ``gemini-3`` and later, the first
  function call of each model turn since the last user text must carry one (as Gemini 3 requires).
* ``cachedContent`` (an explicit context cache) makes half the input cached (``cachedContentTokenCount``).
* ``[gemini:finish=<FinishReason>]`` in the last user text answers with that ``finishReason`` (e.g.
  ``SAFETY``, ``MALFORMED_FUNCTION_CALL``), ``[gemini:block=<BlockReason>]`` with a blocked prompt
  (``promptFeedback.blockReason``, no candidates); the marker is removed from the echoed text.
* Unknown request fields, ``allowedFunctionNames`` without mode ``ANY``, and a response schema without
  ``responseMimeType: application/json`` are refused with a 400, as the live API does.
"""

from __future__ import annotations

import re
from typing import Any

import orjson

from tollway.mock.scenario import Ask, RequestInvalid, Script, count_words, make_state, new_id
from tollway.mock.wire import ErrorKind, StreamPlan, Wire

STATE_PREFIX = "gts_"
SKIP_SIGNATURES = frozenset({"skip_thought_signature_validator", "context_engineering_is_the_way_to_go"})
_MODEL = "_model"
_METHOD = "_method"
_FINISH = "_finish"
_BLOCK = "_block"
_METHODS = frozenset({"generateContent", "streamGenerateContent"})
_MARKER = re.compile(r"\[gemini:(finish|block)=([A-Z_]+)\]")
_MAJOR = re.compile(r"gemini-(\d+)")
_CAMEL = re.compile(r"_([a-z])")
_TOP_FIELDS = frozenset(
    {"contents", "systemInstruction", "tools", "toolConfig", "generationConfig", "safetySettings", "cachedContent",
     "model"}
)
_CONFIG_FIELDS = frozenset(
    {"stopSequences", "responseMimeType", "responseSchema", "responseJsonSchema", "responseModalities",
     "candidateCount", "maxOutputTokens", "temperature", "topP", "topK", "seed", "presencePenalty",
     "frequencyPenalty", "responseLogprobs", "logprobs", "enableEnhancedCivicAnswers", "speechConfig",
     "thinkingConfig", "imageConfig", "mediaResolution"}
)
_PART_FIELDS = frozenset(
    {"text", "inlineData", "fileData", "functionCall", "functionResponse", "thought", "thoughtSignature",
     "executableCode", "codeExecutionResult", "videoMetadata", "partMetadata"}
)
_DECLARATION_FIELDS = frozenset(
    {"name", "description", "parameters", "parametersJsonSchema", "response", "responseJsonSchema", "behavior"}
)
_SEP = b"\r\n\r\n"
_RETRY_INFO = "type.googleapis.com/google.rpc.RetryInfo"
_BAD_REQUEST = "type.googleapis.com/google.rpc.BadRequest"

# kind -> (status, google.rpc status, canned message)
_ERRORS: dict[ErrorKind, tuple[int, str, str]] = {
    "invalid": (400, "INVALID_ARGUMENT", "Invalid value at '{param}' (mock fault)"),
    "auth": (401, "UNAUTHENTICATED", "Request had invalid authentication credentials. Expected OAuth 2 access "
                                     "token, login cookie or other valid authentication credential."),
    "forbidden": (403, "PERMISSION_DENIED", "Method doesn't allow unregistered callers (callers without "
                                            "established identity). Please use API Key or other form of API "
                                            "consumer identity to call this API."),
    "not_found": (404, "NOT_FOUND", "models/mock is not found for API version v1beta, or is not supported for "
                                    "generateContent. Call ListModels to see the list of available models."),
    "rate_limit": (429, "RESOURCE_EXHAUSTED", "You exceeded your current quota, please check your plan and "
                                              "billing details (mock)."),
    "server": (500, "INTERNAL", "An internal error has occurred. Please retry or report in "
                                "https://developers.generativeai.google/guide/troubleshooting"),
    "overloaded": (503, "UNAVAILABLE", "The model is overloaded. Please try again later."),
}


def error(kind: ErrorKind, message: str | None, param: str | None, code: str | None) -> tuple[int, bytes]:
    status, rpc_status, canned = _ERRORS[kind]
    text = message if message is not None else canned.format(param=param)
    body: dict[str, Any] = {"code": status, "message": text, "status": rpc_status}
    if kind == "rate_limit":
        body["details"] = [{"@type": _RETRY_INFO, "retryDelay": "2s"}]
    elif kind == "invalid" and param:
        body["details"] = [{"@type": _BAD_REQUEST, "fieldViolations": [{"field": param, "description": text}]}]
    return status, orjson.dumps({"error": body})


def strict_model(model: str) -> bool:
    match = _MAJOR.search(model)
    return match is not None and int(match.group(1)) >= 3


def signature(kind: str, *content: Any) -> str:
    """The signature the mock issues for a part (and expects back on exactly that part)."""
    key = kind + ":" + ":".join(
        c if isinstance(c, str) else orjson.dumps(c, option=orjson.OPT_SORT_KEYS).decode() for c in content
    )
    return make_state(STATE_PREFIX, key)


def from_path(params: dict[str, str], data: dict[str, Any]) -> dict[str, Any]:
    """``{target}`` = ``<model>:<method>``."""
    model, _, method = params.get("target", "").rpartition(":")
    return {**data, _MODEL: model, _METHOD: method}


# ---------------------------------------------------------------------------------------------------
# request


def _camel(key: str) -> str:
    return _CAMEL.sub(lambda m: m.group(1).upper(), key)


def _check_keys(value: Any, allowed: frozenset[str], where: str) -> dict[str, Any]:
    """The object with camelCase keys (the API accepts both spellings); unknown fields are a 400."""
    if not isinstance(value, dict):
        raise RequestInvalid(f"Invalid JSON payload received. '{where}' must be an object.", where)
    out = {_camel(k): v for k, v in value.items()}
    for key in out:
        if key not in allowed:
            raise RequestInvalid(
                f'Invalid JSON payload received. Unknown name "{key}" at \'{where}\': Cannot find field.', where
            )
    return out


def _part_text(part: dict[str, Any]) -> str:
    text = part.get("text")
    return text if isinstance(text, str) else ""


def _response_text(response: Any) -> str:
    if isinstance(response, dict):
        for key in ("output", "result", "return_value"):
            if isinstance(response.get(key), str):
                return str(response[key])
    return orjson.dumps(response).decode()


def _check_signature(part: dict[str, Any], where: str) -> None:
    sig = part.get("thoughtSignature")
    if sig is None or sig in SKIP_SIGNATURES:
        return
    call = part.get("functionCall")
    if isinstance(call, dict):
        expected = signature("call", call.get("name") or "", call.get("args") or {})
    elif part.get("thought") is True:
        expected = signature("thought", _part_text(part))
    else:
        expected = signature("text", _part_text(part))
    if sig != expected:
        raise RequestInvalid(f"Corrupted thought signature at '{where}.thoughtSignature'.", f"{where}.thoughtSignature")


def _parse_contents(contents: Any, strict: bool) -> tuple[str, list[str] | None, int]:
    """(last user text, trailing tool outputs or None, input words)."""
    if not isinstance(contents, list) or not contents:
        raise RequestInvalid("* GenerateContentRequest.contents: contents is not specified", "contents")
    words = 0
    user_text = ""
    tool_outputs: list[str] | None = None
    turn_start = 0  # the current turn starts after the last user content with text
    parsed: list[tuple[str, list[dict[str, Any]]]] = []
    for i, content in enumerate(contents):
        where = f"contents[{i}]"
        if not isinstance(content, dict):
            raise RequestInvalid(f"Invalid JSON payload received. '{where}' must be an object.", where)
        role = content.get("role") or "user"
        if role not in ("user", "model"):
            raise RequestInvalid(f"Please use a valid role: user, model. Got {role!r}.", f"{where}.role")
        raw_parts = content.get("parts")
        if not isinstance(raw_parts, list) or not raw_parts:
            raise RequestInvalid(f"* {where}.parts: contents.parts must not be empty.", f"{where}.parts")
        parts = [_check_keys(p, _PART_FIELDS, f"{where}.parts[{j}]") for j, p in enumerate(raw_parts)]
        texts: list[str] = []
        outputs: list[str] = []
        for j, part in enumerate(parts):
            _check_signature(part, f"{where}.parts[{j}]")
            if "text" in part and part.get("thought") is not True:
                texts.append(_part_text(part))
            call = part.get("functionCall")
            if isinstance(call, dict):
                words += count_words(orjson.dumps(call.get("args") or {}).decode())
            response = part.get("functionResponse")
            if isinstance(response, dict):
                if not isinstance(response.get("name"), str) or not response["name"]:
                    raise RequestInvalid(
                        f"* {where}.parts[{j}].function_response.name: Name cannot be empty.",
                        f"{where}.parts[{j}].functionResponse.name",
                    )
                outputs.append(_response_text(response.get("response")))
        text = " ".join(t for t in texts if t)
        words += count_words(text) + sum(count_words(o) for o in outputs)
        if role == "user":
            if text or not outputs:
                user_text = text
            if text:
                turn_start = i + 1
            tool_outputs = outputs or None
        else:
            tool_outputs = None
        parsed.append((role, parts))
    if strict:
        for i, (role, parts) in enumerate(parsed[turn_start:], turn_start):
            first = next((p for p in parts if "functionCall" in p), None) if role == "model" else None
            if first is not None and "thoughtSignature" not in first:
                name = first["functionCall"].get("name")
                raise RequestInvalid(
                    f"Function call `{name}` in the {i}. content block is missing a `thought_signature`.",
                    f"contents[{i}]",
                )
    return user_text, tool_outputs, words


def _tool_names(data: dict[str, Any]) -> list[str]:
    names: list[str] = []
    for i, tool in enumerate(data.get("tools") or ()):
        if not isinstance(tool, dict):
            continue
        tool = {_camel(k): v for k, v in tool.items()}
        for j, decl in enumerate(tool.get("functionDeclarations") or ()):
            where = f"tools[{i}].functionDeclarations[{j}]"
            decl = _check_keys(decl, _DECLARATION_FIELDS, where)
            if "parameters" in decl and "parametersJsonSchema" in decl:
                raise RequestInvalid(f"{where}: parameters and parametersJsonSchema cannot both be set.", where)
            if isinstance(decl.get("name"), str):
                names.append(decl["name"])
    config = data.get("toolConfig")
    calling = config.get("functionCallingConfig") if isinstance(config, dict) else None
    if not isinstance(calling, dict):
        return names
    calling = {_camel(k): v for k, v in calling.items()}
    mode = calling.get("mode") or "AUTO"
    allowed = calling.get("allowedFunctionNames")
    if allowed is not None and mode != "ANY":
        raise RequestInvalid(
            "allowed_function_names should only be set when the Mode is ANY.",
            "toolConfig.functionCallingConfig.allowedFunctionNames",
        )
    if mode == "NONE":
        return []
    if isinstance(allowed, list):
        for name in allowed:
            if name not in names:
                raise RequestInvalid(
                    f"allowed_function_names: function {name!r} is not declared.",
                    "toolConfig.functionCallingConfig.allowedFunctionNames",
                )
        return [n for n in names if n in allowed]
    return names


def _thinking(config: dict[str, Any]) -> tuple[bool, bool]:
    """(thinks, shows thoughts) from ``generationConfig.thinkingConfig``."""
    thinking = config.get("thinkingConfig")
    if not isinstance(thinking, dict):
        return False, False
    thinking = {_camel(k): v for k, v in thinking.items()}
    include = thinking.get("includeThoughts") is True
    budget = thinking.get("thinkingBudget")
    return include or (isinstance(budget, int) and budget != 0), include


def parse(data: dict[str, Any]) -> Ask:
    model = data.get(_MODEL)
    method = data.get(_METHOD)
    if not isinstance(model, str) or not model or method not in _METHODS:
        raise RequestInvalid(f"Method {method!r} of model {model!r} is not supported.", "model")
    body = _check_keys({k: v for k, v in data.items() if not k.startswith("_")}, _TOP_FIELDS, "request")
    config = _check_keys(body.get("generationConfig") or {}, _CONFIG_FIELDS, "generationConfig")
    mime = config.get("responseMimeType")
    if ("responseSchema" in config or "responseJsonSchema" in config) and mime != "application/json":
        raise RequestInvalid(
            "responseMimeType must be application/json when a response schema is set.",
            "generationConfig.responseMimeType",
        )
    words = 0
    system = body.get("systemInstruction")
    for part in system.get("parts") or () if isinstance(system, dict) else ():
        if isinstance(part, dict):
            words += count_words(_part_text(part))
    user_text, tool_outputs, content_words = _parse_contents(body.get("contents"), strict_model(model))
    for kind, value in _MARKER.findall(user_text):
        data[_FINISH if kind == "finish" else _BLOCK] = value
    user_text = _MARKER.sub("", user_text).strip()
    max_tokens = config.get("maxOutputTokens")
    thinks, _ = _thinking(config)
    cached = body.get("cachedContent")
    return Ask(
        model=model,
        user_text=user_text,
        tool_outputs=tool_outputs,
        tools=_tool_names(body),
        parallel=True,
        reasoning=thinks,
        json_output=mime == "application/json",
        max_tokens=max_tokens if isinstance(max_tokens, int) and not isinstance(max_tokens, bool) else None,
        input_words=words + content_words,
        cache=isinstance(cached, str) and cached.startswith("cachedContents/"),
        stream=method == "streamGenerateContent",
    )


# ---------------------------------------------------------------------------------------------------
# response


def _signs(script: Script) -> bool:
    return strict_model(script.model) or script.reasoning is not None


def _shows_thoughts(data: dict[str, Any]) -> bool:
    config = data.get("generationConfig") or data.get("generation_config")
    return isinstance(config, dict) and _thinking({_camel(k): v for k, v in config.items()})[1]


def _usage(script: Script, final: bool) -> dict[str, Any]:
    usage: dict[str, Any] = {"promptTokenCount": script.input_tokens}
    if final:
        usage["candidatesTokenCount"] = script.output_tokens - script.reasoning_tokens
    usage["totalTokenCount"] = script.input_tokens + (script.output_tokens if final else 0)
    usage["promptTokensDetails"] = [{"modality": "TEXT", "tokenCount": script.input_tokens}]
    if script.cached_tokens:
        usage["cachedContentTokenCount"] = script.cached_tokens
    if script.reasoning_tokens:
        usage["thoughtsTokenCount"] = script.reasoning_tokens
    return usage


def _finish_reason(script: Script, data: dict[str, Any]) -> str:
    forced = data.get(_FINISH)
    if isinstance(forced, str):
        return forced
    return "MAX_TOKENS" if script.incomplete else "STOP"


def _call_parts(script: Script, signed: bool) -> list[dict[str, Any]]:
    parts: list[dict[str, Any]] = []
    for n, call in enumerate(script.tool_calls):
        args = orjson.loads(call.arguments)
        function: dict[str, Any] = {"name": call.name, "args": args}
        if strict_model(script.model):
            function["id"] = call.digest[:8]
        part: dict[str, Any] = {"functionCall": function}
        if signed and n == 0:
            part["thoughtSignature"] = signature("call", call.name, args)
        parts.append(part)
    return parts


def _envelope(script: Script, response_id: str, candidate: dict[str, Any] | None, final: bool) -> bytes:
    body: dict[str, Any] = {}
    if candidate is not None:
        body["candidates"] = [candidate]
    body["usageMetadata"] = _usage(script, final)
    body["modelVersion"] = script.model
    body["responseId"] = response_id
    return orjson.dumps(body)


def _blocked(script: Script, reason: str, response_id: str) -> bytes:
    body = {
        "promptFeedback": {
            "blockReason": reason,
            "safetyRatings": [{"category": "HARM_CATEGORY_DANGEROUS_CONTENT", "probability": "HIGH"}],
        },
        "usageMetadata": {"promptTokenCount": script.input_tokens, "totalTokenCount": script.input_tokens},
        "modelVersion": script.model,
        "responseId": response_id,
    }
    return orjson.dumps(body)


def _candidate(parts: list[dict[str, Any]], finish: str | None) -> dict[str, Any]:
    content: dict[str, Any] = {"parts": parts, "role": "model"} if parts else {"role": "model"}
    candidate: dict[str, Any] = {"content": content}
    if finish is not None:
        candidate["finishReason"] = finish
        if finish == "MALFORMED_FUNCTION_CALL":
            candidate["finishMessage"] = "Malformed function call: the arguments are not valid JSON (mock)."
    candidate["index"] = 0
    return candidate


def render_json(script: Script, data: dict[str, Any]) -> bytes:
    response_id = new_id("gmresp")
    block = data.get(_BLOCK)
    if isinstance(block, str):
        return _blocked(script, block, response_id)
    signed = _signs(script)
    parts: list[dict[str, Any]] = []
    if script.reasoning is not None and _shows_thoughts(data):
        parts.append({"text": script.reasoning, "thought": True})
    if script.text is not None:
        part: dict[str, Any] = {"text": script.text}
        if signed:
            part["thoughtSignature"] = signature("text", script.text)
        parts.append(part)
    parts.extend(_call_parts(script, signed))
    return _envelope(script, response_id, _candidate(parts, _finish_reason(script, data)), True)


def _frame(payload: bytes) -> bytes:
    return b"data: " + payload + _SEP


def render_stream(script: Script, data: dict[str, Any]) -> StreamPlan:
    response_id = new_id("gmresp")
    block = data.get(_BLOCK)
    if isinstance(block, str):
        return StreamPlan([_frame(_blocked(script, block, response_id))], [])
    signed = _signs(script)
    frames: list[bytes] = []
    deltas: list[int] = []

    def chunk(parts: list[dict[str, Any]]) -> None:
        deltas.append(len(frames))
        frames.append(_frame(_envelope(script, response_id, _candidate(parts, None), False)))

    if script.reasoning is not None and _shows_thoughts(data):
        for piece in script.reasoning_pieces:
            chunk([{"text": piece, "thought": True}])
    if script.text is not None:
        for n, piece in enumerate(script.text_pieces):
            part: dict[str, Any] = {"text": piece}
            if signed and n == 0:
                part["thoughtSignature"] = signature("text", script.text)
            chunk([part])
    for part in _call_parts(script, signed):
        chunk([part])
    finish = _finish_reason(script, data)
    last = [{"text": ""}] if script.text is not None or script.tool_calls else []
    frames.append(_frame(_envelope(script, response_id, _candidate(last, finish), True)))
    return StreamPlan(frames, deltas)


def stream_error(sent: int) -> bytes:
    return _frame(b'{"error": {"code": 503, "message": "The model is overloaded. Please try again later.", '
                  b'"status": "UNAVAILABLE"}}')


WIRE = Wire(
    name="gemini",
    parse=parse,
    render_json=render_json,
    render_stream=render_stream,
    error=error,
    stream_error=stream_error,
    malformed_json=b'{"candidates": [{"content": {"parts": [{"text": ',
    malformed_frame=b'data: {"candidates": [{"content": {"parts": \r\n\r\n',
    default_param="contents",
    from_path=from_path,
)

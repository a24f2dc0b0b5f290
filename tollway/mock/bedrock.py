"""AWS Bedrock Converse in its own wire format: ``POST /model/{modelId}/converse`` (JSON) and
``POST /model/{modelId}/converse-stream`` (binary ``application/vnd.amazon.eventstream``, encoded by
:mod:`tollway.mock.bedrock_eventstream`).

Requests are checked the way Bedrock checks them: a SigV4 ``Authorization`` header must be present and
well formed (service ``bedrock``, ``host`` and ``x-amz-date`` signed, an ``X-Amz-Date`` header of the same
day). The mock does not know the secret key, so it cannot verify the signature itself; the adapter's tests do
that. Bodies are validated strictly (known top-level fields, alternating roles starting with the user,
non-blank text, ``toolConfig`` present when the conversation has tool blocks, tool results answering the
previous turn's tool uses, valid tool choice, inference limits, thinking budget below ``maxTokens``) and
``reasoningContent`` must carry a signature this mock issued, exactly as it was sent.

Scenario mapping: reasoning is on when ``additionalModelRequestFields`` enables Claude ``thinking`` or
Nova ``reasoningConfig``; JSON output when ``outputConfig.textFormat`` is a json_schema; caching when any
``cachePoint`` is present. Errors are ``{"message": ...}`` with the exception name in ``x-amzn-ErrorType``
(Bedrock reports bad credentials as 403 ``UnrecognizedClientException``, so the ``401`` fault answers 403);
in-stream failures are ``exception`` messages (``modelStreamErrorException``).
"""

from __future__ import annotations

import base64
import binascii
import re
from collections.abc import Callable, Mapping
from typing import Any

import orjson

from tollway.mock.bedrock_eventstream import event, exception
from tollway.mock.scenario import Ask, RequestInvalid, Script, count_words, make_state, new_id, state_valid
from tollway.mock.wire import ErrorKind, StreamPlan, Wire

STATE_PREFIX = "brsig_"
_CORAL = ":http://internal.amazon.com/coral/com.amazon.bedrock/"
_PAD = "abcdefghijklmnopqrstuvwxyz"

# kind -> (status, exception name, canned message)
_ERRORS: dict[ErrorKind, tuple[int, str, str]] = {
    "invalid": (400, "ValidationException", "1 validation error detected: {param} is invalid (mock fault)"),
    "auth": (403, "UnrecognizedClientException", "The security token included in the request is invalid."),
    "forbidden": (403, "AccessDeniedException", "You don't have access to the model with the specified model ID."),
    "not_found": (
        404,
        "ResourceNotFoundException",
        "Could not resolve the foundation model from the provided model identifier.",
    ),
    "rate_limit": (429, "ThrottlingException", "Too many requests, please wait before trying again."),
    "server": (
        500,
        "InternalServerException",
        "The system encountered an unexpected error during processing. Try your request again.",
    ),
    "overloaded": (503, "ServiceUnavailableException", "Bedrock is unable to process your request."),
}
_FIELDS = frozenset(
    {
        "messages",
        "system",
        "inferenceConfig",
        "toolConfig",
        "guardrailConfig",
        "additionalModelRequestFields",
        "promptVariables",
        "additionalModelResponseFieldPaths",
        "requestMetadata",
        "performanceConfig",
        "serviceTier",
        "outputConfig",
    }
)
_BLOCKS = frozenset(
    {
        "text",
        "image",
        "document",
        "video",
        "audio",
        "toolUse",
        "toolResult",
        "guardContent",
        "cachePoint",
        "reasoningContent",
        "citationsContent",
        "searchResult",
    }
)
_IMAGE_FORMATS = frozenset({"png", "jpeg", "gif", "webp"})
_TOOL_NAME = re.compile(r"[a-zA-Z0-9_-]{1,64}")
_TOOL_USE_ID = re.compile(r"[a-zA-Z0-9_.:-]{1,64}")
_AUTH = re.compile(
    r"AWS4-HMAC-SHA256 Credential=(?P<key>[^/\s]+)/(?P<date>\d{8})/(?P<region>[a-z0-9-]+)/bedrock/aws4_request, "
    r"SignedHeaders=(?P<signed>[a-z0-9;-]+), Signature=[0-9a-f]{64}"
)


def error(kind: ErrorKind, message: str | None, param: str | None, code: str | None) -> tuple[int, bytes]:
    status, _, canned = _ERRORS[kind]
    return status, orjson.dumps({"message": message if message is not None else canned.format(param=param)})


def error_headers(kind: ErrorKind, code: str | None) -> dict[str, str]:
    name = code if code is not None and code.endswith("Exception") else _ERRORS[kind][1]
    return {"x-amzn-ErrorType": name + _CORAL, "x-amzn-RequestId": new_id("req-")}


def check_headers(headers: Mapping[str, str]) -> tuple[ErrorKind, str, str] | None:
    """SigV4 presence and shape (the signature itself needs the secret, which the mock does not have)."""
    auth = headers.get("authorization")
    if not auth:
        return "forbidden", "Missing Authentication Token", "MissingAuthenticationTokenException"
    if auth.startswith("Bearer ") and auth[7:].strip():
        return None  # a Bedrock API key
    match = _AUTH.fullmatch(auth)
    if match is None:
        return (
            "forbidden",
            "Authorization header requires 'Credential', 'Signature' and 'SignedHeaders' parameters "
            "for service 'bedrock'.",
            "IncompleteSignatureException",
        )
    signed = match.group("signed").split(";")
    date = headers.get("x-amz-date") or ""
    if "host" not in signed or "x-amz-date" not in signed or not date.startswith(match.group("date")):
        return (
            "forbidden",
            "The request signature we calculated does not match the signature you provided.",
            "InvalidSignatureException",
        )
    return None


def _from_path(stream: bool) -> Callable[[dict[str, str], dict[str, Any]], dict[str, Any]]:
    """The model id and the streaming switch travel in the URL; ``parse`` finds them as ``_model`` and
    ``_stream`` (real bodies never carry ``_`` fields)."""

    def fold(params: dict[str, str], data: dict[str, Any]) -> dict[str, Any]:
        return {**data, "_model": params.get("modelId", ""), "_stream": stream}

    return fold


# ---------------------------------------------------------------------------------------------------
# request


def _invalid(message: str, param: str) -> RequestInvalid:
    return RequestInvalid(message, param, code="ValidationException")


def _check_base64(value: Any, param: str) -> None:
    if not isinstance(value, str) or not value:
        raise _invalid(f"{param} must be base64-encoded bytes", param)
    try:
        base64.b64decode(value, validate=True)
    except (binascii.Error, ValueError):
        raise _invalid(f"{param} is not valid base64", param) from None


class _Reader:
    """Walks the messages once: validates them and collects what the scenario needs."""

    def __init__(self) -> None:
        self.words = 0
        self.cache = False
        self.user_text = ""
        self.tool_outputs: list[str] | None = None
        self.tool_blocks = False
        self.reasoning = False

    def system(self, system: Any) -> None:
        if system is None:
            return
        if not isinstance(system, list):
            raise _invalid("system must be a list of blocks", "system")
        for i, block in enumerate(system):
            if not isinstance(block, dict) or len(block) != 1:
                raise _invalid(f"system.{i} must have exactly one member", f"system.{i}")
            if "cachePoint" in block:
                self.cache = True
            elif isinstance(block.get("text"), str) and block["text"].strip():
                self.words += count_words(block["text"])
            elif "guardContent" not in block:
                raise _invalid(f"The text field in system.{i} is blank. Add text and try again.", f"system.{i}")

    def messages(self, messages: Any) -> None:
        if not isinstance(messages, list) or not messages:
            raise _invalid("messages must be a non-empty list", "messages")
        previous_uses: set[str] = set()
        for i, message in enumerate(messages):
            if not isinstance(message, dict) or not isinstance(message.get("content"), list):
                raise _invalid(f"messages.{i} must have role and content", f"messages.{i}")
            role = message.get("role")
            expected = "user" if i % 2 == 0 else "assistant"
            if role != expected:
                if i == 0:
                    raise _invalid(
                        "A conversation must start with a user message. Try again with a conversation that "
                        "starts with a user message.",
                        "messages.0.role",
                    )
                raise _invalid(
                    "A conversation must alternate between user and assistant roles. Make sure the conversation "
                    "alternates between user and assistant roles and try again.",
                    f"messages.{i}.role",
                )
            uses: set[str] = set()
            outputs: list[str] = []
            texts: list[str] = []
            for j, block in enumerate(message["content"]):
                self._block(block, f"messages.{i}.content.{j}", role, previous_uses, uses, outputs, texts)
            if role == "user":
                text = " ".join(texts)
                if text or not outputs:
                    self.user_text = text
                self.tool_outputs = outputs or None
            else:
                self.tool_outputs = None
            previous_uses = uses

    def _block(
        self,
        block: Any,
        param: str,
        role: str,
        previous_uses: set[str],
        uses: set[str],
        outputs: list[str],
        texts: list[str],
    ) -> None:
        if not isinstance(block, dict) or len(block) != 1 or next(iter(block)) not in _BLOCKS:
            raise _invalid(f"{param} must have exactly one known member", param)
        kind, value = next(iter(block.items()))
        if kind == "text":
            if not isinstance(value, str) or not value.strip():
                raise _invalid(
                    f"The text field in the ContentBlock object at {param} is blank. Add text to the "
                    "text field, and try again.",
                    param,
                )
            texts.append(value)
            self.words += count_words(value)
        elif kind == "cachePoint":
            self.cache = True
        elif kind == "image":
            if not isinstance(value, dict) or value.get("format") not in _IMAGE_FORMATS:
                raise _invalid(f"{param}.image.format must be one of png, jpeg, gif, webp", f"{param}.image")
            _check_base64((value.get("source") or {}).get("bytes"), f"{param}.image.source.bytes")
        elif kind == "document":
            if not isinstance(value, dict) or not value.get("name") or not value.get("format"):
                raise _invalid(f"{param}.document needs a name and a format", f"{param}.document")
            _check_base64((value.get("source") or {}).get("bytes"), f"{param}.document.source.bytes")
        elif kind == "toolUse":
            self._tool_use(value, param, role, uses)
        elif kind == "toolResult":
            self._tool_result(value, param, role, previous_uses, outputs)
        elif kind == "reasoningContent":
            self._reasoning(value, param, role)

    def _tool_use(self, value: Any, param: str, role: str, uses: set[str]) -> None:
        self.tool_blocks = True
        if role != "assistant" or not isinstance(value, dict):
            raise _invalid(f"{param}: toolUse blocks belong to assistant messages", param)
        use_id, name = value.get("toolUseId"), value.get("name")
        if not isinstance(use_id, str) or not _TOOL_USE_ID.fullmatch(use_id):
            raise _invalid(f"{param}.toolUse.toolUseId must match [a-zA-Z0-9_.:-]{{1,64}}", f"{param}.toolUse")
        if not isinstance(name, str) or not _TOOL_NAME.fullmatch(name):
            raise _invalid(f"{param}.toolUse.name must match [a-zA-Z0-9_-]{{1,64}}", f"{param}.toolUse")
        if not isinstance(value.get("input"), dict):
            raise _invalid(f"{param}.toolUse.input must be an object", f"{param}.toolUse")
        uses.add(use_id)
        self.words += count_words(orjson.dumps(value["input"]).decode())

    def _tool_result(self, value: Any, param: str, role: str, previous_uses: set[str], outputs: list[str]) -> None:
        self.tool_blocks = True
        if role != "user" or not isinstance(value, dict):
            raise _invalid(f"{param}: toolResult blocks belong to user messages", param)
        use_id = value.get("toolUseId")
        if use_id not in previous_uses:
            raise _invalid(
                f"{param}: the toolResult toolUseId {use_id!r} does not match a toolUse block of the previous turn",
                f"{param}.toolResult.toolUseId",
            )
        content = value.get("content")
        if not isinstance(content, list):
            raise _invalid(f"{param}.toolResult.content must be a list", f"{param}.toolResult")
        if value.get("status") not in (None, "success", "error"):
            raise _invalid(f"{param}.toolResult.status must be success or error", f"{param}.toolResult")
        parts = [
            c["text"] if isinstance(c.get("text"), str) else orjson.dumps(c["json"]).decode()
            for c in content
            if isinstance(c, dict) and ("text" in c or "json" in c)
        ]
        output = " ".join(parts)
        outputs.append(output)
        self.words += count_words(output)

    def _reasoning(self, value: Any, param: str, role: str) -> None:
        if role != "assistant" or not isinstance(value, dict):
            raise _invalid(f"{param}: reasoningContent blocks belong to assistant messages", param)
        text_block = value.get("reasoningText")
        if isinstance(text_block, dict):
            if not state_valid(STATE_PREFIX, text_block.get("signature")):
                raise _invalid(f"{param}: the reasoningText signature is invalid", f"{param}.reasoningContent")
            if isinstance(text_block.get("text"), str):
                self.words += count_words(text_block["text"])
            return
        raise _invalid(f"{param}: the redactedContent is invalid", f"{param}.reasoningContent")


def _tools(config: Any, cache: bool) -> tuple[list[str], bool]:
    if not isinstance(config, dict):
        raise _invalid("toolConfig must be an object", "toolConfig")
    tools = config.get("tools")
    if not isinstance(tools, list) or not tools:
        raise _invalid("toolConfig.tools must have at least 1 element", "toolConfig.tools")
    names: list[str] = []
    for i, tool in enumerate(tools):
        if isinstance(tool, dict) and "cachePoint" in tool:
            cache = True
            continue
        spec = tool.get("toolSpec") if isinstance(tool, dict) else None
        if not isinstance(spec, dict) or not isinstance(spec.get("name"), str):
            raise _invalid(f"toolConfig.tools.{i}.toolSpec.name is required", f"toolConfig.tools.{i}")
        if not _TOOL_NAME.fullmatch(spec["name"]):
            raise _invalid(
                f"toolConfig.tools.{i}.toolSpec.name must match [a-zA-Z0-9_-]{{1,64}}", f"toolConfig.tools.{i}"
            )
        schema = spec.get("inputSchema")
        if not isinstance(schema, dict) or not isinstance(schema.get("json"), dict):
            raise _invalid(f"toolConfig.tools.{i}.toolSpec.inputSchema.json is required", f"toolConfig.tools.{i}")
        names.append(spec["name"])
    choice = config.get("toolChoice")
    if choice is not None:
        if not isinstance(choice, dict) or len(choice) != 1 or next(iter(choice)) not in ("auto", "any", "tool"):
            raise _invalid("toolConfig.toolChoice must be one of auto, any, tool", "toolConfig.toolChoice")
        if "tool" in choice:
            name = (choice["tool"] or {}).get("name")
            if name not in names:
                raise _invalid(
                    f"toolConfig.toolChoice.tool.name: tool {name!r} is not in toolConfig.tools",
                    "toolConfig.toolChoice",
                )
            names = [name]
    return names, cache


def _inference(config: Any) -> int | None:
    if config is None:
        return None
    if not isinstance(config, dict):
        raise _invalid("inferenceConfig must be an object", "inferenceConfig")
    max_tokens = config.get("maxTokens")
    if max_tokens is not None and (not isinstance(max_tokens, int) or isinstance(max_tokens, bool) or max_tokens < 1):
        raise _invalid("inferenceConfig.maxTokens must be an integer >= 1", "inferenceConfig.maxTokens")
    for key in ("temperature", "topP"):
        value = config.get(key)
        if value is not None and (not isinstance(value, int | float) or not 0 <= value <= 1):
            raise _invalid(f"inferenceConfig.{key} must be between 0 and 1", f"inferenceConfig.{key}")
    return max_tokens


def _reasoning_requested(fields: Any, max_tokens: int | None) -> bool:
    if not isinstance(fields, dict):
        return False
    thinking = fields.get("thinking")
    if isinstance(thinking, dict) and thinking.get("type") == "enabled":
        budget = thinking.get("budget_tokens")
        if not isinstance(budget, int) or budget < 1024:
            raise _invalid(
                "thinking.budget_tokens: Input should be greater than or equal to 1024",
                "additionalModelRequestFields.thinking.budget_tokens",
            )
        if max_tokens is not None and max_tokens <= budget:
            raise _invalid(
                "`max_tokens` must be greater than `thinking.budget_tokens`",
                "additionalModelRequestFields.thinking.budget_tokens",
            )
        return True
    config = fields.get("reasoningConfig")
    return isinstance(config, dict) and config.get("type") == "enabled"


def _json_output(config: Any) -> bool:
    if config is None:
        return False
    fmt = config.get("textFormat") if isinstance(config, dict) else None
    schema = ((fmt or {}).get("structure") or {}).get("jsonSchema") if isinstance(fmt, dict) else None
    if not isinstance(fmt, dict) or fmt.get("type") != "json_schema" or not isinstance(schema, dict):
        raise _invalid(
            "outputConfig.textFormat must be a json_schema with structure.jsonSchema", "outputConfig.textFormat"
        )
    try:
        orjson.loads(schema.get("schema") or "")
    except orjson.JSONDecodeError:
        raise _invalid(
            "outputConfig.textFormat.structure.jsonSchema.schema must be a JSON string", "outputConfig.textFormat"
        ) from None
    return True


def parse(data: dict[str, Any]) -> Ask:
    for key in data:
        if key not in _FIELDS and not key.startswith("_"):
            raise _invalid(f"Unknown parameter in input: {key!r}", key)
    model = data.get("_model")
    if not isinstance(model, str) or not model:
        raise _invalid("modelId is required", "modelId")
    reader = _Reader()
    reader.system(data.get("system"))
    reader.messages(data.get("messages"))
    names: list[str] = []
    cache = reader.cache
    config = data.get("toolConfig")
    if config is not None:
        names, cache = _tools(config, cache)
    elif reader.tool_blocks:
        raise _invalid(
            "The toolConfig field must be defined when using toolUse and toolResult content blocks.", "toolConfig"
        )
    max_tokens = _inference(data.get("inferenceConfig"))
    return Ask(
        model=model,
        user_text=reader.user_text,
        tool_outputs=reader.tool_outputs,
        tools=names,
        parallel=True,
        reasoning=_reasoning_requested(data.get("additionalModelRequestFields"), max_tokens),
        json_output=_json_output(data.get("outputConfig")),
        max_tokens=max_tokens,
        input_words=reader.words,
        cache=cache,
        stream=data.get("_stream") is True,
    )


# ---------------------------------------------------------------------------------------------------
# response


def _usage(script: Script) -> dict[str, int]:
    fresh = script.input_tokens - script.cached_tokens
    return {
        "inputTokens": fresh,
        "outputTokens": script.output_tokens,
        "totalTokens": fresh + script.cached_tokens + script.output_tokens,
        "cacheReadInputTokens": script.cached_tokens,
        "cacheWriteInputTokens": 0,
    }


def _stop_reason(script: Script) -> str:
    if script.incomplete:
        return "max_tokens"
    return "tool_use" if script.tool_calls else "end_turn"


def _tool_use_id(digest: str) -> str:
    return "tooluse_" + digest


def render_json(script: Script, data: dict[str, Any]) -> bytes:
    content: list[Any] = []
    if script.reasoning is not None:
        signature = make_state(STATE_PREFIX, script.reasoning)
        content.append({"reasoningContent": {"reasoningText": {"text": script.reasoning, "signature": signature}}})
    if script.text is not None:
        content.append({"text": script.text})
    for call in script.tool_calls:
        content.append(
            {
                "toolUse": {
                    "toolUseId": _tool_use_id(call.digest),
                    "name": call.name,
                    "input": orjson.loads(call.arguments),
                }
            }
        )
    body = {
        "output": {"message": {"role": "assistant", "content": content}},
        "stopReason": _stop_reason(script),
        "usage": _usage(script),
        "metrics": {"latencyMs": 1},
    }
    return orjson.dumps(body)


def _event(kind: str, payload: dict[str, Any]) -> bytes:
    # Bedrock pads every event with a "p" field of varying length (against traffic analysis)
    payload["p"] = _PAD[: len(kind) % len(_PAD) + 1]
    return event(kind, orjson.dumps(payload))


def render_stream(script: Script, data: dict[str, Any]) -> StreamPlan:
    frames = [_event("messageStart", {"role": "assistant"})]
    deltas: list[int] = []
    index = 0

    def pieces(values: list[dict[str, Any]]) -> None:
        for value in values:
            deltas.append(len(frames))
            frames.append(_event("contentBlockDelta", {"contentBlockIndex": index, "delta": value}))

    def stop() -> None:
        nonlocal index
        frames.append(_event("contentBlockStop", {"contentBlockIndex": index}))
        index += 1

    if script.reasoning is not None:
        pieces([{"reasoningContent": {"text": p}} for p in script.reasoning_pieces])
        signature = make_state(STATE_PREFIX, script.reasoning)
        frames.append(
            _event(
                "contentBlockDelta",
                {"contentBlockIndex": index, "delta": {"reasoningContent": {"signature": signature}}},
            )
        )
        stop()
    if script.text is not None:
        pieces([{"text": p} for p in script.text_pieces])
        stop()
    for call in script.tool_calls:
        start = {"toolUse": {"toolUseId": _tool_use_id(call.digest), "name": call.name}}
        frames.append(_event("contentBlockStart", {"contentBlockIndex": index, "start": start}))
        pieces([{"toolUse": {"input": p}} for p in call.argument_pieces])
        stop()
    frames.append(_event("messageStop", {"stopReason": _stop_reason(script)}))
    frames.append(_event("metadata", {"usage": _usage(script), "metrics": {"latencyMs": 1}}))
    return StreamPlan(frames, deltas)


def stream_error(sent: int) -> bytes:
    message = {"message": "The model failed to complete the response (mock stream error).", "originalStatusCode": 500}
    return exception("modelStreamErrorException", orjson.dumps(message))


def _wire(name: str, stream: bool) -> Wire:
    return Wire(
        name=name,
        parse=parse,
        render_json=render_json,
        render_stream=render_stream,
        error=error,
        stream_error=stream_error,
        malformed_json=b'{"output": {"message": {"role": "assistant", "content": [{"text": ',
        malformed_frame=event("contentBlockDelta", b'{"contentBlockIndex": 0, "delta": '),
        default_param="messages",
        from_path=_from_path(stream),
        content_type=b"application/vnd.amazon.eventstream",
        error_headers=error_headers,
        check_headers=check_headers,
    )


CONVERSE = _wire("bedrock", stream=False)
CONVERSE_STREAM = _wire("bedrock-stream", stream=True)

"""Adapter for OpenAI's Responses API (``POST {base_url}/responses``).

The canonical model is Open Responses, so this adapter is mostly a filter: it sends canonical items with
the fields OpenAI would reject removed, and reads OpenAI's items back without their upstream ids.

Upstream requests always carry ``store: false``: tollway keeps conversation state itself (it resolves
``previous_response_id`` before the adapter and sends the full input). Reasoning therefore round-trips
statelessly: for reasoning-capable models the adapter asks for ``reasoning.encrypted_content``, wraps
the value in the :mod:`tollway.core.reasoning_state` envelope on the way out and unwraps it on the way
back in. Items are sent without ``id``/``status``: with ``store: false`` OpenAI looks ids up in its
store and fails ("Item with id ... not found"), and it rejects ``status`` and non-empty ``content`` on
input reasoning items.
"""

from __future__ import annotations

from typing import Any

import orjson

from tollway.core import reasoning_state
from tollway.core.errors import GatewayError
from tollway.core.types import (
    JSON,
    CanonicalRequest,
    CanonicalResponse,
    Delta,
    Fidelity,
    Finish,
    FunctionTool,
    Item,
    ItemDone,
    ReasoningDelta,
    ReasoningState,
    RefusalDelta,
    ResponseStatus,
    StreamError,
    TextDelta,
    ToolCallArgsDelta,
    ToolCallStart,
    ToolChoice,
    Usage,
    UsageUpdate,
)
from tollway.providers.base import ProviderSettings, UpstreamRequest

PROVIDER = "openai"
INCLUDE_REASONING = "reasoning.encrypted_content"

# Model families that return (and accept) encrypted reasoning content. Other models reject
# ``include: ["reasoning.encrypted_content"]`` with "Encrypted content is not supported with this model".
_REASONING_FAMILIES = ("o1", "o3", "o4", "gpt-5", "gpt-6", "codex")

# Request fields with no canonical slot that OpenAI's Responses API accepts verbatim.
_EXTRA_PASSTHROUGH = frozenset({"prompt_cache_retention", "prompt_cache_options"})

# Optional scalar request fields sent under the same name when set.
_SCALARS = (
    "max_output_tokens",
    "temperature",
    "top_p",
    "presence_penalty",
    "frequency_penalty",
    "top_logprobs",
    "parallel_tool_calls",
    "truncation",
    "prompt_cache_key",
    "service_tier",
    "max_tool_calls",
)

_TOOL_CHOICE_MODES = frozenset({"auto", "none", "required"})
_ALLOWED_TOOLS_MODES = frozenset({"auto", "required"})

_STATUS: dict[str, ResponseStatus] = {
    "completed": "completed",
    "incomplete": "incomplete",
    "failed": "failed",
    "cancelled": "failed",
    "in_progress": "in_progress",
    "queued": "in_progress",
}

_TRUNCATED = "upstream stream ended before response.completed"


def supports_encrypted_reasoning(model: str) -> bool:
    """Whether ``model`` (an upstream id, possibly ``org/name`` or a ``ft:`` fine-tune) is an OpenAI
    reasoning model."""
    name = model.rsplit("/", 1)[-1].lower().removeprefix("ft:")
    return name.startswith(_REASONING_FAMILIES) and "-chat" not in name


# --------------------------------------------------------------------------------------------------
# Request
# --------------------------------------------------------------------------------------------------


def _part_in(part: Any, assistant: bool) -> Any:
    """One message content part, in the form OpenAI accepts for the message's role."""
    if not isinstance(part, dict):
        return part
    ptype = part.get("type")
    if ptype == "input_text" or ptype == "output_text":
        text = part.get("text", "")
        if assistant:
            annotations = part.get("annotations")
            return {"type": "output_text", "text": text, "annotations": annotations or []}
        out: JSON = {"type": "input_text", "text": text}
        if "prompt_cache_breakpoint" in part:
            out["prompt_cache_breakpoint"] = part["prompt_cache_breakpoint"]
        return out
    if ptype == "input_image":
        img: JSON = {"type": "input_image", "detail": part.get("detail") or "auto"}
        for key in ("image_url", "file_id", "prompt_cache_breakpoint"):
            value = part.get(key)
            if value is not None:
                img[key] = value
        return img
    if ptype == "refusal":
        return {"type": "refusal", "refusal": part.get("refusal", "")}
    return part


def _message_in(item: Item) -> Item:
    role = item.get("role", "user")
    assistant = role == "assistant"
    content = item.get("content")
    if isinstance(content, list):
        content = [_part_in(p, assistant) for p in content]
    msg: Item = {"type": "message", "role": role, "content": content}
    phase = item.get("phase")
    if assistant and phase is not None:
        msg["phase"] = phase
    return msg


def _reasoning_in(item: Item, index: int, fidelity: Fidelity) -> Item | None:
    """An input reasoning item, or None (reported in ``fidelity.dropped``) when its state isn't ours."""
    value = item.get("encrypted_content")
    if not isinstance(value, str) or not value:
        fidelity.dropped.append(f"input[{index}] (reasoning without provider state)")
        return None
    unwrapped = reasoning_state.unwrap(value)
    if unwrapped is None:
        fidelity.dropped.append(f"input[{index}] (reasoning state unreadable)")
        return None
    provider, state = unwrapped
    if provider != PROVIDER:
        fidelity.dropped.append(f"input[{index}] (reasoning from {provider})")
        return None
    raw = state.get("encrypted_content")
    if not isinstance(raw, str) or not raw:
        fidelity.dropped.append(f"input[{index}] (reasoning state unreadable)")
        return None
    summary = [
        {"type": "summary_text", "text": s["text"]}
        for s in item.get("summary") or ()
        if isinstance(s, dict) and isinstance(s.get("text"), str)
    ]
    # ``content`` (reasoning_text) is not sent: OpenAI rejects a non-empty one on input, and the
    # encrypted content already carries the reasoning.
    return {"type": "reasoning", "summary": summary, "encrypted_content": raw}


def _input(items: list[Item], fidelity: Fidelity) -> tuple[list[Item], bool]:
    """Canonical input → OpenAI input; also whether any OpenAI reasoning state is carried."""
    out: list[Item] = []
    has_state = False
    for index, item in enumerate(items):
        itype = item.get("type", "message")
        if itype == "message":
            out.append(_message_in(item))
        elif itype == "function_call":
            out.append(
                {
                    "type": "function_call",
                    "call_id": item.get("call_id"),
                    "name": item.get("name"),
                    "arguments": item.get("arguments", ""),
                }
            )
        elif itype == "function_call_output":
            call_id, output = item.get("call_id"), item.get("output", "")
            out.append({"type": "function_call_output", "call_id": call_id, "output": output})
        elif itype == "reasoning":
            converted = _reasoning_in(item, index, fidelity)
            if converted is not None:
                out.append(converted)
                has_state = True
        elif itype == "item_reference":
            # References resolve against the gateway's store, never OpenAI's (store is false upstream).
            fidelity.dropped.append(f"input[{index}] (item_reference)")
        else:
            out.append({k: v for k, v in item.items() if k != "id" and k != "status"})
    return out, has_state


def _tool(tool: FunctionTool) -> JSON:
    out: JSON = {"type": "function", "name": tool.name}
    if tool.description is not None:
        out["description"] = tool.description
    if tool.parameters is not None:
        out["parameters"] = tool.parameters
    if tool.strict is not None:
        out["strict"] = tool.strict
    return out


def _valid_raw_tool_choice(raw: Any) -> Any:
    """``raw`` normalised if it is a value OpenAI's Responses API accepts, else None."""
    if isinstance(raw, str):
        return raw if raw in _TOOL_CHOICE_MODES else None
    if not isinstance(raw, dict):
        return None
    rtype = raw.get("type")
    if rtype == "function" and isinstance(raw.get("name"), str):
        return {"type": "function", "name": raw["name"]}
    if (
        rtype == "allowed_tools"
        and raw.get("mode") in _ALLOWED_TOOLS_MODES
        and isinstance(raw.get("tools"), list)
        and all(isinstance(t, dict) for t in raw["tools"])
    ):
        return {"type": "allowed_tools", "mode": raw["mode"], "tools": raw["tools"]}
    return None


def _tool_choice(choice: ToolChoice) -> Any:
    raw = _valid_raw_tool_choice(choice.raw)
    if raw is not None:
        return raw
    if choice.allowed is None or choice.mode == "none":
        return choice.mode
    if choice.mode == "required" and len(choice.allowed) == 1:
        return {"type": "function", "name": choice.allowed[0]}
    return {
        "type": "allowed_tools",
        "mode": choice.mode,
        "tools": [{"type": "function", "name": name} for name in choice.allowed],
    }


def _text_format(req: CanonicalRequest, fidelity: Fidelity) -> JSON | None:
    fmt = req.text_format
    if fmt.type == "json_object":
        return {"type": "json_object"}
    if fmt.type != "json_schema":
        return None
    name = fmt.name
    if not name:
        name = "response"
        fidelity.approximated.append("text.format.name")
    out: JSON = {"type": "json_schema", "name": name, "schema": fmt.schema if fmt.schema is not None else {}}
    if fmt.description is not None:
        out["description"] = fmt.description
    if fmt.strict is not None:
        out["strict"] = fmt.strict
    return out


def build_body(req: CanonicalRequest, model: str, fidelity: Fidelity) -> JSON:
    """The JSON body of the upstream request (exposed for tests and tooling)."""
    items, has_state = _input(req.input, fidelity)
    body: JSON = {"model": model, "input": items}
    if req.instructions is not None:
        body["instructions"] = req.instructions
    if req.tools:
        body["tools"] = [_tool(t) for t in req.tools]
        body["tool_choice"] = _tool_choice(req.tool_choice)
    fmt = _text_format(req, fidelity)
    if fmt is not None:
        body["text"] = {"format": fmt}
    reasoning: JSON = {}
    if req.reasoning_effort is not None:
        reasoning["effort"] = req.reasoning_effort
    if req.reasoning_summary is not None:
        reasoning["summary"] = req.reasoning_summary
    if reasoning:
        body["reasoning"] = reasoning
    for name in _SCALARS:
        value = getattr(req, name)
        if value is not None:
            body[name] = value
    if req.user is not None:
        body["safety_identifier"] = req.user
    for key, value in req.extra.items():
        if value is None:
            continue
        if key in _EXTRA_PASSTHROUGH:
            body[key] = value
        else:
            fidelity.dropped.append(key)
    if req.stop:
        fidelity.dropped.append("stop")
    if req.seed is not None:
        fidelity.dropped.append("seed")
    include = list(req.include)
    if INCLUDE_REASONING not in include and (has_state or reasoning or supports_encrypted_reasoning(model)):
        include.append(INCLUDE_REASONING)
    if include:
        body["include"] = include
    body["store"] = False
    body["stream"] = req.stream
    return body


# --------------------------------------------------------------------------------------------------
# Response
# --------------------------------------------------------------------------------------------------


def _output_text(part: JSON) -> JSON:
    out: JSON = {"type": "output_text", "text": part.get("text") or ""}
    out["annotations"] = part.get("annotations") or []
    logprobs = part.get("logprobs")
    if logprobs:
        out["logprobs"] = logprobs
    return out


def _texts(parts: Any, ptype: str) -> list[JSON]:
    return [
        {"type": ptype, "text": p["text"]}
        for p in parts or ()
        if isinstance(p, dict) and p.get("type", ptype) == ptype and isinstance(p.get("text"), str)
    ]


def _wrap_state(value: str) -> str:
    return reasoning_state.wrap(PROVIDER, {"encrypted_content": value})


def _output_item(item: Any) -> Item | None:
    """One OpenAI output item → canonical (no upstream id); None for types tollway doesn't carry."""
    if not isinstance(item, dict):
        return None
    itype = item.get("type")
    out: Item
    if itype == "message":
        content: list[JSON] = []
        for part in item.get("content") or ():
            ptype = part.get("type") if isinstance(part, dict) else None
            if ptype == "output_text":
                content.append(_output_text(part))
            elif ptype == "refusal":
                content.append({"type": "refusal", "refusal": part.get("refusal") or ""})
        out = {"type": "message", "role": "assistant", "content": content}
        if item.get("phase") is not None:
            out["phase"] = item["phase"]
    elif itype == "function_call":
        out = {
            "type": "function_call",
            "call_id": item.get("call_id") or "",
            "name": item.get("name") or "",
            "arguments": item.get("arguments") or "",
        }
    elif itype == "reasoning":
        out = {
            "type": "reasoning",
            "summary": _texts(item.get("summary"), "summary_text"),
            "content": _texts(item.get("content"), "reasoning_text"),
        }
        encrypted = item.get("encrypted_content")
        if isinstance(encrypted, str) and encrypted:
            out["encrypted_content"] = _wrap_state(encrypted)
    else:
        return None
    status = item.get("status")
    if isinstance(status, str):
        out["status"] = status
    return out


def _int(value: Any) -> int:
    return value if isinstance(value, int) else 0


def usage_from(raw: Any) -> Usage | None:
    if not isinstance(raw, dict):
        return None
    in_details = raw.get("input_tokens_details") or {}
    out_details = raw.get("output_tokens_details") or {}
    return Usage(
        input_tokens=_int(raw.get("input_tokens")),
        output_tokens=_int(raw.get("output_tokens")),
        cached_tokens=_int(in_details.get("cached_tokens")),
        cache_write_tokens=_int(in_details.get("cache_write_tokens")),
        reasoning_tokens=_int(out_details.get("reasoning_tokens")),
    )


def _incomplete_reason(response: JSON) -> str | None:
    details = response.get("incomplete_details")
    if isinstance(details, dict) and isinstance(details.get("reason"), str):
        return str(details["reason"])
    return None


def _str_or_none(value: Any) -> str | None:
    return value if isinstance(value, str) else None


# --------------------------------------------------------------------------------------------------
# Stream
# --------------------------------------------------------------------------------------------------


class ResponsesStreamParser:
    """Turns OpenAI Responses SSE events into deltas; ``key`` is OpenAI's ``output_index``."""

    __slots__ = ("_args", "_finished", "_phase", "_started", "_summary_index")

    def __init__(self) -> None:
        self._finished = False
        self._started: set[Any] = set()  # items for which a delta was emitted
        self._args: set[Any] = set()  # function calls that got argument deltas
        self._phase: dict[Any, str] = {}
        self._summary_index: dict[Any, int] = {}

    def feed(self, event: str | None, data: bytes) -> list[Delta]:
        if self._finished:
            return []
        try:
            ev = orjson.loads(data)
        except orjson.JSONDecodeError:
            if data.strip() == b"[DONE]":
                return []
            return [StreamError("malformed event in upstream stream", code="upstream_invalid_event")]
        if not isinstance(ev, dict):
            return []
        etype = ev.get("type") or event
        handler = _HANDLERS.get(etype) if isinstance(etype, str) else None
        return handler(self, ev) if handler is not None else []

    def close(self) -> list[Delta]:
        if self._finished:
            return []
        self._finished = True
        return [StreamError(_TRUNCATED, code="upstream_stream_truncated")]

    # -- per-event handlers ---------------------------------------------------------------------

    def _text(self, ev: JSON) -> list[Delta]:
        key = ev.get("output_index")
        self._started.add(key)
        return [TextDelta(key, ev.get("delta") or "", self._phase.get(key))]

    def _refusal(self, ev: JSON) -> list[Delta]:
        key = ev.get("output_index")
        self._started.add(key)
        return [RefusalDelta(key, ev.get("delta") or "")]

    def _args_delta(self, ev: JSON) -> list[Delta]:
        key = ev.get("output_index")
        self._args.add(key)
        return [ToolCallArgsDelta(key, ev.get("delta") or "")]

    def _reasoning_text(self, ev: JSON) -> list[Delta]:
        key = ev.get("output_index")
        self._started.add(key)
        return [ReasoningDelta(key, ev.get("delta") or "", summary=False)]

    def _reasoning_summary(self, ev: JSON) -> list[Delta]:
        key = ev.get("output_index")
        self._started.add(key)
        text = ev.get("delta") or ""
        index = ev.get("summary_index")
        if isinstance(index, int):
            previous = self._summary_index.get(key)
            if previous is not None and index != previous:
                text = "\n\n" + text  # a new summary part: keep parts apart in the joined text
            self._summary_index[key] = index
        return [ReasoningDelta(key, text, summary=True)]

    def _item_added(self, ev: JSON) -> list[Delta]:
        item = ev.get("item")
        if not isinstance(item, dict):
            return []
        key = ev.get("output_index")
        itype = item.get("type")
        if itype == "function_call":
            self._started.add(key)
            return [ToolCallStart(key, item.get("call_id") or "", item.get("name") or "")]
        if itype == "message" and isinstance(item.get("phase"), str):
            self._phase[key] = item["phase"]
        return []

    def _item_done(self, ev: JSON) -> list[Delta]:
        item = ev.get("item")
        if not isinstance(item, dict):
            return []
        key = ev.get("output_index")
        itype = item.get("type")
        out: list[Delta] = []
        started = key in self._started
        if itype == "function_call":
            if not started:
                out.append(ToolCallStart(key, item.get("call_id") or "", item.get("name") or ""))
            arguments = item.get("arguments")
            if key not in self._args and isinstance(arguments, str) and arguments:
                out.append(ToolCallArgsDelta(key, arguments))
        elif itype == "message":
            if not started:
                out.extend(self._message_fallback(key, item))
        elif itype == "reasoning":
            if not started:
                summary = "\n\n".join(p["text"] for p in _texts(item.get("summary"), "summary_text"))
                text = "".join(p["text"] for p in _texts(item.get("content"), "reasoning_text"))
                if text:
                    out.append(ReasoningDelta(key, text, summary=False))
                if summary:
                    out.append(ReasoningDelta(key, summary, summary=True))
            encrypted = item.get("encrypted_content")
            if isinstance(encrypted, str) and encrypted:
                out.append(ReasoningState(key, _wrap_state(encrypted)))
        else:
            return []  # item types tollway doesn't carry (web_search_call, ...)
        if started or out:
            self._started.add(key)
            out.append(ItemDone(key))
        return out

    def _message_fallback(self, key: Any, item: JSON) -> list[Delta]:
        """Content of a message whose text arrived only in ``output_item.done``."""
        out: list[Delta] = []
        phase = item.get("phase") if isinstance(item.get("phase"), str) else self._phase.get(key)
        for part in item.get("content") or ():
            if not isinstance(part, dict):
                continue
            if part.get("type") == "output_text" and part.get("text"):
                out.append(TextDelta(key, part["text"], phase))
            elif part.get("type") == "refusal" and part.get("refusal"):
                out.append(RefusalDelta(key, part["refusal"]))
        return out

    def _terminal(self, ev: JSON) -> list[Delta]:
        self._finished = True
        response = ev.get("response")
        if not isinstance(response, dict):
            response = {}
        etype = ev.get("type")
        out: list[Delta] = []
        status: ResponseStatus = "completed"
        reason = None
        if etype == "response.failed":
            status = "failed"
            error = response.get("error")
            message, code = "upstream response failed", None
            if isinstance(error, dict):
                message = _str_or_none(error.get("message")) or message
                code = _str_or_none(error.get("code"))
            out.append(StreamError(message, code=code))
        elif etype == "response.incomplete":
            status = "incomplete"
            reason = _incomplete_reason(response)
        usage = usage_from(response.get("usage"))
        if usage is not None:
            details = response["usage"].get("input_tokens_details") or {}
            out.append(
                UsageUpdate(
                    input_tokens=usage.input_tokens,
                    output_tokens=usage.output_tokens,
                    cached_tokens=usage.cached_tokens,
                    cache_write_tokens=usage.cache_write_tokens if "cache_write_tokens" in details else None,
                    reasoning_tokens=usage.reasoning_tokens,
                )
            )
        out.append(
            Finish(
                status=status,
                incomplete_reason=reason,
                upstream_model=_str_or_none(response.get("model")),
                upstream_id=_str_or_none(response.get("id")),
            )
        )
        return out

    def _error(self, ev: JSON) -> list[Delta]:
        self._finished = True
        nested = ev.get("error")
        err: JSON = nested if isinstance(nested, dict) else ev  # OpenAI's is flat
        message = _str_or_none(err.get("message")) or "upstream stream error"
        return [StreamError(message, code=_str_or_none(err.get("code")))]


_HANDLERS = {
    "response.output_text.delta": ResponsesStreamParser._text,
    "response.function_call_arguments.delta": ResponsesStreamParser._args_delta,
    "response.reasoning_summary_text.delta": ResponsesStreamParser._reasoning_summary,
    "response.reasoning_text.delta": ResponsesStreamParser._reasoning_text,
    "response.reasoning.delta": ResponsesStreamParser._reasoning_text,
    "response.refusal.delta": ResponsesStreamParser._refusal,
    "response.output_item.added": ResponsesStreamParser._item_added,
    "response.output_item.done": ResponsesStreamParser._item_done,
    "response.completed": ResponsesStreamParser._terminal,
    "response.incomplete": ResponsesStreamParser._terminal,
    "response.failed": ResponsesStreamParser._terminal,
    "error": ResponsesStreamParser._error,
}


# --------------------------------------------------------------------------------------------------
# Adapter
# --------------------------------------------------------------------------------------------------


class OpenAIResponsesAdapter:
    kind = "openai_responses"

    def build_request(
        self, req: CanonicalRequest, model: str, settings: ProviderSettings, fidelity: Fidelity
    ) -> UpstreamRequest:
        headers = {"content-type": "application/json"}
        if req.stream:
            headers["accept"] = "text/event-stream"
        if settings.api_key:
            headers["authorization"] = f"Bearer {settings.api_key}"
        if settings.headers:
            headers.update(settings.headers)
        return UpstreamRequest(
            method="POST",
            url=f"{settings.base_url}/responses",
            headers=headers,
            body=orjson.dumps(build_body(req, model, fidelity)),
            stream=req.stream,
            stream_format="sse",
        )

    def parse_response(self, body: bytes) -> CanonicalResponse:
        try:
            data = orjson.loads(body)
        except orjson.JSONDecodeError:
            data = None
        if not isinstance(data, dict):
            raise GatewayError(
                502,
                "openai: upstream returned a body that is not a JSON object",
                type="server_error",
                code="upstream_invalid_response",
            )
        output: list[Item] = []
        for raw in data.get("output") or ():
            item = _output_item(raw)
            if item is not None:
                output.append(item)
        status = _STATUS.get(data.get("status") or "completed", "failed")
        return CanonicalResponse(
            output=output,
            status=status,
            incomplete_reason=_incomplete_reason(data) if status == "incomplete" else None,
            usage=usage_from(data.get("usage")),
            upstream_model=_str_or_none(data.get("model")),
            upstream_id=_str_or_none(data.get("id")),
        )

    def stream_parser(self, req: CanonicalRequest) -> ResponsesStreamParser:
        return ResponsesStreamParser()

    def error_message(self, body: bytes) -> tuple[str, str | None]:
        text = body.decode("utf-8", errors="replace")
        try:
            data = orjson.loads(body)
        except orjson.JSONDecodeError:
            return (text[:500] or "upstream returned an empty error body"), None
        err = data.get("error") if isinstance(data, dict) else None
        if isinstance(err, dict):
            message = _str_or_none(err.get("message")) or text[:500]
            code = _str_or_none(err.get("code")) or _str_or_none(err.get("type"))
            return message, code
        if isinstance(err, str):
            return err, None
        if isinstance(data, dict) and isinstance(data.get("message"), str):
            return data["message"], _str_or_none(data.get("code"))
        return text[:500], None

"""Generic OpenAI-compatible Chat Completions upstream adapter (``kind = "openai_chat"``).

Serves any ``{base_url}/chat/completions`` endpoint: OpenAI itself, vLLM, LM Studio, llama.cpp, TGI, ...
Provider quirks (Mistral, Hugging Face) are handled by subclasses overriding the small hooks below:
the class attributes (field names, roles, what is sent) and the methods ``message_content`` (canonical
message content -> chat content), ``content_fragments`` (chat content -> text/reasoning fragments),
``reasoning_text``, ``parse_usage``, ``finish`` and ``error_fields``. The stream parser lives in
:mod:`tollway.providers.openai_chat_stream` and calls back into the same hooks.
"""

from __future__ import annotations

from typing import Any, ClassVar

import orjson

from tollway.core.errors import GatewayError
from tollway.core.types import (
    JSON,
    CanonicalRequest,
    CanonicalResponse,
    Fidelity,
    FunctionTool,
    Item,
    ResponseStatus,
    Usage,
)
from tollway.providers.base import ProviderSettings, StreamParser, UpstreamRequest
from tollway.providers.openai_chat_stream import ChatStreamParser, new_call_id

_TEXT_PART_TYPES = frozenset({"input_text", "output_text", "text"})
_LOGPROBS_INCLUDE = "message.output_text.logprobs"
_ENCRYPTED_INCLUDE = "reasoning.encrypted_content"
_MAX_ERROR_TEXT = 2000

FinishMapping = dict[str, tuple[ResponseStatus, str | None]]


def _count(value: Any) -> int:
    return value if type(value) is int else 0


def _reasoning_is_empty(item: Item) -> bool:
    if item.get("encrypted_content"):
        return False
    for key in ("summary", "content"):
        for part in item.get(key) or ():
            if isinstance(part, dict) and part.get("text"):
                return False
    return True


def _render_detail(detail: Any) -> str:
    """Render a FastAPI/pydantic ``detail`` (str, list of ``{loc, msg}``, or any JSON) as one line."""
    if isinstance(detail, str):
        return detail
    if isinstance(detail, list):
        lines = []
        for entry in detail:
            if isinstance(entry, dict) and "msg" in entry:
                loc = entry.get("loc")
                where = ".".join(str(p) for p in loc) if isinstance(loc, list) else ""
                lines.append(f"{where}: {entry['msg']}" if where else str(entry["msg"]))
            else:
                lines.append(_render_detail(entry))
        return "; ".join(lines)
    if isinstance(detail, dict):
        for key in ("message", "detail", "msg"):
            if key in detail:
                return _render_detail(detail[key])
    return orjson.dumps(detail).decode()


def _str_or_none(value: Any) -> str | None:
    return value if isinstance(value, str) and value else None


class OpenAIChatAdapter:
    """Canonical <-> OpenAI Chat Completions. Pure transforms; no I/O."""

    kind = "openai_chat"

    # ---- hooks: override in subclasses for provider quirks -------------------------------------------
    path: ClassVar[str] = "/chat/completions"
    max_tokens_field: ClassVar[str] = "max_completion_tokens"  # "max_tokens" for older servers
    # Fields carrying raw reasoning text on messages/deltas; the first non-empty one wins (some servers
    # send both with the same text).
    reasoning_fields: ClassVar[tuple[str, ...]] = ("reasoning_content", "reasoning")
    include_stream_usage: ClassVar[bool] = True  # send stream_options.include_usage when streaming
    instructions_role: ClassVar[str] = "system"
    developer_role: ClassVar[str] = "developer"  # "system" for servers without the developer role
    # content of an assistant message that only carries tool_calls
    tool_call_only_content: ClassVar[Any] = None
    send_reasoning_effort: ClassVar[bool] = True
    send_prompt_cache_key: ClassVar[bool] = True
    # fields in ``CanonicalRequest.extra`` (client names) that this API understands; sent as they are
    passthrough_extra: ClassVar[frozenset[str]] = frozenset(
        {
            "n",
            "logit_bias",
            "logprobs",
            "prediction",
            "prompt_cache_options",
            "prompt_cache_retention",
            "safety_identifier",
            "verbosity",
            "web_search_options",
        }
    )
    finish_reasons: ClassVar[FinishMapping] = {
        "stop": ("completed", None),
        "tool_calls": ("completed", None),
        "function_call": ("completed", None),
        "length": ("incomplete", "max_output_tokens"),
        "content_filter": ("incomplete", "content_filter"),
        "error": ("failed", None),
    }

    # ---- request ---------------------------------------------------------------------------------------
    def build_request(
        self, req: CanonicalRequest, model: str, settings: ProviderSettings, fidelity: Fidelity
    ) -> UpstreamRequest:
        headers = {"content-type": "application/json"}
        if settings.api_key:
            headers["authorization"] = f"Bearer {settings.api_key}"
        headers.update(settings.headers)
        body = self.build_body(req, model, fidelity)
        return UpstreamRequest(
            method="POST",
            url=settings.base_url.rstrip("/") + self.path,
            headers=headers,
            body=orjson.dumps(body),
            stream=req.stream,
            stream_format="sse",
        )

    def build_body(self, req: CanonicalRequest, model: str, fidelity: Fidelity) -> JSON:
        body: JSON = {"model": model, "messages": self.messages(req, fidelity)}
        if req.tools:
            self._add_tools(body, req)
        if req.max_output_tokens is not None:
            body[self.max_tokens_field] = req.max_output_tokens
        if req.temperature is not None:
            body["temperature"] = req.temperature
        if req.top_p is not None:
            body["top_p"] = req.top_p
        if req.presence_penalty is not None:
            body["presence_penalty"] = req.presence_penalty
        if req.frequency_penalty is not None:
            body["frequency_penalty"] = req.frequency_penalty
        if req.stop:
            body["stop"] = req.stop
        if req.seed is not None:
            body["seed"] = req.seed
        if req.user is not None:
            body["user"] = req.user
        if req.service_tier is not None:
            body["service_tier"] = req.service_tier
        fmt = req.text_format
        if fmt.type == "json_schema":
            schema: JSON = {"name": fmt.name or "response", "schema": fmt.schema or {}}
            if fmt.strict is not None:
                schema["strict"] = fmt.strict
            if fmt.description is not None:
                schema["description"] = fmt.description
            body["response_format"] = {"type": "json_schema", "json_schema": schema}
        elif fmt.type == "json_object":
            body["response_format"] = {"type": "json_object"}
        if req.top_logprobs is not None:
            body["logprobs"] = True
            body["top_logprobs"] = req.top_logprobs
        for i, name in enumerate(req.include):
            if name == _LOGPROBS_INCLUDE:
                body["logprobs"] = True
            elif name != _ENCRYPTED_INCLUDE:
                # encrypted reasoning does not exist here; whatever reasoning text the server exposes
                # is returned as reasoning items anyway.
                fidelity.dropped.append(f"include[{i}] ({name})")
        if req.reasoning_effort is not None:
            if self.send_reasoning_effort:
                body["reasoning_effort"] = req.reasoning_effort
            else:
                fidelity.dropped.append("reasoning.effort")
        if req.reasoning_summary is not None:
            fidelity.dropped.append("reasoning.summary")
        if req.prompt_cache_key is not None:
            if self.send_prompt_cache_key:
                body["prompt_cache_key"] = req.prompt_cache_key
            else:
                fidelity.dropped.append("prompt_cache_key")
        if req.truncation not in (None, "disabled"):
            fidelity.dropped.append("truncation")
        if req.max_tool_calls is not None:
            fidelity.dropped.append("max_tool_calls")
        # The pipeline reports every ``extra`` field as dropped before building; the ones this API
        # understands are sent as they are and un-reported.
        for key, value in req.extra.items():
            if key in self.passthrough_extra:
                body.setdefault(key, value)
                if key in fidelity.dropped:
                    fidelity.dropped.remove(key)
        body["stream"] = req.stream
        if req.stream and self.include_stream_usage:
            body["stream_options"] = {"include_usage": True}
        return body

    def _add_tools(self, body: JSON, req: CanonicalRequest) -> None:
        choice = req.tool_choice
        allowed = choice.allowed
        named = allowed is not None and len(allowed) == 1 and choice.mode == "required"
        tools = req.tools
        if allowed is not None and not named:
            # An allowed subset is a hard constraint: the upstream only sees those tools. A single
            # required tool uses the named tool_choice instead, which keeps the tool list (and so the
            # upstream prompt-cache prefix) stable across turns.
            keep = set(allowed)
            tools = [tool for tool in tools if tool.name in keep]
            if not tools:
                return
        body["tools"] = [self.tool_json(tool) for tool in tools]
        if named and allowed is not None:
            body["tool_choice"] = {"type": "function", "function": {"name": allowed[0]}}
        else:
            body["tool_choice"] = choice.mode
        if req.parallel_tool_calls is not None:
            body["parallel_tool_calls"] = req.parallel_tool_calls

    def tool_json(self, tool: FunctionTool) -> JSON:
        function: JSON = {"name": tool.name}
        if tool.description is not None:
            function["description"] = tool.description
        if tool.parameters is not None:
            function["parameters"] = tool.parameters
        if tool.strict is not None:
            function["strict"] = tool.strict
        return {"type": "function", "function": function}

    def messages(self, req: CanonicalRequest, fidelity: Fidelity) -> list[JSON]:
        """Canonical instructions + input items -> chat ``messages``. Consecutive assistant text and
        function calls merge into one assistant message with ``tool_calls``."""
        out: list[JSON] = []
        if req.instructions:
            out.append({"role": self.instructions_role, "content": req.instructions})
        assistant: JSON | None = None  # the assistant message further function calls attach to
        for i, item in enumerate(req.input):
            kind = item.get("type", "message")
            if kind == "message":
                role = item.get("role", "user")
                content = self.message_content(item, i, fidelity)
                if role == "assistant":
                    assistant = {"role": "assistant", "content": content}
                    out.append(assistant)
                    continue
                out.append({"role": self.developer_role if role == "developer" else role, "content": content})
                assistant = None
            elif kind == "function_call":
                arguments = item.get("arguments")
                call = {
                    "id": item.get("call_id"),
                    "type": "function",
                    "function": {"name": item.get("name"), "arguments": arguments or "{}"},
                }
                if assistant is None:
                    assistant = {"role": "assistant", "content": self.tool_call_only_content}
                    out.append(assistant)
                assistant.setdefault("tool_calls", []).append(call)
            elif kind == "function_call_output":
                out.append(
                    {
                        "role": "tool",
                        "tool_call_id": item.get("call_id"),
                        "content": self._tool_output(item.get("output"), i, fidelity),
                    }
                )
                assistant = None
            elif kind == "reasoning":
                # Chat Completions has no way to send reasoning back; reasoning items between an
                # assistant message and its function calls do not break the merge.
                if not _reasoning_is_empty(item):
                    fidelity.dropped.append(f"input[{i}] (reasoning)")
            else:
                fidelity.dropped.append(f"input[{i}] ({kind})")
        return out

    def message_content(self, item: Item, index: int, fidelity: Fidelity) -> str | list[JSON]:
        """Canonical message content -> chat ``content``: one string when every part is text (joined
        with newlines), else a list of ``text``/``image_url`` parts. Images are only sent on user
        messages; parts that cannot be sent are reported."""
        parts = item.get("content")
        if isinstance(parts, str):
            return parts
        role = item.get("role")
        out: list[JSON] = []
        text_only = True
        for j, part in enumerate(parts or ()):
            ptype = part.get("type")
            if ptype in _TEXT_PART_TYPES or ptype == "refusal":
                text = part.get("refusal" if ptype == "refusal" else "text") or ""
                chat_part: JSON = {"type": "text", "text": text}
                breakpoint_ = part.get("prompt_cache_breakpoint")
                if breakpoint_ is not None:
                    chat_part["prompt_cache_breakpoint"] = breakpoint_
                    text_only = False
                out.append(chat_part)
            elif ptype == "input_image" and role == "user" and part.get("image_url"):
                image: JSON = {"url": part["image_url"]}
                if part.get("detail"):
                    image["detail"] = part["detail"]
                out.append({"type": "image_url", "image_url": image})
                text_only = False
            else:
                fidelity.dropped.append(f"input[{index}].content[{j}] ({ptype})")
        if text_only:
            return "\n".join(p["text"] for p in out)
        return out

    def _tool_output(self, output: Any, index: int, fidelity: Fidelity) -> str:
        if isinstance(output, str):
            return output
        if not isinstance(output, list):
            return "" if output is None else orjson.dumps(output).decode()
        texts = []
        for j, part in enumerate(output):
            if isinstance(part, dict) and part.get("type") in _TEXT_PART_TYPES:
                texts.append(part.get("text") or "")
            else:
                ptype = part.get("type") if isinstance(part, dict) else type(part).__name__
                fidelity.dropped.append(f"input[{index}].output[{j}] ({ptype})")
        return "\n".join(texts)

    # ---- response --------------------------------------------------------------------------------------
    def parse_response(self, body: bytes) -> CanonicalResponse:
        try:
            data = orjson.loads(body)
        except orjson.JSONDecodeError as exc:
            text = f"upstream returned invalid JSON: {exc}"
            raise GatewayError(502, text, type="server_error", code="upstream_bad_response") from exc
        if not isinstance(data, dict):
            raise GatewayError(
                502, "upstream returned an unexpected body", type="server_error", code="upstream_bad_response"
            )
        choices = data.get("choices")
        if not choices and data.get("error") is not None:
            error, code = self.error_fields(data) or ("upstream error", None)
            raise GatewayError(502, error, type="server_error", code=code or "upstream_error")
        # n > 1 is rejected by the gateway before it gets here; take choice 0.
        choice = choices[0] if isinstance(choices, list) and choices else None
        if not isinstance(choice, dict):
            choice = {}
        status, reason = self.finish(choice.get("finish_reason"))
        message = choice.get("message")
        output = self.output_items(message if isinstance(message, dict) else {}, choice, status)
        usage = data.get("usage")
        return CanonicalResponse(
            output=output,
            status=status,
            incomplete_reason=reason,
            usage=self.parse_usage(usage) if isinstance(usage, dict) else None,
            upstream_model=_str_or_none(data.get("model")),
            upstream_id=_str_or_none(data.get("id")),
        )

    def output_items(self, message: JSON, choice: JSON, status: ResponseStatus) -> list[Item]:
        """One chat ``message`` -> canonical output items: reasoning, message, function calls."""
        items: list[Item] = []
        reasoning: list[str] = []
        texts: list[str] = []
        first = self.reasoning_text(message)
        if first:
            reasoning.append(first)
        for kind, text in self.content_fragments(message.get("content")):
            (reasoning if kind == "reasoning" else texts).append(text)
        if reasoning:
            items.append(
                {
                    "type": "reasoning",
                    "summary": [],
                    "content": [{"type": "reasoning_text", "text": "".join(reasoning)}],
                }
            )
        parts: list[JSON] = []
        if texts:
            part: JSON = {
                "type": "output_text",
                "text": "".join(texts),
                "annotations": self._annotations(message.get("annotations")),
            }
            logprobs = choice.get("logprobs")
            if isinstance(logprobs, dict) and isinstance(logprobs.get("content"), list):
                part["logprobs"] = [self._logprob(entry, True) for entry in logprobs["content"]]
            parts.append(part)
        refusal = message.get("refusal")
        if isinstance(refusal, str) and refusal:
            parts.append({"type": "refusal", "refusal": refusal})
        if parts:
            items.append(
                {
                    "type": "message",
                    "role": "assistant",
                    "status": "incomplete" if status == "incomplete" else "completed",
                    "content": parts,
                }
            )
        for call in message.get("tool_calls") or ():
            function = call.get("function") or {}
            arguments = function.get("arguments")
            if not isinstance(arguments, str):
                arguments = "{}" if arguments is None else orjson.dumps(arguments).decode()
            items.append(
                {
                    "type": "function_call",
                    "call_id": call.get("id") or new_call_id(),
                    "name": function.get("name") or "",
                    "arguments": arguments,
                    "status": "completed",
                }
            )
        return items

    @staticmethod
    def _annotations(raw: Any) -> list[JSON]:
        out: list[JSON] = []
        for entry in raw or ():
            if isinstance(entry, dict) and entry.get("type") == "url_citation":
                cite = entry.get("url_citation") or {}
                out.append(
                    {
                        "type": "url_citation",
                        "start_index": _count(cite.get("start_index")),
                        "end_index": _count(cite.get("end_index")),
                        "url": cite.get("url") or "",
                        "title": cite.get("title") or "",
                    }
                )
        return out

    @classmethod
    def _logprob(cls, entry: JSON, with_top: bool) -> JSON:
        out: JSON = {
            "token": entry.get("token") or "",
            "logprob": entry.get("logprob") or 0.0,
            "bytes": entry.get("bytes") or [],
        }
        if with_top:
            out["top_logprobs"] = [cls._logprob(top, False) for top in entry.get("top_logprobs") or ()]
        return out

    def reasoning_text(self, obj: JSON) -> str | None:
        """Raw reasoning text on a chat message or delta (``reasoning_content``/``reasoning``)."""
        for name in self.reasoning_fields:
            value = obj.get(name)
            if isinstance(value, str) and value:
                return value
        return None

    def content_fragments(self, content: Any) -> list[tuple[str, str]]:
        """Chat ``content`` (string or list of parts) -> ``[(kind, text)]`` with kind ``"text"`` or
        ``"reasoning"``, in order. Subclasses add provider part types (e.g. thinking parts)."""
        if isinstance(content, str):
            return [("text", content)] if content else []
        fragments: list[tuple[str, str]] = []
        if isinstance(content, list):
            for part in content:
                if isinstance(part, dict) and part.get("type") == "text":
                    text = part.get("text")
                    if isinstance(text, str) and text:
                        fragments.append(("text", text))
        return fragments

    def parse_usage(self, usage: JSON) -> Usage:
        prompt = usage.get("prompt_tokens_details")
        completion = usage.get("completion_tokens_details")
        prompt = prompt if isinstance(prompt, dict) else {}
        completion = completion if isinstance(completion, dict) else {}
        return Usage(
            input_tokens=_count(usage.get("prompt_tokens")),
            output_tokens=_count(usage.get("completion_tokens")),
            cached_tokens=_count(prompt.get("cached_tokens")),
            cache_write_tokens=_count(prompt.get("cache_write_tokens")),
            reasoning_tokens=_count(completion.get("reasoning_tokens")),
        )

    def finish(self, finish_reason: Any) -> tuple[ResponseStatus, str | None]:
        """Chat ``finish_reason`` -> (status, incomplete_reason); unknown or missing -> completed."""
        if isinstance(finish_reason, str):
            return self.finish_reasons.get(finish_reason, ("completed", None))
        return "completed", None

    # ---- streaming -------------------------------------------------------------------------------------
    def stream_parser(self, req: CanonicalRequest) -> StreamParser:
        return ChatStreamParser(self)

    # ---- errors ----------------------------------------------------------------------------------------
    def error_message(self, body: bytes) -> tuple[str, str | None]:
        try:
            data = orjson.loads(body)
        except orjson.JSONDecodeError:
            data = None
        if data is not None:
            found = self.error_fields(data)
            if found is not None:
                return found
        text = body.decode("utf-8", errors="replace").strip()
        if not text:
            return "upstream returned an empty error body", None
        return text[:_MAX_ERROR_TEXT], None

    def error_fields(self, data: Any) -> tuple[str, str | None] | None:
        """``(message, code)`` from a parsed error payload, or None when it has no recognisable shape.
        Handles ``{"error": {message, type, code}}``, ``{"error": "..."}`` (TGI), ``{"detail": ...}``
        (FastAPI) and ``{"message": ...}`` (Mistral and others); a list takes its first element."""
        if isinstance(data, list) and data:
            data = data[0]
        if not isinstance(data, dict):
            return None
        err = data.get("error")
        if isinstance(err, dict):
            message = err.get("message")
            text = _render_detail(message) if message is not None else "upstream error"
            return text, _str_or_none(err.get("code")) or _str_or_none(err.get("type"))
        code = _str_or_none(data.get("code")) or _str_or_none(data.get("type"))
        if isinstance(err, str) and err:
            return err, _str_or_none(data.get("error_type")) or code
        for key in ("detail", "message"):
            if data.get(key) is not None:
                return _render_detail(data[key]), code
        return None

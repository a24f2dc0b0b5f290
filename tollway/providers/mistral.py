"""Mistral chat completions (``kind = "mistral"``, ``POST {base_url}/chat/completions`` on ``api.mistral.ai/v1``).

Built on :class:`~tollway.providers.openai_chat.OpenAIChatAdapter` through its hooks; what differs from
OpenAI and how it is handled:

* Request fields. ``max_tokens`` (not ``max_completion_tokens``); canonical ``seed`` becomes
  ``random_seed``; no ``stream_options`` (usage arrives in the last chunk anyway); no ``developer`` role
  (sent as ``system``); ``tool_choice: required`` is sent as Mistral's ``any``; every function tool gets
  ``parameters`` (Mistral requires it; an empty object schema when the client gave none). Mistral refuses
  unknown fields, so what it has no field for is left out and reported dropped: ``user`` /
  ``safety_identifier``, logprobs (``top_logprobs``, ``include`` logprobs), ``service_tier`` other than
  ``auto`` and ``default`` (``default`` is sent as ``standard_only``, approximated). Client extras passed
  through as they are: ``n``, ``safe_prompt``, ``random_seed``, ``prompt_mode``, ``prediction``,
  ``guardrails``. A ``temperature`` above Mistral's maximum of 1.5 is sent as 1.5 (approximated).
* Reasoning effort. Mistral documents ``reasoning_effort`` ``none`` and ``high`` (adjustable models such as
  ``mistral-small-latest``): ``none``/``minimal`` are sent as ``none``, every other effort as ``high``
  (approximated unless it was ``high``/``none``). ``magistral-*`` models always reason and take no
  effort: it is not sent (``none`` is reported dropped, efforts other than ``high`` approximated).
* Tool call ids. Mistral accepts only ids of exactly 9 characters ``[a-zA-Z0-9]``. Ids of that form (all
  ids Mistral issues, returned to clients unchanged) are sent unchanged, so Mistral's own calls round-trip
  exactly; any other id (``call_…``, ``toolu_…``) is replaced by a deterministic 9-character base62 digest
  of it, the same for the call and for its result, so they still match (see :func:`mistral_call_id`).
* Prefix. An input that ends with an assistant message asks the model to continue it: that message is sent
  with ``prefix: true`` (Mistral refuses a conversation ending in an assistant message otherwise) and
  reported approximated (``input[N] (assistant prefix)``), since Mistral's answer may repeat the prefix.
* Reasoning output. Magistral and adjustable-reasoning models answer with ``thinking`` content chunks
  (``{"type": "thinking", "thinking": [{"type": "text", "text"}], "signature"?}``, in messages and in
  stream deltas); they become reasoning items whose ``encrypted_content`` is ``tw1.mistral.<state>``
  (``{"signature": …}`` when Mistral signed the chunk, else ``{}``): the state is the marker that the text
  is Mistral's own. On a later turn such an item is sent back as a ``thinking`` chunk at the head of its
  assistant message (each reasoning text part one text chunk, the signature kept). Reasoning from another
  provider, or without provider state, is dropped and reported (``input[i].reasoning (state from …)``).
* Usage. Cached tokens from ``prompt_tokens_details.cached_tokens`` or the older top-level
  ``num_cached_tokens``. Mistral reports no reasoning token count: reasoning is billed inside
  ``completion_tokens`` (so the cost is right) and ``reasoning_tokens`` stays 0.
* Finish reasons. ``model_length`` (the context window is full) → incomplete ``max_output_tokens``;
  ``error`` → failed.
* Errors. ``{"object": "error", "message", "type", "code"}`` (``message`` may itself be
  ``{"detail": [...]}``), ``{"detail": ...}`` and ``{"message": ...}``: the message is kept, an integer
  ``code`` becomes a string. A stream chunk of the first form is an in-stream error.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import replace
from typing import Any, ClassVar

import orjson

from tollway.core import reasoning_state
from tollway.core.types import (
    JSON,
    CanonicalRequest,
    Delta,
    Fidelity,
    FunctionTool,
    Item,
    ReasoningDelta,
    ReasoningState,
    ResponseStatus,
    StreamError,
    Usage,
)
from tollway.providers.base import StreamParser
from tollway.providers.openai_chat import FinishMapping, OpenAIChatAdapter
from tollway.providers.openai_chat_stream import ChatStreamParser

PROVIDER = "mistral"
_CALL_ID = re.compile(r"[A-Za-z0-9]{9}")
_BASE62 = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
# Key of a synthetic input item standing for one reasoning item: its value is the thinking chunk to send.
_THINKING = "tollway.mistral.thinking"
_EMPTY_REASONING: Item = {"type": "reasoning", "summary": [], "content": []}
_EMPTY_STATE = reasoning_state.wrap(PROVIDER, {})
_LOGPROBS_INCLUDE = "message.output_text.logprobs"
# canonical reasoning effort -> Mistral's documented values
_EFFORTS = {"none": "none", "minimal": "none", "high": "high"}
_SERVICE_TIERS = {"auto": "auto", "default": "standard_only"}
_NATIVE_REASONING_PREFIX = "magistral"
_MAX_TEMPERATURE = 1.5  # Mistral refuses more


def mistral_call_id(call_id: str) -> str:
    """The id Mistral accepts for ``call_id``: unchanged when it is already 9 characters ``[a-zA-Z0-9]``,
    else 9 base62 characters of its SHA-256 (deterministic, so a call and its result agree)."""
    if _CALL_ID.fullmatch(call_id):
        return call_id
    return _digest_id(call_id)


def _digest_id(value: str) -> str:
    n = int.from_bytes(hashlib.sha256(value.encode()).digest()[:8], "big")
    chars = []
    for _ in range(9):
        n, r = divmod(n, 62)
        chars.append(_BASE62[r])
    return "".join(chars)


class _CallIds:
    """Per-request mapping of client call ids to Mistral ids; a (vanishingly rare) digest collision between
    two different ids is resolved by rehashing, in input order."""

    __slots__ = ("_by_original", "_owner")

    def __init__(self) -> None:
        self._by_original: dict[str, str] = {}
        self._owner: dict[str, str] = {}

    def get(self, original: str) -> str:
        mapped = self._by_original.get(original)
        if mapped is not None:
            return mapped
        mapped = mistral_call_id(original)
        attempt = 0
        while self._owner.get(mapped, original) != original:
            attempt += 1
            mapped = _digest_id(f"{original}\x00{attempt}")
        self._by_original[original] = mapped
        self._owner[mapped] = original
        return mapped


def _state(signature: str | None) -> str:
    return _EMPTY_STATE if signature is None else reasoning_state.wrap(PROVIDER, {"signature": signature})


def _signature(content: Any) -> str | None:
    """The last signature on a ``thinking`` chunk of ``content``, if any."""
    found = None
    if isinstance(content, list):
        for part in content:
            if isinstance(part, dict) and part.get("type") == "thinking":
                signature = part.get("signature")
                if isinstance(signature, str) and signature:
                    found = signature
    return found


def _reasoning_texts(item: Item) -> list[str]:
    for key in ("content", "summary"):
        texts = [p["text"] for p in item.get(key) or () if isinstance(p, dict) and isinstance(p.get("text"), str)]
        texts = [text for text in texts if text]
        if texts:
            return texts
    return []


def _thinking_only(message: JSON) -> bool:
    content = message.get("content")
    return (
        message.get("role") == "assistant"
        and "tool_calls" not in message
        and isinstance(content, list)
        and bool(content)
        and all(isinstance(c, dict) and c.get("type") == "thinking" for c in content)
    )


def _chunks(content: Any) -> list[JSON]:
    if isinstance(content, str):
        return [{"type": "text", "text": content}] if content else []
    return list(content) if isinstance(content, list) else []


def _is_reasoning_key(key: Any) -> bool:
    return key == "reasoning" or (isinstance(key, tuple) and bool(key) and key[0] == "reasoning")


class MistralAdapter(OpenAIChatAdapter):
    """Canonical <-> Mistral chat completions. Pure transforms; no I/O."""

    kind = "mistral"

    max_tokens_field: ClassVar[str] = "max_tokens"
    include_stream_usage: ClassVar[bool] = False
    developer_role: ClassVar[str] = "system"
    send_reasoning_effort: ClassVar[bool] = True
    send_prompt_cache_key: ClassVar[bool] = True
    passthrough_extra: ClassVar[frozenset[str]] = frozenset(
        {"n", "safe_prompt", "random_seed", "prompt_mode", "prediction", "guardrails"}
    )
    finish_reasons: ClassVar[FinishMapping] = {
        **OpenAIChatAdapter.finish_reasons,
        "model_length": ("incomplete", "max_output_tokens"),
    }

    # ---- request ---------------------------------------------------------------------------------------
    def build_body(self, req: CanonicalRequest, model: str, fidelity: Fidelity) -> JSON:
        body = super().build_body(req, model, fidelity)
        seed = body.pop("seed", None)
        if seed is not None:
            body["random_seed"] = seed
        if body.pop("user", None) is not None:
            fidelity.dropped.append("user")
        body.pop("logprobs", None)
        if body.pop("top_logprobs", None) is not None:
            fidelity.dropped.append("top_logprobs")
        for i, name in enumerate(req.include):
            if name == _LOGPROBS_INCLUDE:
                fidelity.dropped.append(f"include[{i}] ({name})")
        tier = body.pop("service_tier", None)
        if tier is not None:
            mapped = _SERVICE_TIERS.get(tier)
            if mapped is None:
                fidelity.dropped.append("service_tier")
            else:
                body["service_tier"] = mapped
                if mapped != tier:
                    fidelity.approximated.append("service_tier")
        effort = body.pop("reasoning_effort", None)
        if effort is not None:
            self._reasoning_effort(body, effort, model, fidelity)
        if body.get("tool_choice") == "required":
            body["tool_choice"] = "any"
        temperature = body.get("temperature")
        if temperature is not None and temperature > _MAX_TEMPERATURE:
            body["temperature"] = _MAX_TEMPERATURE
            fidelity.approximated.append("temperature")
        return body

    @staticmethod
    def _reasoning_effort(body: JSON, effort: str, model: str, fidelity: Fidelity) -> None:
        target = _EFFORTS.get(effort, "high")
        if model.startswith(_NATIVE_REASONING_PREFIX):
            # native reasoning models think always and take no effort
            if target == "none":
                fidelity.dropped.append("reasoning.effort")
            elif effort != "high":
                fidelity.approximated.append("reasoning.effort")
            return
        body["reasoning_effort"] = target
        if target != effort:
            fidelity.approximated.append("reasoning.effort")

    def tool_json(self, tool: FunctionTool) -> JSON:
        out = super().tool_json(tool)
        out["function"].setdefault("parameters", {"type": "object", "properties": {}})
        return out

    def messages(self, req: CanonicalRequest, fidelity: Fidelity) -> list[JSON]:
        items = self._prepare(req.input, fidelity)
        if items is not req.input:
            req = replace(req, input=items)
        merged: list[JSON] = []
        pending: list[JSON] = []  # thinking chunks waiting for the assistant message they belong to
        for message in super().messages(req, fidelity):
            if _thinking_only(message):
                pending.extend(message["content"])
                continue
            if pending:
                if message["role"] == "assistant":
                    message["content"] = [*pending, *_chunks(message.get("content"))]
                else:
                    merged.append({"role": "assistant", "content": pending})
                pending = []
            merged.append(message)
        if pending:
            merged.append({"role": "assistant", "content": pending})
        if merged and merged[-1]["role"] == "assistant" and not merged[-1].get("tool_calls"):
            merged[-1]["prefix"] = True
            fidelity.approximated.append(f"input[{len(items) - 1}] (assistant prefix)")
        return merged

    def _prepare(self, items: list[Item], fidelity: Fidelity) -> list[Item]:
        """Map call ids to Mistral's form and turn reasoning items into synthetic assistant messages that
        carry a thinking chunk (or into empty reasoning items when dropped). Indexes are kept, so what the
        base class reports still names the client's ``input[i]``. Returns ``items`` itself when nothing
        changes."""
        out: list[Item] | None = None
        ids = _CallIds()
        for i, item in enumerate(items):
            kind = item.get("type", "message")
            new: Item | None = None
            if kind in ("function_call", "function_call_output"):
                call_id = item.get("call_id")
                if isinstance(call_id, str):
                    mapped = ids.get(call_id)
                    if mapped != call_id:
                        new = {**item, "call_id": mapped}
            elif kind == "reasoning":
                new = self._thinking_item(item, f"input[{i}]", fidelity)
            if new is not None:
                if out is None:
                    out = list(items)
                out[i] = new
        return items if out is None else out

    @staticmethod
    def _thinking_item(item: Item, param: str, fidelity: Fidelity) -> Item:
        texts = _reasoning_texts(item)
        encrypted = item.get("encrypted_content")
        if not isinstance(encrypted, str) or not encrypted:
            if texts:
                fidelity.dropped.append(f"{param}.reasoning (no provider state)")
            return _EMPTY_REASONING
        unwrapped = reasoning_state.unwrap(encrypted)
        if unwrapped is None:
            fidelity.dropped.append(f"{param}.reasoning (corrupt state)")
            return _EMPTY_REASONING
        provider, state = unwrapped
        if provider != PROVIDER:
            fidelity.dropped.append(f"{param}.reasoning (state from {provider})")
            return _EMPTY_REASONING
        chunk: JSON = {"type": "thinking", "thinking": [{"type": "text", "text": text} for text in texts]}
        signature = state.get("signature")
        if isinstance(signature, str) and signature:
            chunk["signature"] = signature
        elif not texts:
            return _EMPTY_REASONING
        return {"type": "message", "role": "assistant", "content": [], _THINKING: chunk}

    def message_content(self, item: Item, index: int, fidelity: Fidelity) -> str | list[JSON]:
        chunk = item.get(_THINKING)
        if chunk is not None:
            return [chunk]
        return super().message_content(item, index, fidelity)

    # ---- response --------------------------------------------------------------------------------------
    def content_fragments(self, content: Any) -> list[tuple[str, str]]:
        if not isinstance(content, list):
            return super().content_fragments(content)
        fragments: list[tuple[str, str]] = []
        for part in content:
            if not isinstance(part, dict):
                continue
            ptype = part.get("type")
            if ptype == "text":
                text = part.get("text")
                if isinstance(text, str) and text:
                    fragments.append(("text", text))
            elif ptype == "thinking":
                for inner in part.get("thinking") or ():
                    if isinstance(inner, dict) and inner.get("type") == "text":
                        text = inner.get("text")
                        if isinstance(text, str) and text:
                            fragments.append(("reasoning", text))
        return fragments

    def output_items(self, message: JSON, choice: JSON, status: ResponseStatus) -> list[Item]:
        items = super().output_items(message, choice, status)
        for item in items:
            if item["type"] == "reasoning":
                item["encrypted_content"] = _state(_signature(message.get("content")))
                break
        return items

    def parse_usage(self, usage: JSON) -> Usage:
        out = super().parse_usage(usage)
        cached = usage.get("num_cached_tokens")
        if type(cached) is int and cached > out.cached_tokens:
            out.cached_tokens = cached
        return out

    # ---- streaming -------------------------------------------------------------------------------------
    def stream_parser(self, req: CanonicalRequest) -> StreamParser:
        return MistralStreamParser(self)

    # ---- errors ----------------------------------------------------------------------------------------
    def error_fields(self, data: Any) -> tuple[str, str | None] | None:
        found = super().error_fields(data)
        if found is not None and found[1] is None and isinstance(data, dict):
            code = data.get("code")
            if type(code) is int:
                return found[0], str(code)
        return found


class MistralStreamParser(ChatStreamParser):
    """The chat stream parser plus Mistral's quirks: a reasoning item gets its ``tw1.mistral`` state right
    after its first delta (again when a signature arrives), and an ``{"object": "error"}`` chunk is an
    in-stream error."""

    __slots__ = ("_stated",)

    def __init__(self, hooks: MistralAdapter) -> None:
        super().__init__(hooks)
        self._stated: set[Any] = set()

    def feed(self, event: str | None, data: bytes) -> list[Delta]:
        if not self._done and b'"error"' in data:
            try:
                chunk = orjson.loads(data)
            except orjson.JSONDecodeError:
                chunk = None
            if isinstance(chunk, dict) and chunk.get("object") == "error":
                self._done = True
                message, code = self._hooks.error_fields(chunk) or ("upstream stream error", None)
                return [StreamError(message, code)]
        return super().feed(event, data)

    def _delta(self, delta: dict[str, Any], out: list[Delta]) -> None:
        start = len(out)
        super()._delta(delta, out)
        signature = _signature(delta.get("content"))
        if signature is None and not any(type(d) is ReasoningDelta for d in out[start:]):
            return  # the common case: text or tool-call deltas only
        added = out[start:]
        del out[start:]
        last_key: Any = None
        last_at = -1
        for d in added:
            out.append(d)
            if isinstance(d, ReasoningDelta):
                last_key, last_at = d.key, len(out)
                if d.key not in self._stated:
                    self._stated.add(d.key)
                    out.append(ReasoningState(d.key, _state(signature)))
                    if signature is not None:
                        signature = None  # carried by this state already
        if signature is None:
            return
        if last_key is not None:
            out.insert(last_at, ReasoningState(last_key, _state(signature)))
        elif self._current is not None and _is_reasoning_key(self._current):
            out.append(ReasoningState(self._current, _state(signature)))

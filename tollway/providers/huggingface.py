"""Hugging Face Inference Providers router and Text Generation Inference (``kind = "huggingface"``).

Both speak OpenAI-compatible Chat Completions at ``{base_url}/chat/completions`` (default base
``https://router.huggingface.co/v1``, key ``HF_TOKEN``, override ``HF_BASE_URL``), so this adapter is
:class:`~tollway.providers.openai_chat.OpenAIChatAdapter` with its hooks set for what the router / TGI
accept and send (checked against ``shared/specs/providers/huggingface``: TGI's OpenAPI, the
``chat-completion`` task spec the router follows, and recorded router exchanges):

Request

* The model id goes upstream unchanged, slashes and provider suffixes included
  (``meta-llama/Llama-3.1-8B-Instruct:novita``, ``…:fastest``).
* The output limit is ``max_tokens``: TGI and the task spec have no ``max_completion_tokens`` (TGI would
  silently ignore it and generate up to its default).
* Structured output uses the OpenAI shape ``{"type": "json_schema", "json_schema": {name, schema,
  strict}}``, which the router's spec defines; TGI's own ``{"type": "json", "value": schema}`` grammar is
  not sent (a self-hosted TGI older than its ``json_schema`` support answers such requests as free text).
* A named ``tool_choice`` is ``{"function": {"name"}}`` (the spec's and the recorded shape).
* Streaming requests ask for ``stream_options.include_usage``: both specs define it, TGI then adds a
  usage chunk, and providers that send usage anyway (the recorded Together streams put it on the
  finishing chunk) are unaffected. Usage wherever it arrives (finishing chunk, separate chunk) is read;
  a stream with none reports no usage (the response is then unpriced, never zero).
* ``developer`` messages are sent as ``system`` (chat templates rarely know the developer role).
* ``prompt_cache_key``, ``service_tier`` and ``user`` have no equivalent and are reported as dropped.
* Reasoning items given back as input are sent the way the router's reasoning models produce them: as a
  ``<think>…</think>`` block at the start of the following assistant message (the recorded multi-turn
  exchange does the same). Provider-opaque reasoning state (an Anthropic signature, OpenAI encrypted
  content) cannot be carried and is reported in ``fidelity.dropped``.

Response

* Reasoning comes in ``reasoning_content`` / ``reasoning`` fields or as a leading ``<think>…</think>``
  block in ``content`` (split into a reasoning item, also across stream chunks, see
  :mod:`tollway.providers.huggingface_stream`).
* Tool calls may lack ``type`` or ``id`` and may carry ``arguments`` as a JSON object: objects are
  serialised compactly, missing or repeated ids are replaced by deterministic ones.
* Finish reasons include TGI's ``eos_token`` and ``stop_sequence`` (completed) and ``length``
  (incomplete, max_output_tokens). Usage may carry a top-level ``cached_tokens`` (Together).

Errors: ``{"error": "..."}`` (TGI, with ``error_type``; the router), ``{"error": {"message"}}``,
``{"message": ...}`` and ``{"error": [...]}`` all keep the provider's message. A model that is still
loading (503 with ``estimated_time``) is reported with the estimate in the message and maps to 503
overloaded; 429 keeps ``retry-after`` (done by the client for every adapter).

HF models are not in the shipped price table: they are unpriced unless ``prices:`` configures them.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any, ClassVar

from tollway.core import reasoning_state
from tollway.core.types import (
    JSON,
    CanonicalRequest,
    CanonicalResponse,
    Fidelity,
    Item,
    ResponseStatus,
    Usage,
)
from tollway.providers.base import StreamParser
from tollway.providers.huggingface_stream import (
    CLOSE_TAG,
    OPEN_TAG,
    Fragments,
    HuggingFaceStreamParser,
    PresplitContent,
    split_think,
    synth_call_id,
)
from tollway.providers.openai_chat import FinishMapping, OpenAIChatAdapter

# Placeholder ids set on tool calls that arrive without a usable one; parse_response replaces them
# once the upstream response id is known. "\x00" cannot appear in a real id.
_PENDING = "\x00pending:"
_DROPPED_FIELDS = ("service_tier", "user")
_EMPTY_REASONING: Item = {"type": "reasoning", "summary": [], "content": []}


def _reasoning_texts(item: Item) -> str:
    """The text of a reasoning item: its raw reasoning, else its summary."""
    for key in ("content", "summary"):
        texts = [
            part["text"]
            for part in item.get(key) or ()
            if isinstance(part, dict) and isinstance(part.get("text"), str) and part["text"]
        ]
        if texts:
            return "\n".join(texts)
    return ""


def _think_block(text: str) -> str:
    return f"{OPEN_TAG}\n{text}\n{CLOSE_TAG}\n"


def _assistant_text(text: str) -> Item:
    return {"type": "message", "role": "assistant", "content": [{"type": "output_text", "text": text}]}


def _prepend_text(item: Item, text: str) -> Item:
    """A copy of assistant message ``item`` whose content starts with a text part ``text``."""
    content = item.get("content")
    if isinstance(content, str):
        parts: list[Any] = [{"type": "output_text", "text": content}]
    else:
        parts = list(content or ())
    return {**item, "content": [{"type": "output_text", "text": text}, *parts]}


class HuggingFaceAdapter(OpenAIChatAdapter):
    """Canonical <-> Hugging Face router / TGI chat completions. Pure transforms; no I/O."""

    kind = "huggingface"

    max_tokens_field: ClassVar[str] = "max_tokens"
    include_stream_usage: ClassVar[bool] = True
    developer_role: ClassVar[str] = "system"
    send_prompt_cache_key: ClassVar[bool] = False
    passthrough_extra: ClassVar[frozenset[str]] = frozenset({"n", "logprobs", "tool_prompt"})
    finish_reasons: ClassVar[FinishMapping] = {
        **OpenAIChatAdapter.finish_reasons,
        "eos_token": ("completed", None),
        "stop_sequence": ("completed", None),
    }

    # ---- request ---------------------------------------------------------------------------------------
    def build_body(self, req: CanonicalRequest, model: str, fidelity: Fidelity) -> JSON:
        body = super().build_body(req, model, fidelity)
        for name in _DROPPED_FIELDS:
            if body.pop(name, None) is not None:
                fidelity.dropped.append(name)
        choice = body.get("tool_choice")
        if isinstance(choice, dict):
            body["tool_choice"] = {"function": choice["function"]}
        return body

    def messages(self, req: CanonicalRequest, fidelity: Fidelity) -> list[JSON]:
        items = req.input
        if any(item.get("type") == "reasoning" for item in items):
            req = replace(req, input=self._fold_reasoning(items, fidelity))
        return super().messages(req, fidelity)

    def _fold_reasoning(self, items: list[Item], fidelity: Fidelity) -> list[Item]:
        """Carry reasoning items as ``<think>`` blocks: each run of reasoning items becomes a block at
        the start of the next assistant message (or an assistant message of its own that following
        function calls attach to). Positions are kept (folded items become empty reasoning items, which
        the base skips), so reported paths still name the client's input index."""
        out = list(items)
        pending: list[str] = []
        last = -1  # index of the last reasoning item in the current run
        for i, item in enumerate(items):
            kind = item.get("type", "message")
            if kind == "reasoning":
                self._foreign_state(item, i, fidelity)
                text = _reasoning_texts(item)
                if text:
                    pending.append(text)
                out[i] = _EMPTY_REASONING
                last = i
                continue
            if not pending:
                continue
            block = _think_block("\n".join(pending))
            if kind == "message" and item.get("role") == "assistant":
                out[i] = _prepend_text(item, block)
            else:
                out[last] = _assistant_text(block)
            pending = []
        if pending:
            out[last] = _assistant_text(_think_block("\n".join(pending)))
        return out

    @staticmethod
    def _foreign_state(item: Item, index: int, fidelity: Fidelity) -> None:
        """Hugging Face has no opaque reasoning state: any state on an input item is another provider's."""
        encrypted = item.get("encrypted_content")
        if not encrypted:
            return
        unwrapped = reasoning_state.unwrap(encrypted) if isinstance(encrypted, str) else None
        origin = "corrupt state" if unwrapped is None else f"reasoning state from {unwrapped[0]}"
        fidelity.dropped.append(f"input[{index}].encrypted_content ({origin})")

    # ---- response --------------------------------------------------------------------------------------
    def parse_response(self, body: bytes) -> CanonicalResponse:
        response = super().parse_response(body)
        for item in response.output:
            if item.get("type") == "function_call" and item["call_id"].startswith(_PENDING):
                index = int(item["call_id"][len(_PENDING) :])
                item["call_id"] = synth_call_id(response.upstream_id, index, item.get("name"))
        return response

    def output_items(self, message: JSON, choice: JSON, status: ResponseStatus) -> list[Item]:
        calls = message.get("tool_calls")
        if isinstance(calls, list) and calls:
            seen: set[str] = set()
            for position, call in enumerate(calls):
                if not isinstance(call, dict):
                    continue
                call_id = call.get("id")
                if not isinstance(call_id, str) or not call_id or call_id in seen:
                    index = call.get("index")
                    call["id"] = _PENDING + str(index if type(index) is int else position)
                else:
                    seen.add(call_id)
        return super().output_items(message, choice, status)

    def content_fragments(self, content: Any) -> Fragments:
        if type(content) is PresplitContent:
            return content
        if isinstance(content, str):
            return split_think(content)
        return super().content_fragments(content)

    def parse_usage(self, usage: JSON) -> Usage:
        parsed = super().parse_usage(usage)
        if not parsed.cached_tokens:
            cached = usage.get("cached_tokens")
            if type(cached) is int:
                parsed.cached_tokens = cached
        return parsed

    def stream_parser(self, req: CanonicalRequest) -> StreamParser:
        return HuggingFaceStreamParser(self)

    # ---- errors ----------------------------------------------------------------------------------------
    def error_fields(self, data: Any) -> tuple[str, str | None] | None:
        if isinstance(data, dict):
            err = data.get("error")
            if isinstance(err, list) and err:
                texts = [e if isinstance(e, str) else str(e) for e in err]
                return "; ".join(texts), None
            found = super().error_fields(data)
            estimate = data.get("estimated_time")
            if found is not None and isinstance(estimate, int | float) and not isinstance(estimate, bool):
                return f"{found[0]} (estimated time {estimate:g}s)", found[1]
            return found
        return super().error_fields(data)

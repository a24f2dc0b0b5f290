"""Canonical types: the one internal representation both front doors map to.

The canonical model *is* Open Responses: request input and response output are lists of Open Responses
items as plain dicts (``{"type": "message", ...}``, ``{"type": "function_call", ...}``,
``{"type": "reasoning", ...}``, ``{"type": "function_call_output", ...}``). Chat Completions is translated
into these at the door. Dicts are used (not model classes) because they are what the wire carries and
they cost nothing to build on the hot path.

Canonical item shapes (inputs are normalised to these by the doors):

* message: ``{"type": "message", "role": "user"|"assistant"|"system"|"developer",
  "content": [part, ...], "phase"?: "commentary"|"final_answer"}`` where a part is one of
  ``{"type": "input_text", "text"}``, ``{"type": "output_text", "text", "annotations": []}``,
  ``{"type": "input_image", "image_url": str, "detail": "auto"|"low"|"high"}`` (a URL or a
  ``data:`` URL), ``{"type": "refusal", "refusal"}``.
* function_call: ``{"type": "function_call", "call_id", "name", "arguments": str}``
* function_call_output: ``{"type": "function_call_output", "call_id", "output": str}``
* reasoning: ``{"type": "reasoning", "summary": [{"type": "summary_text", "text"}],
  "content": [{"type": "reasoning_text", "text"}], "encrypted_content"?: str}``. The provider-native
  opaque state (OpenAI's encrypted content, Anthropic's thinking signature or redacted data) is carried
  in ``encrypted_content``; see :mod:`tollway.core.reasoning_state` for its envelope.

Output items additionally carry ``id`` and ``status``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

Item = dict[str, Any]
JSON = dict[str, Any]

ResponseStatus = Literal["completed", "incomplete", "failed", "in_progress"]


@dataclass(slots=True)
class FunctionTool:
    name: str
    description: str | None = None
    parameters: JSON | None = None
    strict: bool | None = None

    def to_json(self) -> JSON:
        return {
            "type": "function",
            "name": self.name,
            "description": self.description,
            "parameters": self.parameters,
            "strict": self.strict,
        }


@dataclass(slots=True)
class ToolChoice:
    """Normalised tool choice.

    ``mode``: ``auto`` (model decides), ``none`` (no tools), ``required`` (must call one).
    ``allowed``: when set, only these tool names may be called (from a named choice or
    ``allowed_tools``); adapters must send only these tools or the provider's equivalent constraint,
    and the pipeline rejects calls outside the set.
    ``raw``: the value as the client sent it, echoed back in the response.
    """

    mode: Literal["auto", "none", "required"] = "auto"
    allowed: list[str] | None = None
    raw: Any = "auto"


@dataclass(slots=True)
class TextFormat:
    """``type``: ``text`` | ``json_object`` | ``json_schema`` (then name/schema/strict are set)."""

    type: Literal["text", "json_object", "json_schema"] = "text"
    name: str | None = None
    schema: JSON | None = None
    strict: bool | None = None
    description: str | None = None


@dataclass(slots=True)
class CanonicalRequest:
    model: str
    input: list[Item]
    instructions: str | None = None
    tools: list[FunctionTool] = field(default_factory=list)
    tool_choice: ToolChoice = field(default_factory=ToolChoice)
    text_format: TextFormat = field(default_factory=TextFormat)
    reasoning_effort: str | None = None
    reasoning_summary: str | None = None
    max_output_tokens: int | None = None
    temperature: float | None = None
    top_p: float | None = None
    presence_penalty: float | None = None
    frequency_penalty: float | None = None
    stop: list[str] | None = None
    seed: int | None = None
    parallel_tool_calls: bool | None = None
    include: list[str] = field(default_factory=list)
    metadata: dict[str, str] | None = None
    store: bool = True
    stream: bool = False
    previous_response_id: str | None = None
    truncation: str | None = None
    user: str | None = None
    prompt_cache_key: str | None = None
    service_tier: str | None = None
    top_logprobs: int | None = None
    max_tool_calls: int | None = None
    # Request fields the door accepted but that have no canonical slot; adapters may map them or
    # report them as dropped. Keys are the client's field names.
    extra: JSON = field(default_factory=dict)


@dataclass(slots=True)
class Usage:
    input_tokens: int = 0
    output_tokens: int = 0
    cached_tokens: int = 0
    cache_write_tokens: int = 0
    reasoning_tokens: int = 0

    @property
    def total_tokens(self) -> int:
        return self.input_tokens + self.output_tokens


@dataclass(slots=True)
class CanonicalResponse:
    """A finished provider answer, already in canonical items (without ids: the pipeline adds them)."""

    output: list[Item]
    status: ResponseStatus = "completed"
    incomplete_reason: str | None = None
    usage: Usage | None = None
    upstream_model: str | None = None
    upstream_id: str | None = None


@dataclass(slots=True)
class Fidelity:
    """What could not be carried to the provider exactly. Each entry names a request field path."""

    dropped: list[str] = field(default_factory=list)
    approximated: list[str] = field(default_factory=list)

    def to_json(self) -> JSON:
        return {"dropped": list(self.dropped), "approximated": list(self.approximated)}


# --------------------------------------------------------------------------------------------------
# Stream deltas: what a provider stream parser emits. The core turns them into Open Responses events
# or Chat Completions chunks. ``key`` identifies one output item within the response (any hashable
# value stable for the item, e.g. the provider's block index); items are emitted in order of first
# appearance.
# --------------------------------------------------------------------------------------------------


@dataclass(slots=True)
class TextDelta:
    key: Any
    text: str
    phase: str | None = None


@dataclass(slots=True)
class RefusalDelta:
    key: Any
    text: str


@dataclass(slots=True)
class ReasoningDelta:
    key: Any
    text: str
    summary: bool = False  # True: reasoning summary text; False: raw reasoning text


@dataclass(slots=True)
class ReasoningState:
    """Opaque provider state for a reasoning item (already wrapped, see reasoning_state)."""

    key: Any
    encrypted_content: str


@dataclass(slots=True)
class ToolCallStart:
    key: Any
    call_id: str
    name: str


@dataclass(slots=True)
class ToolCallArgsDelta:
    key: Any
    delta: str


@dataclass(slots=True)
class ItemDone:
    key: Any


@dataclass(slots=True)
class UsageUpdate:
    """Replaces any field given (non-None); providers report usage cumulatively."""

    input_tokens: int | None = None
    output_tokens: int | None = None
    cached_tokens: int | None = None
    cache_write_tokens: int | None = None
    reasoning_tokens: int | None = None


@dataclass(slots=True)
class Finish:
    status: ResponseStatus = "completed"
    incomplete_reason: str | None = None
    upstream_model: str | None = None
    upstream_id: str | None = None


@dataclass(slots=True)
class StreamError:
    """The provider reported an error inside the stream."""

    message: str
    code: str | None = None
    type: str = "server_error"


Delta = (
    TextDelta
    | RefusalDelta
    | ReasoningDelta
    | ReasoningState
    | ToolCallStart
    | ToolCallArgsDelta
    | ItemDone
    | UsageUpdate
    | Finish
    | StreamError
)

"""What the mock does for one request.

A wire module parses the request into an :class:`Ask` (format-neutral facts: the last user text, tool
results, offered tools, reasoning, limits). :func:`make_script` combines it with the scenario controls
(the ``x-mock-scenario`` header and ``[mock:...]`` directives in the last user text) and the server's
:class:`MockDefaults` into a :class:`Script`, which every wire module renders in its own format.

Deterministic rules:

* text: ``"echo: <last user text>"``; after tool results ``"tool said: <output>[; <output>...]"``;
  with a JSON response format ``{"echo": "<that text without the 'echo: ' prefix>"}``.
* tools offered (after ``tool_choice``) and the input does not end in tool results: a call to the
  first allowed tool with arguments ``{"input": "<last user text>"}``; the first two tools when
  parallel calls are allowed and the text contains "parallel".
* reasoning requested: a reasoning part ``"thinking about: <last user text>"`` first, with opaque
  state ``<prefix><32 hex digest><8 hex check>`` that :func:`state_valid` verifies when it comes back.
* tokens are whitespace-separated words: input = all input text (min 1), output = reasoning + text +
  tool arguments; cached = input // 2 when the request asks for caching.
* ``chunks=N``: a streamed text is padded with " lorem" to at least N words and sent as exactly N
  text deltas (without it: one delta per word); non-streaming answers are never padded.
  ``max_tokens`` below the output word count truncates (reasoning first, then text) and the
  response is incomplete.
"""

from __future__ import annotations

import hashlib
import itertools
import re
import time
from dataclasses import dataclass, field

import orjson

FAULTS = frozenset(
    {"429", "500", "529", "400", "401", "403", "404", "slow_first_byte", "disconnect", "malformed", "stream_error"}
)
_MAX_CHUNKS = 100_000
_MAX_DELAY_MS = 600_000.0
_DEFAULT_SLOW_FIRST_BYTE_MS = 1000.0
_DIRECTIVE = re.compile(r"\[mock:([^\]]*)\]")
_WORD = re.compile(r"\S+")
_SPLIT = re.compile(r"[,;\s]+")
_STATE_SALT = b"tollway-mock-state:"
_ID_SEQ = itertools.count(time.time_ns() // 1000)


@dataclass(slots=True, frozen=True)
class MockDefaults:
    """Server-wide defaults; each request's scenario can override ``chunks`` and ``delay_ms``.

    ``chunks=None`` streams one text delta per word; ``delay_ms`` is slept between content deltas
    (and, in total, before a non-streaming answer). ``models`` is what ``GET /v1/models`` lists
    (any model name is accepted on the generation routes)."""

    chunks: int | None = None
    delay_ms: float = 0.0
    models: tuple[str, ...] = ("mock",)


class RequestInvalid(Exception):
    """The request is not one the real API would accept: a 400 in the wire's error format."""

    def __init__(self, message: str, param: str | None = None, code: str | None = "invalid_value") -> None:
        super().__init__(message)
        self.message = message
        self.param = param
        self.code = code


@dataclass(slots=True)
class Ask:
    """The format-neutral reading of one request."""

    model: str
    user_text: str = ""  # the last user message's text, directives still in it
    tool_outputs: list[str] | None = None  # set when the input ends in tool results
    tools: list[str] = field(default_factory=list)  # callable tool names, tool_choice applied
    parallel: bool = True
    reasoning: bool = False
    json_output: bool = False
    max_tokens: int | None = None
    input_words: int = 0  # every word of input text, user_text's directives included
    cache: bool = False
    stream: bool = False


@dataclass(slots=True)
class Controls:
    chunks: int | None = None
    delay_ms: float | None = None
    first_byte_ms: float | None = None
    fault: str | None = None
    param: str | None = None


@dataclass(slots=True)
class ToolCall:
    digest: str  # deterministic; wires prefix it ("call_", "toolu_")
    name: str
    arguments: str
    argument_pieces: list[str]


@dataclass(slots=True)
class Script:
    model: str
    stream: bool
    user_text: str  # directives removed
    reasoning: str | None = None
    # the *_pieces lists (what each content delta carries) are only filled for streaming scripts
    reasoning_pieces: list[str] = field(default_factory=list)
    text: str | None = None
    text_pieces: list[str] = field(default_factory=list)
    tool_calls: list[ToolCall] = field(default_factory=list)
    incomplete: bool = False
    input_tokens: int = 1
    cached_tokens: int = 0
    output_tokens: int = 0
    reasoning_tokens: int = 0
    fault: str | None = None
    param: str | None = None
    delay: float = 0.0  # seconds between content deltas
    first_byte: float = 0.0  # seconds before the response starts


# ---------------------------------------------------------------------------------------------------
# words and pieces


def count_words(text: str) -> int:
    return len(text.split())


def split_pieces(text: str, n: int | None = None) -> list[str]:
    """Split ``text`` into pieces that concatenate back to it, each starting at a word: one per word,
    or exactly ``n`` (fewer only when there are fewer words)."""
    starts = [m.start() for m in _WORD.finditer(text)]
    words = len(starts)
    if words == 0:
        return [text] if text else []
    cuts = starts[1:] if n is None or n >= words else [starts[(i * words) // n] for i in range(1, n)]
    return [text[a:b] for a, b in itertools.pairwise([0, *cuts, len(text)])]


def _first_words(text: str, n: int) -> str:
    end = 0
    for i, m in enumerate(_WORD.finditer(text)):
        if i == n:
            break
        end = m.end()
    return text[:end]


# ---------------------------------------------------------------------------------------------------
# ids and opaque state


def new_id(prefix: str) -> str:
    """A process-unique id (not content-derived)."""
    return f"{prefix}{next(_ID_SEQ):x}"


def digest(*parts: str) -> str:
    return hashlib.sha256("\x00".join(parts).encode()).hexdigest()[:24]


def _state_check(body: str) -> str:
    return hashlib.sha256(_STATE_SALT + body.encode()).hexdigest()[:8]


def make_state(prefix: str, reasoning: str) -> str:
    body = hashlib.sha256(reasoning.encode()).hexdigest()[:32]
    return prefix + body + _state_check(body)


def state_valid(prefix: str, value: object) -> bool:
    """True for a state this mock produced with ``prefix`` (exactly as it was sent)."""
    if not isinstance(value, str) or not value.startswith(prefix) or len(value) != len(prefix) + 40:
        return False
    body, check = value[len(prefix) : -8], value[-8:]
    return _state_check(body) == check


# ---------------------------------------------------------------------------------------------------
# scenario controls


def parse_controls(spec: str, into: Controls) -> None:
    """Merge ``key=value`` pairs (separated by commas, semicolons or spaces) into ``into``."""
    for pair in _SPLIT.split(spec.strip()):
        if not pair:
            continue
        key, sep, value = pair.partition("=")
        key = key.strip().lower()
        if not sep:
            raise RequestInvalid(f"mock scenario: expected key=value, got {pair!r}", "x-mock-scenario")
        if key == "chunks":
            n = _number(key, value, int)
            if not 1 <= n <= _MAX_CHUNKS:
                raise RequestInvalid(f"mock scenario: chunks must be 1..{_MAX_CHUNKS}", "x-mock-scenario")
            into.chunks = int(n)
        elif key in ("delay_ms", "first_byte_ms"):
            ms = _number(key, value, float)
            if not 0 <= ms <= _MAX_DELAY_MS:
                raise RequestInvalid(f"mock scenario: {key} must be 0..{_MAX_DELAY_MS:g}", "x-mock-scenario")
            if key == "delay_ms":
                into.delay_ms = float(ms)
            else:
                into.first_byte_ms = float(ms)
        elif key == "fault":
            if value not in FAULTS:
                raise RequestInvalid(
                    f"mock scenario: unknown fault {value!r} (one of {', '.join(sorted(FAULTS))})",
                    "x-mock-scenario",
                )
            into.fault = value
        elif key == "param":
            into.param = value
        else:
            raise RequestInvalid(f"mock scenario: unknown key {key!r}", "x-mock-scenario")


def _number(key: str, value: str, kind: type[int] | type[float]) -> float:
    try:
        return kind(value)
    except ValueError:
        raise RequestInvalid(
            f"mock scenario: {key} must be a number, got {value!r}", "x-mock-scenario"
        ) from None


def strip_directives(text: str, into: Controls) -> str:
    """Apply every ``[mock:...]`` directive in ``text`` to ``into``; return the text without them."""
    if "[mock:" not in text:
        return text
    for spec in _DIRECTIVE.findall(text):
        parse_controls(spec, into)
    return _DIRECTIVE.sub("", text).strip()


# ---------------------------------------------------------------------------------------------------
# the script


def make_script(ask: Ask, header: str | None, defaults: MockDefaults) -> Script:
    controls = Controls()
    if header:
        parse_controls(header, controls)
    raw = ask.user_text
    text = strip_directives(raw, controls)
    input_words = ask.input_words
    if text is not raw:
        input_words += count_words(text) - count_words(raw)
    input_tokens = max(1, input_words)

    chunks = controls.chunks if controls.chunks is not None else defaults.chunks
    delay_ms = controls.delay_ms if controls.delay_ms is not None else defaults.delay_ms
    first_byte_ms = controls.first_byte_ms or 0.0
    if controls.fault == "slow_first_byte":
        # delay_ms names the wait before the first byte; chunks then follow without delay
        first_byte_ms = controls.delay_ms or controls.first_byte_ms or _DEFAULT_SLOW_FIRST_BYTE_MS
        delay_ms = 0.0

    script = Script(
        model=ask.model,
        stream=ask.stream,
        user_text=text,
        input_tokens=input_tokens,
        cached_tokens=input_tokens // 2 if ask.cache else 0,
        fault=controls.fault,
        param=controls.param,
        delay=delay_ms / 1000.0,
        first_byte=first_byte_ms / 1000.0,
    )

    budget = ask.max_tokens
    reasoning_words = 0
    if ask.reasoning:
        reasoning = "thinking about: " + text
        reasoning_words = count_words(reasoning)
        if budget is not None and reasoning_words > budget:
            reasoning = _first_words(reasoning, max(budget, 0))
            reasoning_words = count_words(reasoning)
            script.incomplete = True
        script.reasoning = reasoning
        if ask.stream:
            script.reasoning_pieces = split_pieces(reasoning)
        script.reasoning_tokens = reasoning_words
    output_words = reasoning_words

    if script.incomplete:
        pass  # the budget went on reasoning: nothing else is produced
    elif ask.tool_outputs is None and ask.tools:
        names = ask.tools[:2] if ask.parallel and "parallel" in text.lower() else ask.tools[:1]
        arguments = orjson.dumps({"input": text}).decode()
        for name in names:
            pieces = split_pieces(arguments) if ask.stream else []
            script.tool_calls.append(ToolCall(digest(name, text), name, arguments, pieces))
            output_words += count_words(arguments)
    else:
        answer = "tool said: " + "; ".join(ask.tool_outputs) if ask.tool_outputs is not None else None
        # padding to ``chunks`` words is a streaming matter: a JSON answer keeps its natural text
        body = _answer_text(text, answer, ask.json_output, chunks if ask.stream else None)
        words = count_words(body)
        if budget is not None and output_words + words > budget:
            body = _first_words(body, max(budget - output_words, 0))
            words = count_words(body)
            script.incomplete = True
        if body:
            script.text = body
            if ask.stream:
                script.text_pieces = split_pieces(body, chunks)
        output_words += words
    script.output_tokens = output_words
    return script


def _answer_text(user_text: str, answer: str | None, json_output: bool, chunks: int | None) -> str:
    inner = answer if answer is not None else user_text
    body = orjson.dumps({"echo": inner}).decode() if json_output else answer or "echo: " + user_text
    if chunks is not None:
        missing = chunks - count_words(body)
        if missing > 0:
            inner += " lorem" * missing
            body = orjson.dumps({"echo": inner}).decode() if json_output else body + " lorem" * missing
    return body

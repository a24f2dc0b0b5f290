"""Hugging Face chat quirks that need per-response state: ``<think>`` tags in ``content`` and tool calls
without ids, for whole messages and for streams.

Reasoning models served through the Inference Providers router or TGI (DeepSeek-R1, QwQ, Qwen3, ...)
often put their reasoning in the message text as ``<think>…</think>`` instead of a ``reasoning_content``
field. A ``<think>`` opening tag counts only at the start of the content (leading whitespace allowed), so
an answer that merely mentions the tag later is left alone. The reasoning is the text between the tags
with surrounding whitespace stripped; the answer is what follows ``</think>`` without its leading
whitespace; a missing ``</think>`` (cut by ``max_tokens``) leaves everything as reasoning. The stream
splitter (:class:`ThinkSplitter`) gives exactly the same split as :func:`split_think` whatever the chunk
boundaries: it holds back a possible partial tag and trailing reasoning whitespace until the next chunk
decides what they are.

Tool calls that arrive without an id (TGI) or with an id already used in the same response get a
deterministic one from :func:`synth_call_id` (upstream response id, call index, name).
"""

from __future__ import annotations

import hashlib
from typing import TYPE_CHECKING, Any

from tollway.core.types import Delta, ReasoningDelta, TextDelta
from tollway.providers.openai_chat_stream import ChatStreamParser

if TYPE_CHECKING:
    from tollway.providers.openai_chat import OpenAIChatAdapter

OPEN_TAG = "<think>"
CLOSE_TAG = "</think>"

Fragments = list[tuple[str, str]]

# splitter states
_START = 0  # nothing but whitespace (or a partial "<think>") seen yet
_REASONING = 1  # inside <think>…
_AFTER = 2  # after </think>, before the first non-whitespace answer text
_TEXT = 3  # plain text until the end


def synth_call_id(upstream_id: str | None, index: int, name: str | None) -> str:
    """A stable call id for a tool call the upstream sent without one."""
    seed = f"{upstream_id or ''}\x00{index}\x00{name or ''}".encode()
    return "call_" + hashlib.sha256(seed).hexdigest()[:24]


def split_think(content: str) -> Fragments:
    """Whole-message split of ``content`` into ``[(kind, text)]`` (kind ``"reasoning"`` or ``"text"``)."""
    if not content:
        return []
    body = content.lstrip()
    if not body.startswith(OPEN_TAG):
        return [("text", content)]
    body = body[len(OPEN_TAG) :]
    end = body.find(CLOSE_TAG)
    reasoning = (body if end < 0 else body[:end]).strip()
    text = "" if end < 0 else body[end + len(CLOSE_TAG) :].lstrip()
    out: Fragments = []
    if reasoning:
        out.append(("reasoning", reasoning))
    if text:
        out.append(("text", text))
    return out


def _partial_suffix(text: str, tag: str) -> int:
    """Length of the longest suffix of ``text`` that is a proper prefix of ``tag``."""
    for k in range(min(len(tag) - 1, len(text)), 0, -1):
        if text.endswith(tag[:k]):
            return k
    return 0


class ThinkSplitter:
    """Incremental :func:`split_think` over content deltas."""

    __slots__ = ("_hold", "_reasoned", "_state")

    def __init__(self) -> None:
        self._state = _START
        self._hold = ""  # text not yet emitted (see module docstring)
        self._reasoned = False  # some reasoning text was emitted

    def feed(self, chunk: str) -> Fragments:
        out: Fragments = []
        if chunk:
            self._feed(chunk, out)
        return out

    def flush(self) -> Fragments:
        """What is still held at the end of the stream."""
        hold, self._hold = self._hold, ""
        if not hold:
            return []
        if self._state == _START:
            return [("text", hold)]
        if self._state == _REASONING:
            text = hold.rstrip()
            if not self._reasoned:
                text = text.lstrip()
            return [("reasoning", text)] if text else []
        return []

    def _feed(self, chunk: str, out: Fragments) -> None:
        state = self._state
        if state == _TEXT:
            out.append(("text", chunk))
            return
        if state == _START:
            buf = self._hold + chunk
            body = buf.lstrip()
            if not body or (len(body) < len(OPEN_TAG) and OPEN_TAG.startswith(body)):
                self._hold = buf
                return
            self._hold = ""
            if not body.startswith(OPEN_TAG):
                self._state = _TEXT
                out.append(("text", buf))
                return
            self._state = _REASONING
            chunk = body[len(OPEN_TAG) :]
            if not chunk:
                return
        if self._state == _REASONING:
            buf = self._hold + chunk
            end = buf.find(CLOSE_TAG)
            if end < 0:
                keep = _partial_suffix(buf, CLOSE_TAG)
                body = buf[: len(buf) - keep]
                text = body.rstrip()
                self._hold = body[len(text) :] + buf[len(body) :]
                self._reasoning(text, out)
                return
            self._hold = ""
            self._reasoning(buf[:end].rstrip(), out)
            self._state = _AFTER
            chunk = buf[end + len(CLOSE_TAG) :]
        # _AFTER: drop the whitespace between </think> and the answer
        text = chunk.lstrip()
        if text:
            self._state = _TEXT
            out.append(("text", text))

    def _reasoning(self, text: str, out: Fragments) -> None:
        if not self._reasoned:
            text = text.lstrip()
        if text:
            self._reasoned = True
            out.append(("reasoning", text))


class PresplitContent(list[tuple[str, str]]):
    """Content of one stream delta already split by the stream's :class:`ThinkSplitter`; the adapter's
    ``content_fragments`` hook returns it as it is."""

    __slots__ = ()


class HuggingFaceStreamParser(ChatStreamParser):
    """The OpenAI-compatible chunk parser plus ``<think>`` splitting across chunks and tool-call ids."""

    __slots__ = ("_call_ids", "_think")

    def __init__(self, hooks: OpenAIChatAdapter) -> None:
        super().__init__(hooks)
        self._think = ThinkSplitter()
        self._call_ids: dict[int, str] = {}  # upstream tool_calls index -> the id its call got

    def _delta(self, delta: dict[str, Any], out: list[Delta]) -> None:
        content = delta.get("content")
        if isinstance(content, str):
            delta["content"] = PresplitContent(self._think.feed(content))
        calls = delta.get("tool_calls")
        if isinstance(calls, list):
            self._name_calls(calls)
        super()._delta(delta, out)

    def _name_calls(self, calls: list[Any]) -> None:
        """Give the first fragment of each call an id when it has none or repeats another call's."""
        for position, call in enumerate(calls):
            if not isinstance(call, dict):
                continue
            index = call.get("index")
            if type(index) is not int:
                index = position
            given = call.get("id")
            given = given if isinstance(given, str) and given else None
            known = self._call_ids.get(index)
            if known is not None and (given is None or given == known):
                continue  # a continuation fragment of the call at this index
            if given is None or given in self._call_ids.values():
                function = call.get("function")
                name = function.get("name") if isinstance(function, dict) else None
                given = synth_call_id(self._id, index, name if isinstance(name, str) else None)
                call["id"] = given
            self._call_ids[index] = given

    def _end(self) -> list[Delta]:
        tail: list[Delta] = []
        for kind, text in self._think.flush():
            if kind == "reasoning":
                tail.append(ReasoningDelta(self._item("reasoning", tail), text))
            else:
                tail.append(TextDelta(self._item("text", tail), text))
        tail.extend(super()._end())
        return tail

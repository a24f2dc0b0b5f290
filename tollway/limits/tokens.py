"""Worst-case token counts of a request, for budget reservations and TPM admission.

**Input.** The text of the request — instructions, every message part, tool calls and their outputs,
reasoning summaries, tool definitions and the JSON schema of a structured output (as JSON) — is counted
with a real tokenizer, plus a fixed overhead: 4 tokens per input item, 3 to prime the reply, 8 per tool.

* OpenAI-family models (``gpt-*``, ``o1``/``o3``/``o4``…, ``chatgpt-*``, ``codex-*``, fine-tunes of them; on
  any provider): tiktoken, ``o200k_base`` (``cl100k_base`` for ``gpt-4``/``gpt-4-turbo``/``gpt-3.5``). The
  rank files are shipped in ``tollway/limits/encodings`` and loaded on first use (never downloaded).
* Every other model: its tokenizer is not public, so the ``o200k_base`` count is multiplied by
  :data:`ANTHROPIC_FACTOR` (1.35) for Claude models (any provider) and :data:`OTHER_FACTOR` (1.25)
  otherwise, rounded up — an estimate on the high side of what those tokenizers produce for typical text.
* Non-text parts: an image counts :data:`IMAGE_TOKENS` (2,500; ``detail: low`` 85; 48,169 on
  ``gpt-4o-mini``, which bills images at ~33x tokens); a file ``max(FILE_TOKENS, decoded bytes / 4)``;
  an opaque ``encrypted_content`` its length / 4.

**Output.** ``max_output_tokens`` when the request sets it; else what the adapter sends (Anthropic:
4,096, or thinking budget + 4,096); else the model's ``max_output_tokens`` from the price table; else
:data:`DEFAULT_MAX_OUTPUT` (16,384).

Settlement always uses the provider's reported usage; these counts only size what is reserved up front.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import gzip
import math
from collections.abc import Iterable
from importlib import resources
from typing import Any

import orjson
import tiktoken

from tollway.core.types import CanonicalRequest
from tollway.metering.pricing import ModelPrice
from tollway.providers.anthropic_request import DEFAULT_MAX_TOKENS as ANTHROPIC_DEFAULT_MAX_TOKENS
from tollway.providers.anthropic_request import THINKING_BUDGETS

DEFAULT_MAX_OUTPUT = 16_384
IMAGE_TOKENS = 2_500
IMAGE_TOKENS_LOW = 85
GPT_4O_MINI_IMAGE_TOKENS = 48_169
FILE_TOKENS = 2_500
PER_ITEM = 4
REPLY_PRIMING = 3
PER_TOOL = 8
ANTHROPIC_FACTOR = 1.35
OTHER_FACTOR = 1.25
THREAD_ABOVE_CHARS = 64_000  # larger prompts are tokenized off the event loop

_O200K_PATTERN = "|".join([
    r"""[^\r\n\p{L}\p{N}]?[\p{Lu}\p{Lt}\p{Lm}\p{Lo}\p{M}]*[\p{Ll}\p{Lm}\p{Lo}\p{M}]+(?i:'s|'t|'re|'ve|'m|'ll|'d)?""",
    r"""[^\r\n\p{L}\p{N}]?[\p{Lu}\p{Lt}\p{Lm}\p{Lo}\p{M}]+[\p{Ll}\p{Lm}\p{Lo}\p{M}]*(?i:'s|'t|'re|'ve|'m|'ll|'d)?""",
    r"""\p{N}{1,3}""",
    r""" ?[^\s\p{L}\p{N}]+[\r\n/]*""",
    r"""\s*[\r\n]+""",
    r"""\s+(?!\S)""",
    r"""\s+""",
])
_CL100K_PATTERN = (r"""'(?i:[sdmt]|ll|ve|re)|[^\r\n\p{L}\p{N}]?+\p{L}++|\p{N}{1,3}+| ?[^\s\p{L}\p{N}]++[\r\n]*+"""
                   r"""|\s++$|\s*[\r\n]|\s+(?!\S)|\s""")
ENCODINGS: dict[str, tuple[str, dict[str, int]]] = {
    "o200k_base": (_O200K_PATTERN, {"<|endoftext|>": 199999, "<|endofprompt|>": 200018}),
    "cl100k_base": (_CL100K_PATTERN, {"<|endoftext|>": 100257, "<|fim_prefix|>": 100258, "<|fim_middle|>": 100259,
                                      "<|fim_suffix|>": 100260, "<|endofprompt|>": 100276}),
}
_OPENAI_PREFIXES = ("gpt-", "o1", "o3", "o4", "chatgpt-", "codex-", "computer-use-", "text-davinci", "davinci",
                    "babbage")
_CL100K_PREFIXES = ("gpt-4-", "gpt-3.5", "gpt-35")


def load_encoding(name: str) -> tiktoken.Encoding:
    """Build ``name`` from the shipped rank file (``<base64 token> <rank>`` per line, gzip-compressed)."""
    pattern, special = ENCODINGS[name]
    raw = resources.files("tollway.limits").joinpath("encodings", f"{name}.tiktoken.gz").read_bytes()
    ranks: dict[bytes, int] = {}
    for line in gzip.decompress(raw).splitlines():
        if line:
            token, rank = line.split()
            ranks[base64.b64decode(token)] = int(rank)
    return tiktoken.Encoding(name=name, pat_str=pattern, mergeable_ranks=ranks, special_tokens=special)


def base_model(model: str) -> str:
    """``openai/gpt-4o`` -> ``gpt-4o``; ``ft:gpt-4o-mini:org::id`` -> ``gpt-4o-mini``; lower case."""
    name = model.lower().rsplit("/", 1)[-1]
    if name.startswith("ft:"):
        name = name.split(":")[1]
    return name


def tokenizer_for(model: str) -> tuple[str, float]:
    """(encoding, factor) used to count ``model``'s input."""
    name = base_model(model)
    if name.startswith(_OPENAI_PREFIXES):
        if name == "gpt-4" or name.startswith(_CL100K_PREFIXES):
            return "cl100k_base", 1.0
        return "o200k_base", 1.0
    if "claude" in model.lower():
        return "o200k_base", ANTHROPIC_FACTOR
    return "o200k_base", OTHER_FACTOR


def _image_tokens(part: dict[str, Any], model: str) -> int:
    if part.get("detail") == "low":
        return IMAGE_TOKENS_LOW
    if base_model(model).startswith("gpt-4o-mini"):
        return GPT_4O_MINI_IMAGE_TOKENS
    return IMAGE_TOKENS


def _file_tokens(part: dict[str, Any]) -> int:
    data = part.get("file_data")
    if not isinstance(data, str):
        return FILE_TOKENS
    payload = data.split(",", 1)[1] if data.startswith("data:") and "," in data else data
    try:
        size = len(base64.b64decode(payload, validate=False))
    except (binascii.Error, ValueError):
        size = len(payload)
    return max(FILE_TOKENS, math.ceil(size / 4))


def _content(content: Any, texts: list[str], model: str) -> int:
    """Collect the texts of a message's content; returns the fixed tokens of its non-text parts."""
    if isinstance(content, str):
        texts.append(content)
        return 0
    if not isinstance(content, list):
        if content is not None:
            texts.append(orjson.dumps(content).decode())
        return 0
    fixed = 0
    for part in content:
        if not isinstance(part, dict):
            texts.append(str(part))
            continue
        kind = part.get("type")
        if kind in ("input_text", "output_text", "text", "summary_text", "reasoning_text"):
            texts.append(str(part.get("text", "")))
        elif kind == "refusal":
            texts.append(str(part.get("refusal", "")))
        elif kind in ("input_image", "image_url"):
            fixed += _image_tokens(part, model)
        elif kind == "input_file":
            fixed += _file_tokens(part)
        else:
            texts.append(orjson.dumps(part).decode())
    return fixed


def collect(req: CanonicalRequest, model: str) -> tuple[list[str], int]:
    """The texts to tokenize and the fixed token count of everything else."""
    texts: list[str] = []
    fixed = REPLY_PRIMING + PER_ITEM * len(req.input)
    if req.instructions:
        texts.append(req.instructions)
        fixed += PER_ITEM
    for item in req.input:
        kind = item.get("type", "message")
        if kind == "message":
            fixed += _content(item.get("content"), texts, model)
        elif kind == "function_call":
            texts.append(str(item.get("name", "")))
            texts.append(str(item.get("arguments", "")))
        elif kind == "function_call_output":
            fixed += _content(item.get("output"), texts, model)
        elif kind == "reasoning":
            fixed += _content(item.get("summary"), texts, model) + _content(item.get("content"), texts, model)
            encrypted = item.get("encrypted_content")
            if isinstance(encrypted, str):
                fixed += math.ceil(len(encrypted) / 4)
        else:
            texts.append(orjson.dumps(item).decode())
    for tool in req.tools:
        fixed += PER_TOOL
        texts.append(tool.name)
        if tool.description:
            texts.append(tool.description)
        if tool.parameters is not None:
            texts.append(orjson.dumps(tool.parameters).decode())
    if req.text_format.schema is not None:
        texts.append(orjson.dumps(req.text_format.schema).decode())
    return texts, fixed


def _count(encoding: tiktoken.Encoding, texts: Iterable[str]) -> int:
    encode = encoding.encode_ordinary
    return sum(len(encode(t)) for t in texts if t)


class TokenCounter:
    """Counts worst-case tokens; loads each encoding once, on first use, off the event loop."""

    def __init__(self) -> None:
        self._encodings: dict[str, tiktoken.Encoding] = {}
        self._lock = asyncio.Lock()

    async def encoding(self, name: str) -> tiktoken.Encoding:
        found = self._encodings.get(name)
        if found is not None:
            return found
        async with self._lock:
            if name not in self._encodings:
                self._encodings[name] = await asyncio.to_thread(load_encoding, name)
            return self._encodings[name]

    async def input_tokens(self, req: CanonicalRequest, model: str) -> int:
        name, factor = tokenizer_for(model)
        encoding = await self.encoding(name)
        texts, fixed = collect(req, model)
        if sum(len(t) for t in texts) > THREAD_ABOVE_CHARS:
            counted = await asyncio.to_thread(_count, encoding, texts)
        else:
            counted = _count(encoding, texts)
        if factor != 1.0:
            counted = math.ceil(counted * factor)
        return counted + fixed


def output_tokens(req: CanonicalRequest, provider_kind: str, price: ModelPrice | None) -> int:
    """The most output tokens the request can be billed for (see the module docstring)."""
    if req.max_output_tokens is not None:
        return req.max_output_tokens
    if provider_kind == "anthropic":
        budget = THINKING_BUDGETS.get(req.reasoning_effort or "", 0)
        return budget + ANTHROPIC_DEFAULT_MAX_TOKENS if budget >= ANTHROPIC_DEFAULT_MAX_TOKENS \
            else ANTHROPIC_DEFAULT_MAX_TOKENS
    if price is not None and price.max_output_tokens:
        return price.max_output_tokens
    return DEFAULT_MAX_OUTPUT

"""Build tollway's shipped price table, ``tollway/metering/data/prices.json``, from the LiteLLM price list.

Usage::

    uv run python scripts/build_price_table.py [--source PATH] [--out PATH] [--version VERSION]

The source (``../shared/pricing/model_prices_and_context_window.json`` beside the repository, see its
``SOURCE.txt``) gives USD prices *per token* as JSON numbers. They are read as :class:`~decimal.Decimal`
from their text and converted exactly to USD **per 1,000,000 tokens** (a decimal shift, no rounding; any
inexact step raises). Prices are written as decimal strings so nothing ever passes through float.

What is shipped (only ``mode`` ``chat`` or ``responses`` entries with both an input and an output price):

* ``openai/<id>``: LiteLLM provider ``openai``, un-prefixed keys.
* ``anthropic/<id>``: provider ``anthropic``.
* ``gemini/<id>``: provider ``gemini``, the Google AI Studio ``gemini/`` keys only.
* ``mistral/<id>``: provider ``mistral`` (``mistral/`` keys).
* ``bedrock/<id>``: providers ``bedrock`` and ``bedrock_converse``; Bedrock model ids and cross-region
  inference profiles (``us.``, ``eu.``, ``global.`` ...) only, i.e. keys without ``/``. Region-pinned and
  commitment (provisioned throughput) entries (``bedrock/us-east-1/...``) and ``bedrock_mantle`` are left
  out: tollway prices on-demand Converse calls by model id.
* ``huggingface/<id>``: provider ``huggingface`` if the source has any (this version has none).
* ollama: never shipped. Local models are unpriced unless the operator configures a price.

Entries whose input and output prices are both 0 (free tiers, experiments) are left out: tollway never
reports a cost of 0 it does not know to be true; the operator can price them with an override.

Output: ``{"version", "source", "currency": "USD", "unit": "per_1m_tokens", "models": {key: {...}}}`` with
per-model fields ``input``, ``cached_input``, ``cache_write``, ``output``, ``reasoning``,
``input_above_200k``, ``output_above_200k``, ``cached_input_above_200k``, ``cache_write_above_200k``
(decimal strings or null) and ``max_input_tokens``, ``max_output_tokens`` (int or null). Keys sorted,
indent 1, so diffs stay readable.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import sys
from collections.abc import Mapping
from decimal import Context, Decimal, Inexact, InvalidOperation, Overflow, Rounded
from pathlib import Path
from typing import Any

VERSION = "2026-11-23.1"
SOURCE_DESCRIPTION = "litellm 1.109.1 (PyPI wheel) litellm/model_prices_and_context_window_backup.json"

REPO_ROOT = Path(__file__).resolve().parents[1]
DEFAULT_SOURCE = REPO_ROOT / ".." / "shared" / "pricing" / "model_prices_and_context_window.json"
DEFAULT_OUT = REPO_ROOT / "tollway" / "metering" / "data" / "prices.json"

MODES = frozenset({"chat", "responses"})

# output field -> source field (USD per token)
PRICE_FIELDS: tuple[tuple[str, str], ...] = (
    ("input", "input_cost_per_token"),
    ("cached_input", "cache_read_input_token_cost"),
    ("cache_write", "cache_creation_input_token_cost"),
    ("output", "output_cost_per_token"),
    ("reasoning", "output_cost_per_reasoning_token"),
    ("input_above_200k", "input_cost_per_token_above_200k_tokens"),
    ("output_above_200k", "output_cost_per_token_above_200k_tokens"),
    ("cached_input_above_200k", "cache_read_input_token_cost_above_200k_tokens"),
    ("cache_write_above_200k", "cache_creation_input_token_cost_above_200k_tokens"),
)
LIMIT_FIELDS = ("max_input_tokens", "max_output_tokens")

# Exact decimal arithmetic: any rounding raises instead of silently changing a price.
_EXACT = Context(prec=60, traps=[Inexact, Rounded, InvalidOperation, Overflow])


def plain_decimal(value: Decimal) -> str:
    """``value`` as a plain decimal string: no exponent, no trailing fractional zeros."""
    text = format(value, "f")
    if "." in text:
        text = text.rstrip("0").rstrip(".")
    return "0" if text in ("", "-0") else text


def per_million(value: object, where: str) -> str:
    """A per-token price from the source -> exact per-1M-token decimal string."""
    if isinstance(value, bool) or not isinstance(value, (Decimal, int)):
        raise ValueError(f"{where}: price is not a number: {value!r}")
    price = Decimal(value)
    if not price.is_finite() or price < 0:
        raise ValueError(f"{where}: invalid price {value!r}")
    return plain_decimal(_EXACT.scaleb(price, 6))


def table_key(source_key: str, provider: str) -> str | None:
    """The tollway key (``<provider>/<model id>``) for a source entry, or None when not shipped."""
    if provider == "openai":
        return None if "/" in source_key else f"openai/{source_key}"
    if provider == "anthropic":
        return None if "/" in source_key else f"anthropic/{source_key}"
    if provider in ("gemini", "mistral", "huggingface"):
        prefix = f"{provider}/"
        if source_key.startswith(prefix) and "/" not in source_key[len(prefix) :]:
            return source_key
        return None
    if provider in ("bedrock", "bedrock_converse"):
        if "/" in source_key or "." not in source_key:
            return None
        return f"bedrock/{source_key}"
    return None


def model_entry(source_key: str, spec: Mapping[str, Any]) -> dict[str, Any] | None:
    entry: dict[str, Any] = {}
    for name, field in PRICE_FIELDS:
        raw = spec.get(field)
        entry[name] = None if raw is None else per_million(raw, f"{source_key}.{field}")
    if entry["input"] is None or entry["output"] is None:
        return None
    if entry["input"] == "0" and entry["output"] == "0":
        return None
    for name in LIMIT_FIELDS:
        raw = spec.get(name)
        entry[name] = raw if isinstance(raw, int) and not isinstance(raw, bool) and raw > 0 else None
    return entry


def build(source_bytes: bytes, version: str = VERSION) -> dict[str, Any]:
    data = json.loads(source_bytes, parse_float=Decimal)
    if not isinstance(data, dict):
        raise ValueError("source is not a JSON object")
    models: dict[str, dict[str, Any]] = {}
    for source_key, spec in data.items():
        if not isinstance(spec, dict) or spec.get("mode") not in MODES:
            continue
        provider = spec.get("litellm_provider")
        if not isinstance(provider, str):
            continue
        key = table_key(source_key, provider)
        if key is None:
            continue
        entry = model_entry(source_key, spec)
        if entry is None:
            continue
        models[key] = entry  # table_key is injective: no two source entries share a key
    digest = hashlib.sha256(source_bytes).hexdigest()
    return {
        "version": version,
        "source": f"{SOURCE_DESCRIPTION} sha256:{digest}",
        "currency": "USD",
        "unit": "per_1m_tokens",
        "models": models,
    }


def render(table: Mapping[str, Any]) -> str:
    return json.dumps(table, indent=1, sort_keys=True, ensure_ascii=False) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--source", type=Path, default=DEFAULT_SOURCE)
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT)
    parser.add_argument("--version", default=VERSION)
    args = parser.parse_args(argv)
    table = build(args.source.read_bytes(), args.version)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(render(table), encoding="utf-8")
    print(f"wrote {len(table['models'])} models, version {table['version']}, to {args.out}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

"""The cost of one request, exact in :class:`~decimal.Decimal` USD.

With the rates of :class:`~tollway.metering.pricing.ModelPrice` (USD per 1M tokens)::

    cost = (input - cached - cache_write) * input_rate
         + cached * cached_rate
         + cache_write * cache_write_rate
         + output * output_rate

``Usage.input_tokens`` *includes* cached and cache-write tokens and ``output_tokens`` includes reasoning
tokens (the :class:`~tollway.core.types.Usage` contract). When the model has a separate reasoning rate,
the output term is ``reasoning * reasoning_rate + (output - reasoning) * output_rate``. Fallbacks: no
cached rate -> the input rate; no cache-write rate -> the input rate (what a provider that does not bill
cache writes separately charges for those tokens).

Long-context tier: when the model has an above-200k input or output price and ``input_tokens >
200_000`` (the whole prompt, cached tokens included) the whole request is billed at the tier's rates.
A rate without a tier value falls back: input/output to their normal rate; cached and cache-write to
their normal rate if the model has one, else to the tier input rate (``ModelPrice.long_rates``). Other
thresholds some providers use (100k, 128k, 272k) are not modelled. The reasoning rate has no tier.

Token counts are clamped at 0 (cached + cache-write above input bills no uncached input, reasoning
above output is capped at output), so a cost is never negative.

Nothing is rounded: amounts keep every digit (arithmetic runs in a context that raises rather than
round). An unpriced model gives ``status="unpriced"`` and every amount None, never a silent 0.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Context, Decimal, DivisionByZero, Inexact, InvalidOperation, Overflow
from typing import Any, Literal

import orjson

from tollway.core.types import Usage
from tollway.metering.pricing import ModelPrice

LONG_CONTEXT_THRESHOLD = 200_000

CostStatus = Literal["priced", "unpriced"]

_EXACT = Context(prec=80, traps=[Inexact, InvalidOperation, Overflow, DivisionByZero])
_mul = _EXACT.multiply
_add = _EXACT.add
_scaleb = _EXACT.scaleb


def _usd(tokens: int, rate_per_1m: Decimal) -> Decimal:
    return _scaleb(_mul(tokens, rate_per_1m), -6)


def decimal_json(value: Decimal) -> orjson.Fragment:
    """``value`` as a plain JSON number for :func:`orjson.dumps`: every digit, no exponent
    (``Decimal("1.23E-7")`` -> ``0.000000123``), no trailing fractional zeros."""
    if not value.is_finite():
        raise ValueError(f"cannot render {value!r} as a JSON number")
    text = format(value, "f")
    if "." in text:
        text = text.rstrip("0").rstrip(".")
    if text == "-0":
        text = "0"
    return orjson.Fragment(text)


@dataclass(slots=True)
class CostBreakdown:
    """USD amounts of one request; all None when ``status`` is ``"unpriced"``. ``output_usd`` includes
    reasoning tokens."""

    status: CostStatus
    price_table_version: str
    input_usd: Decimal | None = None
    cached_input_usd: Decimal | None = None
    cache_write_usd: Decimal | None = None
    output_usd: Decimal | None = None
    total_usd: Decimal | None = None

    def to_json(self) -> dict[str, Any]:
        """A dict for :func:`orjson.dumps`; amounts are :class:`orjson.Fragment` exact numbers (or null)."""
        return {
            "status": self.status,
            "currency": "USD",
            "price_table_version": self.price_table_version,
            "input_usd": _json_amount(self.input_usd),
            "cached_input_usd": _json_amount(self.cached_input_usd),
            "cache_write_usd": _json_amount(self.cache_write_usd),
            "output_usd": _json_amount(self.output_usd),
            "total_usd": _json_amount(self.total_usd),
        }


def _json_amount(value: Decimal | None) -> orjson.Fragment | None:
    return None if value is None else decimal_json(value)


def compute_cost(price: ModelPrice | None, usage: Usage, version: str) -> CostBreakdown:
    """The cost of ``usage`` at ``price`` (None: unpriced), tagged with the price table ``version``."""
    if price is None:
        return CostBreakdown(status="unpriced", price_table_version=version)
    rates = price.base_rates
    if price.long_rates is not None and usage.input_tokens > LONG_CONTEXT_THRESHOLD:
        rates = price.long_rates
    input_rate, cached_rate, write_rate, output_rate = rates

    cached = max(usage.cached_tokens, 0)
    written = max(usage.cache_write_tokens, 0)
    uncached = max(usage.input_tokens - cached - written, 0)
    output = max(usage.output_tokens, 0)

    input_usd = _usd(uncached, input_rate)
    cached_usd = _usd(cached, cached_rate)
    write_usd = _usd(written, write_rate)
    reasoning = min(max(usage.reasoning_tokens, 0), output)
    if price.reasoning is not None and reasoning:
        output_usd = _add(_usd(reasoning, price.reasoning), _usd(output - reasoning, output_rate))
    else:
        output_usd = _usd(output, output_rate)
    total = _add(_add(input_usd, cached_usd), _add(write_usd, output_usd))
    return CostBreakdown(
        status="priced",
        price_table_version=version,
        input_usd=input_usd,
        cached_input_usd=cached_usd,
        cache_write_usd=write_usd,
        output_usd=output_usd,
        total_usd=total,
    )

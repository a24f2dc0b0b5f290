"""USD amounts as they travel to a limits backend and back, and as messages show them.

Every amount is a :class:`~decimal.Decimal`. On the wire to Redis an amount is a plain decimal string with
exactly :data:`SCALE` fractional digits (``"1.230000000000000000"``), which the Lua scripts add and compare
exactly in 9-digit limbs (never as a float). 18 digits hold any cost the price table can produce (rates
have at most 12 fractional digits per 1M tokens, so a token's cost has at most 18); an amount with more
digits is rounded **up** (a reservation or settlement never undercounts).
"""

from __future__ import annotations

from decimal import ROUND_CEILING, Context, Decimal, InvalidOperation

SCALE = 18
QUANTUM = Decimal(1).scaleb(-SCALE)
MAX_USD = Decimal(10) ** 15  # the Lua scripts keep whole dollars exact below 2**53
ZERO = Decimal(0)
_CTX = Context(prec=60)
_CENT = Decimal("0.01")


def to_wire(amount: Decimal) -> str:
    """``amount`` (finite, >= 0, < :data:`MAX_USD`) as an 18-digit fixed-point string, rounded up."""
    if not amount.is_finite() or amount < 0 or amount >= MAX_USD:
        raise ValueError(f"amount out of range: {amount!r}")
    return format(amount.quantize(QUANTUM, rounding=ROUND_CEILING, context=_CTX), "f")


def from_wire(raw: bytes | str | None) -> Decimal:
    """A fixed-point string from a backend (None: nothing recorded yet) as a Decimal."""
    if raw is None:
        return ZERO
    text = raw.decode() if isinstance(raw, bytes) else raw
    try:
        return Decimal(text)
    except InvalidOperation as exc:
        raise ValueError(f"not an amount: {text!r}") from exc


def usd(amount: Decimal) -> str:
    """``$1.50``, ``$0.000123``: cents at least, every significant digit below a cent, never negative."""
    amount = max(amount, ZERO)
    if amount == amount.quantize(_CENT, context=_CTX):
        return "$" + format(amount.quantize(_CENT, context=_CTX), "f")
    text = format(amount.normalize(_CTX), "f")
    return "$" + text


def plain(amount: Decimal) -> str:
    """An exact decimal string for JSON (``"0.5"``, ``"12"``): no exponent, no trailing zeros."""
    text = format(amount, "f")
    if "." in text:
        text = text.rstrip("0").rstrip(".")
    return "0" if text in ("-0", "") else text

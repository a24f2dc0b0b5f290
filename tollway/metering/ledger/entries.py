"""The ledger entry format, from an :class:`~tollway.core.context.ExchangeRecord` to a database row.

1. :func:`to_row` (on the event loop, in the recorder): the record as a flat dict of plain values —
   ids, model, status, tokens, the cost breakdown as :class:`~decimal.Decimal` — no I/O, no encoding.
2. :func:`encode_row` (in the spool thread): that dict as orjson bytes, amounts as exact decimal strings.
3. :func:`db_values` (in the shipper): the spooled bytes as ``usage_ledger`` column values — strings cut
   to their column width and stripped of NUL characters (PostgreSQL rejects them), so no value a client
   can influence makes the database refuse a row; amounts as ``Decimal`` (PostgreSQL ``NUMERIC``) or as
   exact decimal text (SQLite).
"""

from __future__ import annotations

import datetime as dt
from decimal import Decimal
from typing import Any

import orjson

from tollway.core.context import ExchangeRecord
from tollway.metering.ledger.tables import (
    CODE_LEN,
    ID_LEN,
    MONEY_COLUMNS,
    NAME_LEN,
    REQUEST_ID_LEN,
    SHORT_LEN,
    TOKEN_COLUMNS,
)

# Statuses counted as errors in the rollups (client disconnects are not errors of the gateway).
ERROR_STATUSES = frozenset({"error", "failed"})
_MAX_TAGS = 64

# column -> width, for the string columns of usage_ledger filled from a spooled row
_TEXT_COLUMNS: tuple[tuple[str, int], ...] = (
    ("org_id", ID_LEN),
    ("team_id", ID_LEN),
    ("project_id", ID_LEN),
    ("key_id", ID_LEN),
    ("end_user_id", ID_LEN),
    ("end_user_external_id", NAME_LEN),
    ("model", NAME_LEN),
    ("provider", CODE_LEN),
    ("upstream_model", NAME_LEN),
    ("error_code", CODE_LEN),
    ("cost_status", SHORT_LEN),
    ("price_table_version", CODE_LEN),
)


def to_row(record: ExchangeRecord) -> dict[str, Any]:
    """The record as a plain dict (cheap: attribute reads only)."""
    p = record.principal
    u = record.usage
    c = record.cost
    row: dict[str, Any] = {
        "request_id": record.request_id,
        "created_at": record.created_at,
        "org_id": None,
        "team_id": None,
        "project_id": None,
        "key_id": None,
        "end_user_id": record.end_user_id,
        "end_user_external_id": record.end_user_external_id,
        "door": record.door,
        "model": record.model,
        "provider": record.provider,
        "upstream_model": record.upstream_model,
        "streaming": record.streaming,
        "status": record.status,
        "http_status": record.http_status,
        "error_code": record.error_code,
        "input_tokens": u.input_tokens,
        "cached_tokens": u.cached_tokens,
        "cache_write_tokens": u.cache_write_tokens,
        "output_tokens": u.output_tokens,
        "reasoning_tokens": u.reasoning_tokens,
        "cost_status": None,
        "price_table_version": None,
        "input_usd": None,
        "cached_input_usd": None,
        "cache_write_usd": None,
        "output_usd": None,
        "total_usd": None,
        "latency_ms": record.latency_ms,
        "overhead_ms": record.overhead_ms,
        "tags": record.tags,
    }
    if p is not None:
        row["org_id"] = p.org_id
        row["team_id"] = p.team_id
        row["project_id"] = p.project_id
        row["key_id"] = p.key_id
        if row["end_user_id"] is None:  # a key bound to one end user
            row["end_user_id"] = p.end_user_id
            row["end_user_external_id"] = row["end_user_external_id"] or p.end_user_external_id
    if c is not None:
        row["cost_status"] = c.status
        row["price_table_version"] = c.price_table_version
        row["input_usd"] = c.input_usd
        row["cached_input_usd"] = c.cached_input_usd
        row["cache_write_usd"] = c.cache_write_usd
        row["output_usd"] = c.output_usd
        row["total_usd"] = c.total_usd
    return row


def decimal_text(value: Decimal) -> str:
    """Every digit, never an exponent (``1.5E-7`` -> ``0.00000015``)."""
    return format(value, "f")


def _default(value: Any) -> Any:
    if isinstance(value, Decimal):
        return decimal_text(value)
    raise TypeError(f"{type(value).__name__} is not a ledger value")


def encode_row(row: dict[str, Any]) -> bytes:
    return orjson.dumps(row, default=_default)


def _text(value: Any, width: int) -> str | None:
    if value is None:
        return None
    text = value if isinstance(value, str) else str(value)
    if "\x00" in text:
        text = text.replace("\x00", "")
    return text[:width]


_MAX_COUNT = 2**62  # BIGINT with room to sum


def _count(value: Any, high: int = _MAX_COUNT) -> int:
    if not isinstance(value, int) or isinstance(value, bool):
        return 0
    return min(max(value, 0), high)


def _tags(value: Any) -> dict[str, str]:
    if not isinstance(value, dict):
        return {}
    out: dict[str, str] = {}
    for k, v in list(value.items())[:_MAX_TAGS]:
        key = _text(k, NAME_LEN)
        if key is not None:
            out[key] = _text(v, NAME_LEN) or ""
    return out


def utc_datetime(epoch: float) -> dt.datetime:
    """Naive UTC datetime of an epoch timestamp (the ledger's time columns are naive UTC)."""
    return dt.datetime.fromtimestamp(epoch, dt.UTC).replace(tzinfo=None)


def db_values(entry_id: str, payload: bytes, *, money_as_text: bool) -> dict[str, Any]:
    """``usage_ledger`` column values of one spooled row (raises ``orjson.JSONDecodeError``,
    ``TypeError`` or ``ValueError`` for a payload that is not a ledger row)."""
    row = orjson.loads(payload)
    if not isinstance(row, dict):
        raise TypeError("a spooled ledger row must be a JSON object")
    created = utc_datetime(float(row["created_at"]))
    values: dict[str, Any] = {
        "id": entry_id,
        "request_id": _text(row.get("request_id"), REQUEST_ID_LEN) or "",
        "created_at": created,
        "day": created.date(),
        "door": _text(row.get("door"), SHORT_LEN) or "",
        "streaming": bool(row.get("streaming")),
        "status": _text(row.get("status"), SHORT_LEN) or "",
        "http_status": _count(row.get("http_status"), 999),
        "latency_ms": float(row.get("latency_ms") or 0.0),
        "overhead_ms": float(row.get("overhead_ms") or 0.0),
        "tags": _tags(row.get("tags")),
    }
    for name, width in _TEXT_COLUMNS:
        values[name] = _text(row.get(name), width)
    for name in TOKEN_COLUMNS:
        values[name] = _count(row.get(name))
    for name in MONEY_COLUMNS:
        raw = row.get(name)
        if raw is None:
            values[name] = None
        else:
            amount = Decimal(str(raw))
            if not amount.is_finite():
                raise ValueError(f"{name} is not a finite amount")
            values[name] = decimal_text(amount) if money_as_text else amount
    return values

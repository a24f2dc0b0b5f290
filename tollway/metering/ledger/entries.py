"""The ledger entry format, from an :class:`~tollway.core.context.ExchangeRecord` to a database row.

1. :func:`to_row` (on the event loop, in the recorder): the record as a flat dict of plain values —
   ids, model, status, tokens, the cost breakdown as :class:`~decimal.Decimal` — no I/O, no encoding.
2. :func:`encode_row` (in the spool thread): that dict as orjson bytes, amounts as exact decimal strings.
3. In the shipper, the spooled bytes as ``usage_ledger`` column values — strings cut to their column width
   and stripped of NUL characters (PostgreSQL rejects them), so no value a client can influence makes the
   database refuse a row; counts clamped to what a BIGINT sums; amounts exact. :func:`sqlite_params` and
   :func:`postgresql_params` give them in column order (:data:`LEDGER_COLUMNS`) in the form each driver
   binds — the shipper's INSERT bypasses SQLAlchemy's per-row parameter processing, so these produce exactly
   what its column types would have bound (decimal text and ``YYYY-MM-DD HH:MM:SS.ffffff`` text on SQLite;
   ``Decimal`` and datetimes on PostgreSQL). :func:`db_values` gives the same values by column name, as
   SQLAlchemy takes them. The common case (no NUL, strings within width, amounts already in
   :func:`decimal_text` form) is checked, not rebuilt: a few microseconds per row.
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Callable
from decimal import Decimal
from typing import Any

import orjson

from tollway.core.context import ExchangeRecord
from tollway.metering.ledger.tables import CODE_LEN, ID_LEN, MONEY_COLUMNS, NAME_LEN, REQUEST_ID_LEN, SHORT_LEN

# Statuses counted as errors in the rollups (client disconnects are not errors of the gateway).
ERROR_STATUSES = frozenset({"error", "failed"})
_MAX_TAGS = 64


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


def _fit(value: Any, width: int) -> str | None:
    """:func:`_text` for a row without NUL characters: a short string (the usual case) is returned as is."""
    if value is None or (value.__class__ is str and len(value) <= width):
        return value  # type: ignore[no-any-return]
    return _text(value, width)


_MAX_COUNT = 2**62  # BIGINT with room to sum


def _clean(value: Any, width: int) -> str | None:
    """:func:`_text` with a fast path for a short string without NUL (the usual case)."""
    if value.__class__ is str and len(value) <= width and "\x00" not in value:
        return value  # type: ignore[no-any-return]
    return _text(value, width)


def _count(value: Any, high: int = _MAX_COUNT) -> int:
    if value.__class__ is int:  # JSON gives exact int (bool is its own class)
        return value if 0 <= value <= high else min(max(value, 0), high)  # type: ignore[no-any-return]
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


def _float(value: Any) -> float:
    if value.__class__ is float:
        return value if value - value == 0.0 else 0.0  # NaN and infinities: what JSON makes of them (null)
    return float(value or 0.0)


# What decimal_text() writes: digits, at most one point, no exponent, no leading zeros, no sign but '-'.
_PLAIN_DECIMAL = re.compile(r"-?(?:0|[1-9][0-9]*)(?:\.[0-9]+)?").fullmatch


def _amount(raw: Any, name: str) -> Decimal:
    amount = Decimal(str(raw))
    if not amount.is_finite():
        raise ValueError(f"{name} is not a finite amount")
    return amount


def _money_text(raw: Any, name: str) -> str | None:
    """An amount as exact decimal text (SQLite). Text already in :func:`decimal_text` form — what
    :func:`encode_row` writes — is kept as is: ``decimal_text(Decimal(s)) == s`` for such text."""
    if raw is None:
        return None
    if raw.__class__ is str and _PLAIN_DECIMAL(raw):
        return raw  # type: ignore[no-any-return]
    if raw.__class__ is Decimal and raw.is_finite():  # a row dict's own amount (:func:`row_sqlite_params`)
        return decimal_text(raw)
    return decimal_text(_amount(raw, name))


def _money_decimal(raw: Any, name: str) -> Decimal | None:
    """An amount as ``Decimal`` (PostgreSQL ``NUMERIC``)."""
    if raw is None:
        return None
    return _amount(raw, name)


_EPOCH = dt.datetime(1970, 1, 1)


def utc_datetime(epoch: float) -> dt.datetime:
    """Naive UTC datetime of an epoch timestamp (the ledger's time columns are naive UTC). The same value as
    ``datetime.fromtimestamp(epoch, UTC).replace(tzinfo=None)`` (both round to the microsecond half to even),
    at half the cost; out of range raises ``OverflowError`` or ``ValueError``."""
    return _EPOCH + dt.timedelta(0, epoch)


# usage_ledger's columns in the order of the value lists below (and of the shipper's INSERT).
LEDGER_COLUMNS: tuple[str, ...] = (
    "id", "request_id", "created_at", "day", "org_id", "team_id", "project_id", "key_id", "end_user_id",
    "end_user_external_id", "door", "model", "provider", "upstream_model", "streaming", "status", "http_status",
    "error_code", "input_tokens", "cached_tokens", "cache_write_tokens", "output_tokens", "reasoning_tokens",
    "cost_status", "price_table_version", "input_usd", "cached_input_usd", "cache_write_usd", "output_usd",
    "total_usd", "latency_ms", "overhead_ms", "tags",
)
COLUMN_INDEX: dict[str, int] = {name: i for i, name in enumerate(LEDGER_COLUMNS)}
_CREATED, _DAY, _STREAMING, _TAGS = (COLUMN_INDEX[n] for n in ("created_at", "day", "streaming", "tags"))
_MONEY = tuple(COLUMN_INDEX[n] for n in MONEY_COLUMNS)
_NUL = b"\\u0000"  # how orjson writes a NUL character inside a string


def _columns(entry_id: str, payload: bytes, money_as_text: bool) -> list[Any]:
    """The sanitised column values of one spooled row, in :data:`LEDGER_COLUMNS` order; ``day`` is left
    None for the caller (it depends on the form ``created_at`` takes)."""
    row = orjson.loads(payload)
    if row.__class__ is not dict:
        raise TypeError("a spooled ledger row must be a JSON object")
    cut = _text if _NUL in payload else _fit  # a NUL in any string shows in the payload as \u0000
    return _extract(entry_id, row, cut, _money_text if money_as_text else _money_decimal)


def _extract(
    entry_id: str,
    row: dict[str, Any],
    cut: Callable[[Any, int], str | None],
    money: Callable[[Any, str], Any],
) -> list[Any]:
    """:func:`_columns` of a row dict. Unrolled on purpose: it runs once per request, and the field by
    field calls are most of its cost."""
    created = utc_datetime(float(row["created_at"]))
    get = row.get
    return [
        entry_id,
        cut(get("request_id"), REQUEST_ID_LEN) or "",
        created,
        None,
        cut(get("org_id"), ID_LEN),
        cut(get("team_id"), ID_LEN),
        cut(get("project_id"), ID_LEN),
        cut(get("key_id"), ID_LEN),
        cut(get("end_user_id"), ID_LEN),
        cut(get("end_user_external_id"), NAME_LEN),
        cut(get("door"), SHORT_LEN) or "",
        cut(get("model"), NAME_LEN),
        cut(get("provider"), CODE_LEN),
        cut(get("upstream_model"), NAME_LEN),
        bool(get("streaming")),
        cut(get("status"), SHORT_LEN) or "",
        _count(get("http_status"), 999),
        cut(get("error_code"), CODE_LEN),
        _count(get("input_tokens")),
        _count(get("cached_tokens")),
        _count(get("cache_write_tokens")),
        _count(get("output_tokens")),
        _count(get("reasoning_tokens")),
        cut(get("cost_status"), SHORT_LEN),
        cut(get("price_table_version"), CODE_LEN),
        money(get("input_usd"), "input_usd"),
        money(get("cached_input_usd"), "cached_input_usd"),
        money(get("cache_write_usd"), "cache_write_usd"),
        money(get("output_usd"), "output_usd"),
        money(get("total_usd"), "total_usd"),
        _float(get("latency_ms")),
        _float(get("overhead_ms")),
        _tags(tags) if (tags := get("tags")) else {},
    ]


def db_values(entry_id: str, payload: bytes, *, money_as_text: bool) -> dict[str, Any]:
    """``usage_ledger`` column values of one spooled row, by column name, as SQLAlchemy takes them (raises
    ``orjson.JSONDecodeError``, ``TypeError``, ``ValueError``, ``KeyError`` or ``ArithmeticError`` for a
    payload that is not a ledger row)."""
    values = _columns(entry_id, payload, money_as_text)
    values[_DAY] = values[_CREATED].date()
    return dict(zip(LEDGER_COLUMNS, values, strict=True))


def _tags_json(tags: dict[str, str]) -> str:
    return orjson.dumps(tags).decode() if tags else "{}"  # as the engine's JSON serializer writes it


def sqlite_params(entry_id: str, payload: bytes) -> list[Any]:
    """The row as SQLite driver parameters, in :data:`LEDGER_COLUMNS` order — exactly what SQLAlchemy's
    column types would bind: ``created_at`` as ``YYYY-MM-DD HH:MM:SS.ffffff``, ``day`` as ``YYYY-MM-DD``,
    ``streaming`` as 0/1, amounts as decimal text, ``tags`` as JSON text. Raises like :func:`db_values`."""
    return sqlite_form(_columns(entry_id, payload, True))


def row_sqlite_params(entry_id: str, row: dict[str, Any]) -> list[Any]:
    """:func:`sqlite_params` of the row dict itself (:func:`to_row`), skipping the JSON round trip: the same
    values as ``sqlite_params(entry_id, encode_row(row))`` for every row :func:`encode_row` takes (a
    property test holds them equal). The ledger's direct writer (:mod:`.direct`) uses it."""
    return sqlite_form(_extract(entry_id, row, _clean, _money_text))


def postgresql_params(entry_id: str, payload: bytes) -> list[Any]:
    """The row for PostgreSQL, in :data:`LEDGER_COLUMNS` order, as values orjson writes exactly (the shipper
    sends a batch as one JSON text): ``created_at`` a naive datetime, ``day`` a date, amounts exact decimal
    text (cast to ``NUMERIC`` by the statement), ``tags`` a dict. Raises like :func:`db_values`."""
    return postgresql_form(_columns(entry_id, payload, True))


def sqlite_form(values: list[Any]) -> list[Any]:
    """Column values (as :func:`db_values` gives them, in column order) in their SQLite driver form, in place.
    ``day`` is taken from ``created_at`` when None."""
    created = values[_CREATED]
    if created.__class__ is dt.datetime:
        values[_CREATED] = created = created.isoformat(" ", "microseconds")
    day = values[_DAY]
    values[_DAY] = created[:10] if day is None else day.isoformat() if isinstance(day, dt.date) else day
    values[_STREAMING] = 1 if values[_STREAMING] else 0
    tags = values[_TAGS]
    if tags.__class__ is not str:
        values[_TAGS] = _tags_json(tags)
    return values


def postgresql_form(values: list[Any]) -> list[Any]:
    """Column values in their :func:`postgresql_params` form, in place (``day`` from ``created_at`` when
    None, ``Decimal`` amounts as decimal text)."""
    if values[_DAY] is None:
        values[_DAY] = values[_CREATED].date()
    for i in _MONEY:
        if values[i].__class__ is Decimal:
            values[i] = decimal_text(values[i])
    return values

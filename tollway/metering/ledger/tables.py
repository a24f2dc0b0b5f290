"""The ledger's two tables (created by migration ``0002_ledger``).

``usage_ledger`` — one immutable row per request. Its primary key ``id`` is the *entry id* the spool
assigns when the row is first written to disk; re-delivering a spooled row after a crash or a lost
acknowledgement inserts nothing (``ON CONFLICT (id) DO NOTHING``), so every request is written exactly
once. ``request_id`` is indexed but deliberately not unique: it may come from the client's
``x-request-id`` header, and a client reusing one must not make its second request vanish from the ledger.
The rows are addressable by request id all the same (:func:`tollway.metering.ledger.query.entries`).

``usage_daily`` — one rollup row per UTC day and (org, team, project, key, end user, provider, model),
maintained in the same transaction as the rows it sums and only for rows actually inserted, so it always
equals the sum of ``usage_ledger`` (re-delivery cannot double count). Absent dimensions are ``''`` (not
NULL) so the unique key — the upsert target — also covers open-mode traffic.

Money: exact. PostgreSQL ``NUMERIC`` (unconstrained: every digit is kept). SQLite has no exact decimal
type, so there the amounts are stored as decimal *text* and summed in Python (:mod:`.rollups`,
:mod:`.query`); never as a float.
"""

from __future__ import annotations

import datetime as dt
from decimal import Decimal
from typing import Any

from sqlalchemy import BigInteger, Boolean, Date, DateTime, Float, Index, Integer, Numeric, String
from sqlalchemy.orm import Mapped, mapped_column
from sqlalchemy.types import TypeEngine

from tollway.storage.models import Base, JSONType

# Exact money: NUMERIC on PostgreSQL, decimal text on SQLite.
Money: TypeEngine[Any] = Numeric(asdecimal=True).with_variant(String(64), "sqlite")

# String column widths; longer values are cut to fit before they are written (never rejected).
ID_LEN = 64
NAME_LEN = 255
REQUEST_ID_LEN = 128
SHORT_LEN = 32
CODE_LEN = 64

# The rollup dimensions, in key order (absent -> '').
ROLLUP_DIMENSIONS = ("day", "org_id", "team_id", "project_id", "key_id", "end_user_id", "provider", "model")
# Token counters shared by rows and rollups.
TOKEN_COLUMNS = ("input_tokens", "cached_tokens", "cache_write_tokens", "output_tokens", "reasoning_tokens")
MONEY_COLUMNS = ("input_usd", "cached_input_usd", "cache_write_usd", "output_usd", "total_usd")


class UsageLedgerRow(Base):
    __tablename__ = "usage_ledger"

    id: Mapped[str] = mapped_column(String(ID_LEN), primary_key=True)
    request_id: Mapped[str] = mapped_column(String(REQUEST_ID_LEN), index=True)
    created_at: Mapped[dt.datetime] = mapped_column(DateTime(), index=True)  # naive UTC
    day: Mapped[dt.date] = mapped_column(Date())  # UTC day of created_at
    org_id: Mapped[str | None] = mapped_column(String(ID_LEN))
    team_id: Mapped[str | None] = mapped_column(String(ID_LEN))
    project_id: Mapped[str | None] = mapped_column(String(ID_LEN))
    key_id: Mapped[str | None] = mapped_column(String(ID_LEN), index=True)
    end_user_id: Mapped[str | None] = mapped_column(String(ID_LEN))
    end_user_external_id: Mapped[str | None] = mapped_column(String(NAME_LEN))
    door: Mapped[str] = mapped_column(String(SHORT_LEN))
    model: Mapped[str | None] = mapped_column(String(NAME_LEN))
    provider: Mapped[str | None] = mapped_column(String(CODE_LEN))
    upstream_model: Mapped[str | None] = mapped_column(String(NAME_LEN))
    streaming: Mapped[bool] = mapped_column(Boolean())
    status: Mapped[str] = mapped_column(String(SHORT_LEN))
    http_status: Mapped[int] = mapped_column(Integer())
    error_code: Mapped[str | None] = mapped_column(String(CODE_LEN))
    input_tokens: Mapped[int] = mapped_column(BigInteger())
    cached_tokens: Mapped[int] = mapped_column(BigInteger())
    cache_write_tokens: Mapped[int] = mapped_column(BigInteger())
    output_tokens: Mapped[int] = mapped_column(BigInteger())
    reasoning_tokens: Mapped[int] = mapped_column(BigInteger())
    cost_status: Mapped[str | None] = mapped_column(String(SHORT_LEN))  # priced | unpriced | NULL (no cost)
    price_table_version: Mapped[str | None] = mapped_column(String(CODE_LEN))
    input_usd: Mapped[Decimal | None] = mapped_column(Money)
    cached_input_usd: Mapped[Decimal | None] = mapped_column(Money)
    cache_write_usd: Mapped[Decimal | None] = mapped_column(Money)
    output_usd: Mapped[Decimal | None] = mapped_column(Money)
    total_usd: Mapped[Decimal | None] = mapped_column(Money)
    latency_ms: Mapped[float] = mapped_column(Float())
    overhead_ms: Mapped[float] = mapped_column(Float())
    tags: Mapped[dict[str, str]] = mapped_column(JSONType)

    __table_args__ = (Index("ix_usage_ledger_org_id_day", "org_id", "day"),)


class UsageDailyRow(Base):
    __tablename__ = "usage_daily"

    id: Mapped[int] = mapped_column(Integer(), primary_key=True, autoincrement=True)
    day: Mapped[dt.date] = mapped_column(Date())
    org_id: Mapped[str] = mapped_column(String(ID_LEN))
    team_id: Mapped[str] = mapped_column(String(ID_LEN))
    project_id: Mapped[str] = mapped_column(String(ID_LEN))
    key_id: Mapped[str] = mapped_column(String(ID_LEN))
    end_user_id: Mapped[str] = mapped_column(String(ID_LEN))
    provider: Mapped[str] = mapped_column(String(CODE_LEN))
    model: Mapped[str] = mapped_column(String(NAME_LEN))
    requests: Mapped[int] = mapped_column(BigInteger())
    error_requests: Mapped[int] = mapped_column(BigInteger())  # status error | failed
    unpriced_requests: Mapped[int] = mapped_column(BigInteger())  # no cost known (unpriced model or error)
    input_tokens: Mapped[int] = mapped_column(BigInteger())
    cached_tokens: Mapped[int] = mapped_column(BigInteger())
    cache_write_tokens: Mapped[int] = mapped_column(BigInteger())
    output_tokens: Mapped[int] = mapped_column(BigInteger())
    reasoning_tokens: Mapped[int] = mapped_column(BigInteger())
    cost_usd: Mapped[Decimal] = mapped_column(Money)

    __table_args__ = (Index("uq_usage_daily_key", *ROLLUP_DIMENSIONS, unique=True),)

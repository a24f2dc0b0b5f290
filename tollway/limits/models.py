"""Tables of the limits rules (created by migration ``0004_limits``).

``budget_rules`` and ``rate_limit_rules`` hold what the admin API manages; ``limits_revision`` is one
counter row every rule write bumps in the same transaction, so each gateway process polls one primary-key
read and reloads its :class:`~tollway.limits.rules.RuleBook` when it moves. The counters themselves (spent,
reserved, request windows) live in Redis or in process memory, never here.

Money is exact: ``NUMERIC`` on PostgreSQL, decimal text on SQLite.
"""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import BigInteger, DateTime, Index, Integer, Numeric, String
from sqlalchemy.orm import Mapped, mapped_column
from sqlalchemy.types import TypeEngine

from tollway.storage.models import Base

Money: TypeEngine[Any] = Numeric(asdecimal=True).with_variant(String(64), "sqlite")
REVISION_ROW_ID = 1


class BudgetRuleRow(Base):
    __tablename__ = "budget_rules"

    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    scope: Mapped[str] = mapped_column(String(16))
    scope_id: Mapped[str] = mapped_column(String(255))
    limit_usd: Mapped[Decimal] = mapped_column(Money)
    period: Mapped[str] = mapped_column(String(16))
    alert_threshold: Mapped[Decimal | None] = mapped_column(Money)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))

    __table_args__ = (Index("ix_budget_rules_scope_scope_id", "scope", "scope_id"),)


class RateLimitRuleRow(Base):
    __tablename__ = "rate_limit_rules"

    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    scope: Mapped[str] = mapped_column(String(16))
    scope_id: Mapped[str] = mapped_column(String(255))
    rpm: Mapped[int | None] = mapped_column(BigInteger)
    tpm: Mapped[int | None] = mapped_column(BigInteger)
    max_concurrent: Mapped[int | None] = mapped_column(BigInteger)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))

    __table_args__ = (Index("ix_rate_limit_rules_scope_scope_id", "scope", "scope_id"),)


class LimitsRevision(Base):
    __tablename__ = "limits_revision"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    revision: Mapped[int] = mapped_column(BigInteger)

"""ledger: usage_ledger (one immutable row per request) and usage_daily (daily rollups).

Revision ID: 0002_ledger
Revises: 0001
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0002_ledger"
down_revision: str | Sequence[str] | None = "0001"
branch_labels: str | Sequence[str] | None = ("ledger",)
depends_on: str | Sequence[str] | None = None


def _json() -> sa.types.TypeEngine[object]:
    return sa.JSON().with_variant(postgresql.JSONB(), "postgresql")


def _money() -> sa.types.TypeEngine[Any]:
    # Exact: NUMERIC on PostgreSQL; decimal text on SQLite (no exact decimal type there).
    return sa.Numeric(asdecimal=True).with_variant(sa.String(length=64), "sqlite")


def _counter(name: str) -> sa.Column[int]:
    return sa.Column(name, sa.BigInteger(), nullable=False)


def upgrade() -> None:
    op.create_table(
        "usage_ledger",
        sa.Column("id", sa.String(length=64), nullable=False),
        sa.Column("request_id", sa.String(length=128), nullable=False),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.Column("day", sa.Date(), nullable=False),
        sa.Column("org_id", sa.String(length=64), nullable=True),
        sa.Column("team_id", sa.String(length=64), nullable=True),
        sa.Column("project_id", sa.String(length=64), nullable=True),
        sa.Column("key_id", sa.String(length=64), nullable=True),
        sa.Column("end_user_id", sa.String(length=64), nullable=True),
        sa.Column("end_user_external_id", sa.String(length=255), nullable=True),
        sa.Column("door", sa.String(length=32), nullable=False),
        sa.Column("model", sa.String(length=255), nullable=True),
        sa.Column("provider", sa.String(length=64), nullable=True),
        sa.Column("upstream_model", sa.String(length=255), nullable=True),
        sa.Column("streaming", sa.Boolean(), nullable=False),
        sa.Column("status", sa.String(length=32), nullable=False),
        sa.Column("http_status", sa.Integer(), nullable=False),
        sa.Column("error_code", sa.String(length=64), nullable=True),
        _counter("input_tokens"),
        _counter("cached_tokens"),
        _counter("cache_write_tokens"),
        _counter("output_tokens"),
        _counter("reasoning_tokens"),
        sa.Column("cost_status", sa.String(length=32), nullable=True),
        sa.Column("price_table_version", sa.String(length=64), nullable=True),
        sa.Column("input_usd", _money(), nullable=True),
        sa.Column("cached_input_usd", _money(), nullable=True),
        sa.Column("cache_write_usd", _money(), nullable=True),
        sa.Column("output_usd", _money(), nullable=True),
        sa.Column("total_usd", _money(), nullable=True),
        sa.Column("latency_ms", sa.Float(), nullable=False),
        sa.Column("overhead_ms", sa.Float(), nullable=False),
        sa.Column("tags", _json(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_usage_ledger")),
    )
    op.create_index(op.f("ix_usage_ledger_request_id"), "usage_ledger", ["request_id"])
    op.create_index(op.f("ix_usage_ledger_created_at"), "usage_ledger", ["created_at"])
    op.create_index(op.f("ix_usage_ledger_key_id"), "usage_ledger", ["key_id"])
    op.create_index("ix_usage_ledger_org_id_day", "usage_ledger", ["org_id", "day"])

    op.create_table(
        "usage_daily",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("day", sa.Date(), nullable=False),
        sa.Column("org_id", sa.String(length=64), nullable=False),
        sa.Column("team_id", sa.String(length=64), nullable=False),
        sa.Column("project_id", sa.String(length=64), nullable=False),
        sa.Column("key_id", sa.String(length=64), nullable=False),
        sa.Column("end_user_id", sa.String(length=64), nullable=False),
        sa.Column("provider", sa.String(length=64), nullable=False),
        sa.Column("model", sa.String(length=255), nullable=False),
        _counter("requests"),
        _counter("error_requests"),
        _counter("unpriced_requests"),
        _counter("input_tokens"),
        _counter("cached_tokens"),
        _counter("cache_write_tokens"),
        _counter("output_tokens"),
        _counter("reasoning_tokens"),
        sa.Column("cost_usd", _money(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_usage_daily")),
    )
    op.create_index(
        "uq_usage_daily_key",
        "usage_daily",
        ["day", "org_id", "team_id", "project_id", "key_id", "end_user_id", "provider", "model"],
        unique=True,
    )


def downgrade() -> None:
    op.drop_index("uq_usage_daily_key", table_name="usage_daily")
    op.drop_table("usage_daily")
    op.drop_index("ix_usage_ledger_org_id_day", table_name="usage_ledger")
    op.drop_index(op.f("ix_usage_ledger_key_id"), table_name="usage_ledger")
    op.drop_index(op.f("ix_usage_ledger_created_at"), table_name="usage_ledger")
    op.drop_index(op.f("ix_usage_ledger_request_id"), table_name="usage_ledger")
    op.drop_table("usage_ledger")

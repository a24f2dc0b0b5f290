"""limits: budget_rules, rate_limit_rules and the limits_revision counter.

Revision ID: 0004_limits
Revises: 0001
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from alembic import op

revision: str = "0004_limits"
down_revision: str | Sequence[str] | None = "0001"
branch_labels: str | Sequence[str] | None = ("limits",)
depends_on: str | Sequence[str] | None = None


def _money() -> sa.types.TypeEngine[Any]:
    # Exact: NUMERIC on PostgreSQL; decimal text on SQLite (no exact decimal type there).
    return sa.Numeric(asdecimal=True).with_variant(sa.String(length=64), "sqlite")


def _ts(name: str) -> sa.Column[datetime]:
    return sa.Column(name, sa.DateTime(timezone=True), nullable=False)


def upgrade() -> None:
    op.create_table(
        "budget_rules",
        sa.Column("id", sa.String(length=32), nullable=False),
        sa.Column("scope", sa.String(length=16), nullable=False),
        sa.Column("scope_id", sa.String(length=255), nullable=False),
        sa.Column("limit_usd", _money(), nullable=False),
        sa.Column("period", sa.String(length=16), nullable=False),
        sa.Column("alert_threshold", _money(), nullable=True),
        _ts("created_at"),
        _ts("updated_at"),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_budget_rules")),
    )
    op.create_index("ix_budget_rules_scope_scope_id", "budget_rules", ["scope", "scope_id"])
    op.create_table(
        "rate_limit_rules",
        sa.Column("id", sa.String(length=32), nullable=False),
        sa.Column("scope", sa.String(length=16), nullable=False),
        sa.Column("scope_id", sa.String(length=255), nullable=False),
        sa.Column("rpm", sa.BigInteger(), nullable=True),
        sa.Column("tpm", sa.BigInteger(), nullable=True),
        sa.Column("max_concurrent", sa.BigInteger(), nullable=True),
        _ts("created_at"),
        _ts("updated_at"),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_rate_limit_rules")),
    )
    op.create_index("ix_rate_limit_rules_scope_scope_id", "rate_limit_rules", ["scope", "scope_id"])
    revision_table = op.create_table(
        "limits_revision",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("revision", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_limits_revision")),
    )
    op.bulk_insert(revision_table, [{"id": 1, "revision": 0}])


def downgrade() -> None:
    op.drop_table("limits_revision")
    op.drop_index("ix_rate_limit_rules_scope_scope_id", table_name="rate_limit_rules")
    op.drop_table("rate_limit_rules")
    op.drop_index("ix_budget_rules_scope_scope_id", table_name="budget_rules")
    op.drop_table("budget_rules")

"""Join the ledger, tenancy and limits branches into one head.

Revision ID: 0005
Revises: 0002_ledger, 0003_tenancy, 0004_limits
"""

from __future__ import annotations

from collections.abc import Sequence

revision: str = "0005"
down_revision: str | Sequence[str] | None = ("0002_ledger", "0003_tenancy", "0004_limits")
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    """Nothing to change: the three branches touch disjoint tables."""


def downgrade() -> None:
    """Nothing to change."""

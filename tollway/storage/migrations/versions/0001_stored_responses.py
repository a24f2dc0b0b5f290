"""stored_responses: responses kept for previous_response_id and GET/DELETE /v1/responses/{id}.

Revision ID: 0001
Revises:
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0001"
down_revision: str | Sequence[str] | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def _json() -> sa.types.TypeEngine[object]:
    return sa.JSON().with_variant(postgresql.JSONB(), "postgresql")


def upgrade() -> None:
    op.create_table(
        "stored_responses",
        sa.Column("id", sa.String(length=128), nullable=False),
        sa.Column("created_at", sa.BigInteger(), nullable=False),
        sa.Column("model", sa.String(length=255), nullable=False),
        sa.Column("status", sa.String(length=32), nullable=False),
        sa.Column("previous_response_id", sa.String(length=128), nullable=True),
        sa.Column("input_items", _json(), nullable=False),
        sa.Column("output_items", _json(), nullable=False),
        sa.Column("resource", _json(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_stored_responses")),
    )
    op.create_index(op.f("ix_stored_responses_created_at"), "stored_responses", ["created_at"])
    op.create_index(op.f("ix_stored_responses_previous_response_id"), "stored_responses", ["previous_response_id"])


def downgrade() -> None:
    op.drop_index(op.f("ix_stored_responses_previous_response_id"), table_name="stored_responses")
    op.drop_index(op.f("ix_stored_responses_created_at"), table_name="stored_responses")
    op.drop_table("stored_responses")

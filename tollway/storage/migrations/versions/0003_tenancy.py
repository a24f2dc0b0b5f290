"""tenancy: organizations, teams, projects, end users, API keys, provider credentials, price overrides and the
tenancy revision counter.

Revision ID: 0003_tenancy
Revises: 0001
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0003_tenancy"
down_revision: str | Sequence[str] | None = "0001"
branch_labels: str | Sequence[str] | None = ("tenancy",)
depends_on: str | Sequence[str] | None = None


def _json() -> sa.types.TypeEngine[object]:
    return sa.JSON().with_variant(postgresql.JSONB(), "postgresql")


def _ts(name: str, nullable: bool = False) -> sa.Column[datetime]:
    return sa.Column(name, sa.DateTime(timezone=True), nullable=nullable)


def _fk(table: str, column: str, target: str) -> sa.ForeignKeyConstraint:
    return sa.ForeignKeyConstraint([column], [f"{target}.id"], name=op.f(f"fk_{table}_{column}_{target}"))


def upgrade() -> None:
    op.create_table(
        "organizations",
        sa.Column("id", sa.String(length=32), nullable=False),
        sa.Column("slug", sa.String(length=64), nullable=False),
        sa.Column("name", sa.String(length=255), nullable=False),
        _ts("created_at"),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_organizations")),
        sa.UniqueConstraint("slug", name=op.f("uq_organizations_slug")),
    )
    op.create_table(
        "teams",
        sa.Column("id", sa.String(length=32), nullable=False),
        sa.Column("org_id", sa.String(length=32), nullable=False),
        sa.Column("slug", sa.String(length=64), nullable=False),
        sa.Column("name", sa.String(length=255), nullable=False),
        _ts("created_at"),
        _fk("teams", "org_id", "organizations"),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_teams")),
        sa.UniqueConstraint("org_id", "slug", name=op.f("uq_teams_org_id_slug")),
    )
    op.create_index(op.f("ix_teams_org_id"), "teams", ["org_id"])
    op.create_table(
        "projects",
        sa.Column("id", sa.String(length=32), nullable=False),
        sa.Column("org_id", sa.String(length=32), nullable=False),
        sa.Column("team_id", sa.String(length=32), nullable=True),
        sa.Column("slug", sa.String(length=64), nullable=False),
        sa.Column("name", sa.String(length=255), nullable=False),
        _ts("created_at"),
        _fk("projects", "org_id", "organizations"),
        _fk("projects", "team_id", "teams"),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_projects")),
        sa.UniqueConstraint("org_id", "slug", name=op.f("uq_projects_org_id_slug")),
    )
    op.create_index(op.f("ix_projects_org_id"), "projects", ["org_id"])
    op.create_index(op.f("ix_projects_team_id"), "projects", ["team_id"])
    op.create_table(
        "end_users",
        sa.Column("id", sa.String(length=32), nullable=False),
        sa.Column("org_id", sa.String(length=32), nullable=False),
        sa.Column("external_id", sa.String(length=256), nullable=False),
        sa.Column("name", sa.String(length=255), nullable=True),
        sa.Column("email", sa.String(length=320), nullable=True),
        sa.Column("blocked", sa.Boolean(), nullable=False),
        sa.Column("metadata", _json(), nullable=False),
        _ts("created_at"),
        _fk("end_users", "org_id", "organizations"),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_end_users")),
        sa.UniqueConstraint("org_id", "external_id", name=op.f("uq_end_users_org_id_external_id")),
    )
    op.create_index(op.f("ix_end_users_org_id"), "end_users", ["org_id"])
    op.create_table(
        "api_keys",
        sa.Column("id", sa.String(length=32), nullable=False),
        sa.Column("name", sa.String(length=255), nullable=False),
        sa.Column("environment", sa.String(length=8), nullable=False),
        sa.Column("key_hash", sa.String(length=64), nullable=False),
        sa.Column("last4", sa.String(length=4), nullable=False),
        sa.Column("org_id", sa.String(length=32), nullable=False),
        sa.Column("team_id", sa.String(length=32), nullable=True),
        sa.Column("project_id", sa.String(length=32), nullable=True),
        sa.Column("end_user_id", sa.String(length=32), nullable=True),
        sa.Column("scopes", _json(), nullable=False),
        sa.Column("allowed_models", _json(), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        _ts("expires_at", nullable=True),
        _ts("created_at"),
        _ts("last_used_at", nullable=True),
        _ts("revoked_at", nullable=True),
        sa.Column("rotated_from", sa.String(length=32), nullable=True),
        _fk("api_keys", "org_id", "organizations"),
        _fk("api_keys", "team_id", "teams"),
        _fk("api_keys", "project_id", "projects"),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_api_keys")),
    )
    op.create_index(op.f("ix_api_keys_org_id"), "api_keys", ["org_id"])
    op.create_index(op.f("ix_api_keys_team_id"), "api_keys", ["team_id"])
    op.create_index(op.f("ix_api_keys_project_id"), "api_keys", ["project_id"])
    op.create_index(op.f("ix_api_keys_end_user_id"), "api_keys", ["end_user_id"])
    op.create_table(
        "provider_credentials",
        sa.Column("id", sa.String(length=32), nullable=False),
        sa.Column("org_id", sa.String(length=32), nullable=False),
        sa.Column("project_id", sa.String(length=32), nullable=True),
        sa.Column("owner_id", sa.String(length=32), nullable=False),
        sa.Column("provider", sa.String(length=64), nullable=False),
        sa.Column("ciphertext", sa.LargeBinary(), nullable=False),
        sa.Column("wrapped_key", sa.LargeBinary(), nullable=False),
        sa.Column("kid", sa.String(length=32), nullable=False),
        sa.Column("last4", sa.String(length=4), nullable=False),
        _ts("created_at"),
        _ts("updated_at"),
        _fk("provider_credentials", "org_id", "organizations"),
        _fk("provider_credentials", "project_id", "projects"),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_provider_credentials")),
        sa.UniqueConstraint("owner_id", "provider", name=op.f("uq_provider_credentials_owner_id_provider")),
    )
    op.create_index(op.f("ix_provider_credentials_org_id"), "provider_credentials", ["org_id"])
    op.create_index(op.f("ix_provider_credentials_project_id"), "provider_credentials", ["project_id"])
    op.create_table(
        "price_overrides",
        sa.Column("key", sa.String(length=255), nullable=False),
        sa.Column("spec", _json(), nullable=False),
        _ts("updated_at"),
        sa.PrimaryKeyConstraint("key", name=op.f("pk_price_overrides")),
    )
    revision_table = op.create_table(
        "tenancy_revision",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("revision", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_tenancy_revision")),
    )
    op.bulk_insert(revision_table, [{"id": 1, "revision": 0}])


def downgrade() -> None:
    op.drop_table("tenancy_revision")
    op.drop_table("price_overrides")
    for index in ("project_id", "org_id"):
        op.drop_index(op.f(f"ix_provider_credentials_{index}"), table_name="provider_credentials")
    op.drop_table("provider_credentials")
    for index in ("end_user_id", "project_id", "team_id", "org_id"):
        op.drop_index(op.f(f"ix_api_keys_{index}"), table_name="api_keys")
    op.drop_table("api_keys")
    op.drop_index(op.f("ix_end_users_org_id"), table_name="end_users")
    op.drop_table("end_users")
    op.drop_index(op.f("ix_projects_team_id"), table_name="projects")
    op.drop_index(op.f("ix_projects_org_id"), table_name="projects")
    op.drop_table("projects")
    op.drop_index(op.f("ix_teams_org_id"), table_name="teams")
    op.drop_table("teams")
    op.drop_table("organizations")

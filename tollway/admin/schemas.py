"""Request and response bodies of the admin API (pydantic; they are also its OpenAPI schemas).

Request bodies forbid unknown fields. PATCH bodies apply only the fields sent; sending ``null`` for a
field that cannot be empty is a 400 naming it (:func:`changes`).
"""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from typing import Annotated, Any, Generic, Literal, TypeVar

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, SecretStr

from tollway.admin.store import bad_request

Slug = Annotated[str, Field(pattern=r"^[a-z0-9][a-z0-9-]{0,62}$", description="lowercase letters, digits, '-'")]
Name = Annotated[str, Field(min_length=1, max_length=255)]
Ident = Annotated[str, Field(min_length=1, max_length=32)]
ExternalId = Annotated[str, Field(min_length=1, max_length=256)]
Email = Annotated[str, Field(pattern=r"^[^@\s]+@[^@\s]+$", max_length=320)]
Scope = Literal["responses", "chat", "models", "admin", "admin:read"]
Glob = Annotated[str, Field(min_length=1, max_length=255)]
Price = Annotated[Decimal, Field(ge=0, allow_inf_nan=False)]

T = TypeVar("T")


class _Body(BaseModel):
    model_config = ConfigDict(extra="forbid")


def changes(body: BaseModel, nullable: frozenset[str] = frozenset()) -> dict[str, Any]:
    """The fields a PATCH sent; 400 for ``null`` where a value is required."""
    out = body.model_dump(exclude_unset=True)
    for name, value in out.items():
        if value is None and name not in nullable:
            raise bad_request(f"{name} cannot be null", name)
    return out


# ---- requests --------------------------------------------------------------------------------------


class OrgCreate(_Body):
    slug: Slug
    name: Name


class OrgUpdate(_Body):
    slug: Slug | None = None
    name: Name | None = None


class TeamCreate(_Body):
    org_id: Ident
    slug: Slug
    name: Name


class TeamUpdate(_Body):
    slug: Slug | None = None
    name: Name | None = None


class ProjectCreate(_Body):
    org_id: Ident | None = Field(default=None, description="Required unless team_id is given.")
    team_id: Ident | None = None
    slug: Slug
    name: Name


class ProjectUpdate(_Body):
    slug: Slug | None = None
    name: Name | None = None
    team_id: Ident | None = Field(default=None, description="Move to another team of the org (null: none).")


class EndUserCreate(_Body):
    org_id: Ident
    external_id: ExternalId
    name: Name | None = None
    email: Email | None = None
    blocked: bool = False
    metadata: dict[str, Any] = Field(default_factory=dict)


class EndUserUpdate(_Body):
    name: Name | None = None
    email: Email | None = None
    blocked: bool | None = None
    metadata: dict[str, Any] | None = None


class KeyCreate(_Body):
    name: Name
    org_id: Ident | None = None
    team_id: Ident | None = None
    project_id: Ident | None = Field(default=None, description="The key's scope: the most specific id given.")
    scopes: list[Scope] | None = Field(default=None, description="Default: responses, chat, models.")
    allowed_models: list[Glob] | None = Field(default=None, description="Model globs; empty/absent: all.")
    expires_at: AwareDatetime | None = None
    environment: Literal["live", "test"] = "live"
    end_user_id: Ident | None = Field(default=None, description="Bind the key to this end user.")
    end_user_external_id: ExternalId | None = Field(default=None, description="Bind (creating if needed).")


class KeyUpdate(_Body):
    name: Name | None = None
    scopes: list[Scope] | None = None
    allowed_models: list[Glob] | None = None
    expires_at: AwareDatetime | None = None


class CredentialSet(_Body):
    provider: Annotated[str, Field(min_length=1, max_length=64)]
    secret: SecretStr = Field(description="The provider API key; write-only, never returned.")
    org_id: Ident | None = None
    project_id: Ident | None = Field(default=None, description="Project credential (beats the org's).")


class PriceSpec(_Body):
    """USD per 1M tokens; fields left out come from the shipped table entry for the model."""

    input: Price | None = None
    output: Price | None = None
    cached_input: Price | None = None
    cache_write: Price | None = None
    reasoning: Price | None = None
    input_above_200k: Price | None = None
    output_above_200k: Price | None = None
    cached_input_above_200k: Price | None = None
    cache_write_above_200k: Price | None = None
    max_input_tokens: Annotated[int, Field(gt=0)] | None = None
    max_output_tokens: Annotated[int, Field(gt=0)] | None = None


# ---- responses -------------------------------------------------------------------------------------


class ListOf(BaseModel, Generic[T]):
    object: Literal["list"] = "list"
    data: list[T]


class Org(BaseModel):
    id: str
    slug: str
    name: str
    created_at: datetime


class Team(BaseModel):
    id: str
    org_id: str
    slug: str
    name: str
    created_at: datetime


class Project(BaseModel):
    id: str
    org_id: str
    team_id: str | None
    slug: str
    name: str
    created_at: datetime


class EndUser(BaseModel):
    id: str
    org_id: str
    external_id: str
    name: str | None
    email: str | None
    blocked: bool
    metadata: dict[str, Any]
    created_at: datetime


class Key(BaseModel):
    id: str
    name: str
    display: str = Field(description="tw_<env>_<id>_…<last 4>: recognisable, not usable")
    environment: str
    status: Literal["active", "revoked", "expired"]
    org_id: str
    team_id: str | None
    project_id: str | None
    end_user_id: str | None
    scopes: list[str]
    allowed_models: list[str]
    expires_at: datetime | None
    created_at: datetime
    last_used_at: datetime | None
    revoked_at: datetime | None
    rotated_from: str | None


class KeyWithSecret(Key):
    key: str = Field(description="The full key. Shown only in this response: store it now.")


class Credential(BaseModel):
    id: str
    org_id: str
    project_id: str | None
    scope: Literal["org", "project"]
    provider: str
    kid: str = Field(description="Id of the master key that wraps this credential's data key")
    last4: str
    created_at: datetime
    updated_at: datetime


class PriceOverride(BaseModel):
    key: str
    spec: dict[str, Any]
    updated_at: datetime | None = None
    version: str | None = None


class Pricing(BaseModel):
    version: str
    table_version: str
    source: str
    unit: str
    lookup: dict[str, Any] | None = None
    provider: str | None = None
    models: dict[str, dict[str, Any]] | None = None

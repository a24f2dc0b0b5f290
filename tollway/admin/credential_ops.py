"""BYOK provider credentials: set (create or replace), list, read, delete. Secrets are write-only: they are
sealed (:mod:`tollway.tenancy.crypto`) before they reach the database, and responses show the provider,
scope, kid, dates and the last four characters at most."""

from __future__ import annotations

import re
from collections.abc import Collection
from typing import Any

from sqlalchemy import delete, insert, select, update
from sqlalchemy.ext.asyncio import AsyncConnection

from tollway.admin.directory import CREDENTIALS, ORGS, PROJECTS, check_org
from tollway.admin.store import AdminStore, Caller, bad_request, not_found, row_dict
from tollway.core.errors import GatewayError
from tollway.tenancy.crypto import Keyring, credential_aad, seal
from tollway.tenancy.models import new_id, utcnow

CREDENTIAL_FIELDS = ("id", "org_id", "project_id", "provider", "kid", "last4", "created_at", "updated_at")
_PROVIDER = re.compile(r"^[a-z0-9][a-z0-9_.-]{0,63}$")
# Providers whose credential is more than one secret (AWS key pair): not supported as BYOK.
UNSUPPORTED = frozenset({"bedrock"})
MAX_SECRET = 8192


def credential_json(row: Any) -> dict[str, Any]:
    out = row_dict(row, CREDENTIAL_FIELDS)
    out["scope"] = "project" if row.project_id else "org"
    return out


def check_provider(provider: str, providers: Collection[str] | None) -> None:
    if not _PROVIDER.match(provider):
        raise bad_request("provider must be a provider name such as 'anthropic'", "provider")
    if provider in UNSUPPORTED:
        raise bad_request(f"BYOK credentials for {provider!r} are not supported (it needs a key pair)", "provider")
    if providers is not None and provider not in providers:
        raise bad_request(f"unknown provider {provider!r}; configured: {', '.join(sorted(providers))}", "provider")


async def _owner(conn: AsyncConnection, caller: Caller, org_id: str | None,
                 project_id: str | None) -> tuple[str, str | None]:
    if project_id is not None:
        project = (await conn.execute(select(PROJECTS.c.org_id).where(PROJECTS.c.id == project_id))).first()
        if project is None:
            raise not_found("project", project_id, "project_id")
        if org_id is not None and org_id != project.org_id:
            raise bad_request(f"project {project_id!r} is not in organization {org_id!r}", "org_id")
        check_org(caller, project.org_id, "project_id")
        return project.org_id, project_id
    if org_id is None:
        raise bad_request("a credential needs org_id or project_id", "org_id", "missing_required_parameter")
    check_org(caller, org_id)
    if (await conn.execute(select(ORGS.c.id).where(ORGS.c.id == org_id))).first() is None:
        raise not_found("organization", org_id, "org_id")
    return org_id, None


async def set_credential(store: AdminStore, caller: Caller, keyring: Keyring | None, *, provider: str, secret: str,
                         org_id: str | None = None, project_id: str | None = None,
                         providers: Collection[str] | None = None) -> dict[str, Any]:
    """Create or replace the owner's credential for ``provider`` (a fresh data key every time)."""
    if keyring is None:
        raise GatewayError(400, "BYOK credentials need TOLLWAY_MASTER_KEY to be set on this gateway",
                           type="invalid_request_error", code="master_key_required")
    check_provider(provider, providers)
    secret = secret.strip()
    if not secret or len(secret) > MAX_SECRET:
        raise bad_request(f"secret must be 1-{MAX_SECRET} characters", "secret")
    async with store.write() as conn:
        org, project = await _owner(conn, caller, org_id, project_id)
        owner = project or org
        existing = (await conn.execute(select(CREDENTIALS.c.id).where(
            CREDENTIALS.c.owner_id == owner, CREDENTIALS.c.provider == provider))).first()
        cid = existing.id if existing is not None else new_id("cred")
        sealed = seal(keyring.primary, secret, credential_aad(cid, owner, provider))
        values = {"ciphertext": sealed.ciphertext, "wrapped_key": sealed.wrapped_key, "kid": sealed.kid,
                  "last4": secret[-4:], "updated_at": utcnow()}
        if existing is not None:
            await conn.execute(update(CREDENTIALS).where(CREDENTIALS.c.id == cid).values(values))
        else:
            await conn.execute(insert(CREDENTIALS).values(id=cid, org_id=org, project_id=project, owner_id=owner,
                                                          provider=provider, created_at=values["updated_at"],
                                                          **values))
    return await get_credential(store, caller, cid)


async def get_credential(store: AdminStore, caller: Caller, cid: str) -> dict[str, Any]:
    async with store.read() as conn:
        row = (await conn.execute(select(CREDENTIALS).where(CREDENTIALS.c.id == cid))).first()
    if row is None:
        raise not_found("credential", cid)
    check_org(caller, row.org_id, None, "credential", cid)
    return credential_json(row)


async def list_credentials(store: AdminStore, caller: Caller, *, org_id: str | None = None,
                           project_id: str | None = None) -> list[dict[str, Any]]:
    query = select(CREDENTIALS).order_by(CREDENTIALS.c.created_at, CREDENTIALS.c.id)
    for column, wanted in ((CREDENTIALS.c.org_id, org_id), (CREDENTIALS.c.org_id, caller.org_id),
                           (CREDENTIALS.c.project_id, project_id)):
        if wanted is not None:
            query = query.where(column == wanted)
    async with store.read() as conn:
        return [credential_json(r) for r in await conn.execute(query)]


async def delete_credential(store: AdminStore, caller: Caller, cid: str) -> None:
    async with store.write() as conn:
        row = (await conn.execute(select(CREDENTIALS.c.org_id).where(CREDENTIALS.c.id == cid))).first()
        if row is None:
            raise not_found("credential", cid)
        check_org(caller, row.org_id, None, "credential", cid)
        await conn.execute(delete(CREDENTIALS).where(CREDENTIALS.c.id == cid))

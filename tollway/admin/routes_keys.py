"""Admin routes for virtual keys and BYOK provider credentials."""

from __future__ import annotations

from typing import Any, Literal

from fastapi import APIRouter, Response

from tollway.admin import credential_ops as c
from tollway.admin import key_ops as k
from tollway.admin import schemas as s
from tollway.admin.deps import Context, Reader, Writer
from tollway.admin.routes_tree import listing

router = APIRouter()


# ---- keys ------------------------------------------------------------------------------------------


@router.get("/keys", response_model=s.ListOf[s.Key], tags=["keys"])
async def list_keys(ctx: Context, caller: Reader, org_id: str | None = None, team_id: str | None = None,
                    project_id: str | None = None,
                    status: Literal["active", "revoked", "expired"] | None = None) -> dict[str, Any]:
    return listing(await k.list_keys(ctx.store, caller, org_id=org_id, team_id=team_id, project_id=project_id,
                                     status=status))


@router.post("/keys", response_model=s.KeyWithSecret, status_code=201, tags=["keys"],
             summary="Create a key (the secret is in this response only)")
async def create_key(body: s.KeyCreate, ctx: Context, caller: Writer) -> dict[str, Any]:
    return await k.create_key(ctx.store, caller, **body.model_dump())


@router.get("/keys/{key_id}", response_model=s.Key, tags=["keys"])
async def get_key(key_id: str, ctx: Context, caller: Reader) -> dict[str, Any]:
    return await k.get_key(ctx.store, caller, key_id)


@router.patch("/keys/{key_id}", response_model=s.Key, tags=["keys"])
async def update_key(key_id: str, body: s.KeyUpdate, ctx: Context, caller: Writer) -> dict[str, Any]:
    return await k.update_key(ctx.store, caller, key_id, s.changes(body, frozenset({"allowed_models", "expires_at"})))


@router.post("/keys/{key_id}/rotate", response_model=s.KeyWithSecret, tags=["keys"],
             summary="Replace a key: returns a new secret (once) and revokes the old key")
async def rotate_key(key_id: str, ctx: Context, caller: Writer) -> dict[str, Any]:
    return await k.rotate_key(ctx.store, caller, key_id)


@router.post("/keys/{key_id}/revoke", response_model=s.Key, tags=["keys"],
             summary="Revoke a key (every gateway process refuses it within 1 s)")
async def revoke_key(key_id: str, ctx: Context, caller: Writer) -> dict[str, Any]:
    return await k.revoke_key(ctx.store, caller, key_id)


@router.delete("/keys/{key_id}", status_code=204, tags=["keys"])
async def delete_key(key_id: str, ctx: Context, caller: Writer) -> Response:
    await k.delete_key(ctx.store, caller, key_id)
    return Response(status_code=204)


# ---- provider credentials --------------------------------------------------------------------------


@router.get("/credentials", response_model=s.ListOf[s.Credential], tags=["credentials"])
async def list_credentials(ctx: Context, caller: Reader, org_id: str | None = None,
                           project_id: str | None = None) -> dict[str, Any]:
    return listing(await c.list_credentials(ctx.store, caller, org_id=org_id, project_id=project_id))


@router.put("/credentials", response_model=s.Credential, tags=["credentials"],
            summary="Set (create or replace) an org's or project's credential for a provider")
async def set_credential(body: s.CredentialSet, ctx: Context, caller: Writer) -> dict[str, Any]:
    return await c.set_credential(ctx.store, caller, ctx.keyring, provider=body.provider,
                                  secret=body.secret.get_secret_value(), org_id=body.org_id,
                                  project_id=body.project_id, providers=ctx.providers)


@router.get("/credentials/{credential_id}", response_model=s.Credential, tags=["credentials"])
async def get_credential(credential_id: str, ctx: Context, caller: Reader) -> dict[str, Any]:
    return await c.get_credential(ctx.store, caller, credential_id)


@router.delete("/credentials/{credential_id}", status_code=204, tags=["credentials"])
async def delete_credential(credential_id: str, ctx: Context, caller: Writer) -> Response:
    await c.delete_credential(ctx.store, caller, credential_id)
    return Response(status_code=204)

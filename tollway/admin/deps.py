"""What every admin route needs: the :class:`AdminContext` (store, tenancy, prices) and the caller.

Authentication: ``Authorization: Bearer <credential>`` or ``x-api-key: <credential>``, where the credential
is ``TOLLWAY_MASTER_KEY`` (compared in constant time: sha256 of both, then :func:`hmac.compare_digest`) or
a virtual key with the ``admin`` scope (read-only routes also accept ``admin:read``). A virtual key only
sees its own organization.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Collection, Mapping
from dataclasses import dataclass
from typing import Annotated

from fastapi import Depends, Request

from tollway.admin.store import AdminStore, Caller
from tollway.core.errors import GatewayError
from tollway.metering.pricing import PriceTable
from tollway.tenancy import keys as keyfmt
from tollway.tenancy.crypto import Keyring
from tollway.tenancy.service import Tenancy


@dataclass(slots=True)
class AdminContext:
    store: AdminStore
    tenancy: Tenancy
    prices: PriceTable
    configured_prices: Mapping[str, Mapping[str, object]]
    providers: Collection[str]
    master_digest: bytes | None  # sha256 of TOLLWAY_MASTER_KEY

    @property
    def keyring(self) -> Keyring | None:
        return self.tenancy.keyring


def _unauthorized(message: str, code: str) -> GatewayError:
    return GatewayError(401, message, type="authentication_error", code=code)


def context(request: Request) -> AdminContext:
    ctx: AdminContext | None = request.app.state.admin
    if ctx is None:
        raise _unauthorized("The admin API is disabled: the gateway runs in open mode. Set TOLLWAY_MASTER_KEY "
                            "and restart.", "admin_disabled")
    return ctx


def _presented(request: Request) -> str | None:
    value = request.headers.get("authorization") or request.headers.get("x-api-key")
    if not value:
        return None
    return keyfmt.from_header(value.encode("latin-1"))


def _caller(request: Request, write: bool) -> Caller:
    ctx = context(request)
    presented = _presented(request)
    if not presented:
        raise _unauthorized("Missing admin credentials: send the master key or an admin key as "
                            "`Authorization: Bearer <key>`.", "missing_api_key")
    if keyfmt.parse(presented) is not None:
        entry = ctx.tenancy.auth.verify(presented.encode())
        scopes = entry.principal.scopes
        if "admin" not in scopes and (write or "admin:read" not in scopes):
            needed = "admin" if write else "admin or admin:read"
            raise GatewayError(403, f"This API key lacks the {needed} scope.", type="permission_error",
                               code="insufficient_scope")
        return Caller(org_id=entry.principal.org_id, can_write="admin" in scopes, key_id=entry.principal.key_id)
    digest = hashlib.sha256(presented.encode()).digest()
    expected = ctx.master_digest
    if expected is None or not hmac.compare_digest(digest, expected):
        raise _unauthorized("Invalid admin credentials.", "invalid_api_key")
    return Caller(org_id=None, can_write=True)


def reader(request: Request) -> Caller:
    return _caller(request, write=False)


def writer(request: Request) -> Caller:
    return _caller(request, write=True)


Reader = Annotated[Caller, Depends(reader)]
Writer = Annotated[Caller, Depends(writer)]
Context = Annotated[AdminContext, Depends(context)]

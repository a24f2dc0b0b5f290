"""The pipeline's extension seams. Tenancy, budgets, rate limits and the ledger plug in here; the
pipeline calls them in order and knows nothing else about them.

* :class:`CredentialSource` — bring-your-own-key: the provider settings to use for this principal.
* :class:`Guard` — admission before the upstream call (model allow-lists, budgets, rate limits) and
  settlement after it. ``admit`` may raise a GatewayError (403/402/429) and must be cheap (in-process or
  one atomic round trip); ``settle`` runs exactly once per admitted request, on every outcome.
* :class:`Recorder` — receives every :class:`ExchangeRecord`; must not block (enqueue and return).
"""

from __future__ import annotations

from typing import Protocol

from tollway.core.context import ExchangeRecord, RequestContext
from tollway.core.routing import Route
from tollway.core.types import CanonicalRequest
from tollway.providers.base import ProviderSettings


class CredentialSource(Protocol):
    def provider_settings(self, ctx: RequestContext, settings: ProviderSettings) -> ProviderSettings:
        """Return ``settings`` or a copy carrying the principal's own credentials for that provider."""
        ...


class Guard(Protocol):
    async def admit(self, ctx: RequestContext, req: CanonicalRequest, route: Route) -> bool:
        """Admit or raise; True when the request now holds something (a reservation, a slot) that
        ``settle`` must release — False skips the settlement (no task, no work) for this request."""
        ...

    async def settle(self, ctx: RequestContext, record: ExchangeRecord) -> None: ...


class Recorder(Protocol):
    def record(self, record: ExchangeRecord) -> None: ...


class Authenticator(Protocol):
    async def authenticate(self, ctx: RequestContext, authorization: bytes | None, scope: str) -> None:
        """Resolve the virtual key in ``authorization`` (``Bearer …`` or ``x-api-key`` value) into
        ``ctx.principal``; raise GatewayError 401 (missing/invalid/revoked/expired, with the reason) or 403
        (key lacks ``scope``). Must not touch the database on the hot path."""
        ...

    async def resolve_end_user(self, ctx: RequestContext) -> None:
        """Attribute the request to ``ctx.end_user_external_id`` (created on first sight), setting
        ``ctx.end_user_id``; raise 403 for a blocked end user."""
        ...

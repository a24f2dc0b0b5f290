"""Virtual-key authentication, scope and model checks, and end-user attribution on the request path.

Everything here reads the in-process snapshot (:mod:`tollway.tenancy.cache`): no database round trip.

* :class:`KeyAuthenticator` (``tollway.core.steps.Authenticator``): ``Authorization: Bearer <key>`` or
  ``x-api-key: <key>``. Missing → 401 ``missing_api_key``; malformed, unknown or wrong secret → 401
  ``invalid_api_key``; revoked → 401 ``key_revoked``; past its expiry → 401 ``key_expired``; the route's
  scope missing from the key → 403 ``insufficient_scope``. End users: the request's external id is mapped
  to an id (created on first sight, :mod:`tollway.tenancy.end_users`); a blocked one → 403
  ``end_user_blocked``; a key bound to one end user always attributes to that end user.
* :class:`ModelGuard` (``tollway.core.steps.Guard``): after model resolution, a key with allowed-model
  globs only reaches models matching one of them (the name asked for, ``<provider>/<model>`` or the
  upstream model id) → else 403 ``model_not_allowed``.
"""

from __future__ import annotations

import fnmatch
import re
import time

from tollway.core.context import ExchangeRecord, Principal, RequestContext
from tollway.core.errors import GatewayError
from tollway.core.routing import Route
from tollway.core.types import CanonicalRequest
from tollway.tenancy import keys
from tollway.tenancy.cache import TenancyCache
from tollway.tenancy.end_users import EndUserRegistry
from tollway.tenancy.snapshot import KeyEntry

_KEY_HELP = "send it as `Authorization: Bearer <key>` or `x-api-key: <key>`"
# Parsed header values (shape check + sha256 of the presented key): a pure function of the bytes, so caching
# it changes no decision — revocation, expiry and the digest comparison still run on every request.
PARSE_CACHE_SIZE = 4096


def _unauthorized(message: str, code: str) -> GatewayError:
    return GatewayError(401, message, type="authentication_error", code=code)


def _forbidden(message: str, code: str, param: str | None = None) -> GatewayError:
    return GatewayError(403, message, type="permission_error", code=code, param=param)


class KeyAuthenticator:
    def __init__(self, cache: TenancyCache, end_users: EndUserRegistry) -> None:
        self.cache = cache
        self.end_users = end_users
        self._parsed: dict[bytes, keys.ParsedKey | None] = {}

    def _parse(self, authorization: bytes) -> keys.ParsedKey | None:
        try:
            return self._parsed[authorization]
        except KeyError:
            pass
        parsed = keys.parse(keys.from_header(authorization))
        if len(self._parsed) >= PARSE_CACHE_SIZE:  # bounded: a flood of random keys cannot grow it
            self._parsed.clear()
        self._parsed[authorization] = parsed
        return parsed

    def verify(self, authorization: bytes | None) -> KeyEntry:
        """The live key entry for an ``Authorization`` / ``x-api-key`` value, or a 401 naming the reason."""
        if not authorization:
            raise _unauthorized(f"Missing API key: {_KEY_HELP}.", "missing_api_key")
        snapshot = self.cache.snapshot
        if not snapshot.loaded:
            raise GatewayError(503, "API keys are not loaded yet (the database is unreachable); retry shortly",
                               type="server_error", code="auth_unavailable", headers={"retry-after": "1"})
        parsed = self._parse(authorization)
        if parsed is None:
            raise _unauthorized("Invalid API key: not a tollway key (tw_live_… / tw_test_…).", "invalid_api_key")
        entry = snapshot.keys.get(parsed.lookup_id)
        if not keys.matches(keys.DUMMY_DIGEST if entry is None else entry.digest, parsed.digest) or entry is None:
            raise _unauthorized("Invalid API key.", "invalid_api_key")
        if entry.revoked:
            raise _unauthorized("This API key has been revoked.", "key_revoked")
        if entry.expires_at is not None and entry.expires_at <= time.time():
            raise _unauthorized("This API key has expired.", "key_expired")
        return entry

    async def authenticate(self, ctx: RequestContext, authorization: bytes | None, scope: str) -> None:
        entry = self.verify(authorization)
        principal = entry.principal
        if scope not in principal.scopes:
            raise _forbidden(f"This API key lacks the {scope!r} scope.", "insufficient_scope")
        ctx.principal = principal
        self.cache.touch(principal.key_id)

    async def resolve_end_user(self, ctx: RequestContext) -> None:
        principal = ctx.principal
        if principal is None:
            return
        if principal.end_user_id is not None:
            eid: str | None = principal.end_user_id
            ctx.end_user_external_id = principal.end_user_external_id
        elif ctx.end_user_external_id:
            eid = self.end_users.resolve(principal.org_id, ctx.end_user_external_id)
        else:
            return
        if eid in self.cache.snapshot.blocked_end_users:
            raise _forbidden("This end user is blocked.", "end_user_blocked", "user")
        ctx.end_user_id = eid


class ModelGuard:
    """403 ``model_not_allowed`` for a model outside the key's allowed-model globs."""

    _MAX_PATTERNS = 4096

    def __init__(self) -> None:
        self._compiled: dict[tuple[str, ...], re.Pattern[str]] = {}

    def _pattern(self, globs: tuple[str, ...]) -> re.Pattern[str]:
        pattern = self._compiled.get(globs)
        if pattern is None:
            if len(self._compiled) >= self._MAX_PATTERNS:
                self._compiled.clear()
            pattern = re.compile("|".join(f"(?:{fnmatch.translate(g)})" for g in globs))
            self._compiled[globs] = pattern
        return pattern

    def allows(self, principal: Principal | None, requested: str, route: Route) -> bool:
        """Whether the key may use ``requested`` (resolved to ``route``): its globs are matched against the
        name asked for, ``<provider>/<model>`` and the upstream model id; no globs allow every model."""
        if principal is None or not principal.allowed_models:
            return True
        match = self._pattern(principal.allowed_models).match
        return bool(match(requested) or match(f"{route.provider.name}/{route.model}") or match(route.model))

    async def admit(self, ctx: RequestContext, req: CanonicalRequest, route: Route) -> bool:
        if self.allows(ctx.principal, req.model, route):
            return False  # nothing held: no settlement
        qualified = f"{route.provider.name}/{route.model}"
        raise _forbidden(f"This API key may not use model {req.model!r} ({qualified}).", "model_not_allowed",
                         "model")

    async def settle(self, ctx: RequestContext, record: ExchangeRecord) -> None:
        return None

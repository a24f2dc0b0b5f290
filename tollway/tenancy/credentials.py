"""BYOK on the request path (``tollway.core.steps.CredentialSource``).

A request whose key sits in a project with its own credential for the resolved provider calls that
provider with it; else its org's credential for the provider; else the gateway's configured one. Secrets
are decrypted when a snapshot is installed (never per request) and held in this process's memory only;
the provider settings handed to the pipeline are a copy with ``api_key`` replaced.

A credential that cannot be decrypted (its master key is not configured here) makes requests that would
use it fail with 503 ``credential_unavailable`` — never a silent fallback to the gateway's own key, which
would bill the wrong account. Messages and logs name the credential id and provider, never the secret.

A provider offered only through BYOK is configured without an ``api_key`` (``providers: {anthropic: {}}``).
"""

from __future__ import annotations

import dataclasses
import logging

from tollway.core.context import RequestContext
from tollway.core.errors import GatewayError
from tollway.providers.base import ProviderSettings
from tollway.tenancy.crypto import CredentialCryptoError, Keyring, Sealed, credential_aad, open_sealed
from tollway.tenancy.snapshot import SealedCredential, Snapshot

log = logging.getLogger("tollway.tenancy")


@dataclasses.dataclass(slots=True, frozen=True)
class _Secret:
    credential_id: str
    value: str | None  # None: not decryptable in this process


class TenantCredentials:
    def __init__(self, keyring: Keyring | None) -> None:
        self._keyring = keyring
        self._secrets: dict[tuple[str, str], _Secret] = {}  # (owner id, provider) -> secret
        self._decrypted: dict[tuple[str, str, bytes], str | None] = {}  # (id, kid, wrapped) -> plaintext

    def __len__(self) -> int:
        return len(self._secrets)

    def on_snapshot(self, snapshot: Snapshot) -> None:
        """Decrypt what changed (unchanged rows reuse their plaintext) and swap the map in."""
        secrets: dict[tuple[str, str], _Secret] = {}
        decrypted: dict[tuple[str, str, bytes], str | None] = {}
        for cred in snapshot.credentials:
            cache_key = (cred.id, cred.kid, cred.wrapped_key + cred.ciphertext)
            value = self._decrypted[cache_key] if cache_key in self._decrypted else self._open(cred)
            decrypted[cache_key] = value
            secrets[(cred.owner_id, cred.provider)] = _Secret(cred.id, value)
        self._secrets = secrets
        self._decrypted = decrypted

    def _open(self, cred: SealedCredential) -> str | None:
        if self._keyring is None:
            log.error("BYOK credential cannot be used: TOLLWAY_MASTER_KEY is not set",
                      extra={"event": "tenancy.credential_unavailable", "credential_id": cred.id,
                             "provider": cred.provider})
            return None
        try:
            return open_sealed(self._keyring, Sealed(cred.ciphertext, cred.wrapped_key, cred.kid),
                               credential_aad(cred.id, cred.owner_id, cred.provider))
        except (CredentialCryptoError, UnicodeDecodeError) as exc:
            log.error("BYOK credential cannot be decrypted", extra={
                "event": "tenancy.credential_unavailable", "credential_id": cred.id, "provider": cred.provider,
                "kid": cred.kid, "error": str(exc)})
            return None

    def provider_settings(self, ctx: RequestContext, settings: ProviderSettings) -> ProviderSettings:
        principal = ctx.principal
        if principal is None or not self._secrets:
            return settings
        provider = settings.name
        secret = None
        if principal.project_id is not None:
            secret = self._secrets.get((principal.project_id, provider))
        if secret is None:
            secret = self._secrets.get((principal.org_id, provider))
        if secret is None:
            return settings
        if secret.value is None:
            raise GatewayError(503, f"the {provider} credential of this tenant ({secret.credential_id}) cannot be "
                               "decrypted by this gateway (master key not configured); see the gateway logs",
                               type="server_error", code="credential_unavailable")
        return dataclasses.replace(settings, api_key=secret.value,
                                   api_key_source=f"BYOK credential {secret.credential_id}")

"""BYOK secrets at rest: AES-256-GCM envelope encryption.

* Each credential gets its own random 256-bit *data key*; the secret is encrypted with it
  (``ciphertext = nonce ‖ AES-GCM(data key, secret, aad)``, a fresh 96-bit nonce per encryption, so two
  encryptions of one secret never look alike).
* The data key is *wrapped* (encrypted) with the key-encryption key (KEK):
  ``wrapped_key = nonce ‖ AES-GCM(KEK, data key, aad)``.
* The KEK is derived from ``TOLLWAY_MASTER_KEY`` with HKDF-SHA256; a second HKDF output names it: the
  *kid* stored with every row, so a process knows which master key wrapped it, and rotation can re-wrap
  row by row.
* Associated data binds each ciphertext to its credential (id, owner, provider) and each wrapped key to
  its credential and kid: a ciphertext or wrapped key copied to another row does not decrypt.

The database only ever holds ciphertext, wrapped keys, kids and the last four characters of the secret.

:func:`rotate_master_key` re-wraps every data key from the old master key to the new one in one
transaction (the ciphertexts stay as they are) and bumps the tenancy revision, so running gateways
reload. Running gateways decrypt with every key of their :class:`Keyring` (``TOLLWAY_MASTER_KEY`` and
optionally ``TOLLWAY_MASTER_KEY_PREVIOUS``), which lets a rotation happen without downtime.
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from dataclasses import dataclass
from typing import cast

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF
from sqlalchemy import Table, select, update
from sqlalchemy.ext.asyncio import AsyncEngine

from tollway.tenancy.models import ProviderCredential, utcnow
from tollway.tenancy.revision import bump_revision

_SALT = b"tollway/byok/v1"
_KEK_INFO = b"tollway byok key-encryption key"
_KID_INFO = b"tollway byok key id"
_NONCE = 12
MIN_MASTER_KEY_LENGTH = 16


class CredentialCryptoError(ValueError):
    """A credential cannot be decrypted (wrong or unknown master key, or tampered data)."""


def _hkdf(secret: bytes, info: bytes, length: int) -> bytes:
    return HKDF(algorithm=hashes.SHA256(), length=length, salt=_SALT, info=info).derive(secret)


class MasterKey:
    """The KEK derived from one master key, and its kid."""

    __slots__ = ("_aead", "kid")

    def __init__(self, secret: str) -> None:
        if len(secret) < MIN_MASTER_KEY_LENGTH:
            raise ValueError(f"the master key must be at least {MIN_MASTER_KEY_LENGTH} characters")
        raw = secret.encode()
        self._aead = AESGCM(_hkdf(raw, _KEK_INFO, 32))
        self.kid = "k" + _hkdf(raw, _KID_INFO, 8).hex()

    def wrap(self, data_key: bytes, aad: bytes) -> bytes:
        nonce = os.urandom(_NONCE)
        return nonce + self._aead.encrypt(nonce, data_key, self.kid.encode() + b"\x00" + aad)

    def unwrap(self, wrapped: bytes, aad: bytes) -> bytes:
        try:
            return self._aead.decrypt(wrapped[:_NONCE], wrapped[_NONCE:], self.kid.encode() + b"\x00" + aad)
        except InvalidTag as exc:
            raise CredentialCryptoError("data key does not unwrap with this master key") from exc

    def __repr__(self) -> str:
        return f"MasterKey(kid={self.kid!r})"


class Keyring:
    """Master keys by kid: the first seals new secrets, any of them opens."""

    __slots__ = ("_by_kid", "primary")

    def __init__(self, keys: Iterable[MasterKey]) -> None:
        ordered = list(keys)
        if not ordered:
            raise ValueError("a keyring needs at least one master key")
        self.primary = ordered[0]
        self._by_kid = {key.kid: key for key in ordered}

    @classmethod
    def from_secrets(cls, primary: str, *previous: str) -> Keyring:
        return cls([MasterKey(primary), *(MasterKey(s) for s in previous if s)])

    def get(self, kid: str) -> MasterKey | None:
        return self._by_kid.get(kid)


@dataclass(slots=True, frozen=True)
class Sealed:
    ciphertext: bytes
    wrapped_key: bytes
    kid: str


def credential_aad(credential_id: str, owner_id: str, provider: str) -> bytes:
    return f"{credential_id}\x00{owner_id}\x00{provider}".encode()


def seal(master: MasterKey, secret: str, aad: bytes) -> Sealed:
    """Encrypt ``secret`` under a new random data key wrapped by ``master``."""
    data_key = AESGCM.generate_key(bit_length=256)
    nonce = os.urandom(_NONCE)
    ciphertext = nonce + AESGCM(data_key).encrypt(nonce, secret.encode(), aad)
    return Sealed(ciphertext, master.wrap(data_key, aad), master.kid)


def open_sealed(keyring: Keyring, sealed: Sealed, aad: bytes) -> str:
    """Decrypt; :class:`CredentialCryptoError` when no key of ``keyring`` has ``sealed.kid`` or the data
    was tampered with."""
    master = keyring.get(sealed.kid)
    if master is None:
        raise CredentialCryptoError(f"credential is wrapped by master key {sealed.kid}, which is not configured")
    data_key = master.unwrap(sealed.wrapped_key, aad)
    try:
        plain = AESGCM(data_key).decrypt(sealed.ciphertext[:_NONCE], sealed.ciphertext[_NONCE:], aad)
    except InvalidTag as exc:
        raise CredentialCryptoError("credential ciphertext does not match its data key") from exc
    return plain.decode()


async def rotate_master_key(engine: AsyncEngine, old: str, new: str) -> int:
    """Re-wrap every data key wrapped by ``old`` with ``new`` (one transaction); returns the number of
    credentials re-wrapped. Rows already under ``new`` are left alone (the command can be re-run); a row
    under any other kid, or one that does not unwrap with ``old``, aborts the whole rotation."""
    old_key, new_key = MasterKey(old), MasterKey(new)
    t = cast(Table, ProviderCredential.__table__)
    count = 0
    async with engine.begin() as connection:
        rows = (await connection.execute(select(t.c.id, t.c.owner_id, t.c.provider, t.c.wrapped_key, t.c.kid))).all()
        for row in rows:
            if row.kid == new_key.kid:
                continue
            if row.kid != old_key.kid:
                raise CredentialCryptoError(
                    f"credential {row.id} is wrapped by master key {row.kid}, neither the old nor the new one"
                )
            aad = credential_aad(row.id, row.owner_id, row.provider)
            data_key = old_key.unwrap(row.wrapped_key, aad)
            await connection.execute(
                update(t)
                .where(t.c.id == row.id)
                .values(wrapped_key=new_key.wrap(data_key, aad), kid=new_key.kid, updated_at=utcnow())
            )
            count += 1
        await bump_revision(connection)
    return count

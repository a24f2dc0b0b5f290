from __future__ import annotations

from typing import Any

import pytest
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncEngine

from tollway.admin import credential_ops, directory
from tollway.admin.store import MASTER, AdminStore
from tollway.tenancy.crypto import (
    CredentialCryptoError,
    Keyring,
    MasterKey,
    Sealed,
    credential_aad,
    open_sealed,
    rotate_master_key,
    seal,
)
from tollway.tenancy.models import ProviderCredential, table

OLD = "old-master-key-0123456789"
NEW = "new-master-key-9876543210"
SECRET = "sk-ant-api03-very-secret-value-XYZW"
AAD = credential_aad("cred_1", "org_1", "anthropic")


def test_seal_open_roundtrip_and_fresh_ciphertexts() -> None:
    ring = Keyring.from_secrets(OLD)
    a, b = seal(ring.primary, SECRET, AAD), seal(ring.primary, SECRET, AAD)
    assert a.ciphertext != b.ciphertext and a.wrapped_key != b.wrapped_key
    assert SECRET.encode() not in a.ciphertext + a.wrapped_key
    assert open_sealed(ring, a, AAD) == SECRET == open_sealed(ring, b, AAD)
    assert a.kid == ring.primary.kid == MasterKey(OLD).kid != MasterKey(NEW).kid


def test_wrong_master_key_tamper_and_aad_binding() -> None:
    sealed = seal(MasterKey(OLD), SECRET, AAD)
    with pytest.raises(CredentialCryptoError, match="not configured"):
        open_sealed(Keyring.from_secrets(NEW), sealed, AAD)
    with pytest.raises(CredentialCryptoError):
        open_sealed(Keyring.from_secrets(OLD), sealed, credential_aad("cred_2", "org_1", "anthropic"))
    flipped = bytearray(sealed.ciphertext)
    flipped[-1] ^= 1
    with pytest.raises(CredentialCryptoError):
        open_sealed(Keyring.from_secrets(OLD), Sealed(bytes(flipped), sealed.wrapped_key, sealed.kid), AAD)


def test_keyring_with_previous_key_opens_both() -> None:
    ring = Keyring.from_secrets(NEW, OLD)
    assert ring.primary.kid == MasterKey(NEW).kid
    assert open_sealed(ring, seal(MasterKey(OLD), SECRET, AAD), AAD) == SECRET


def test_master_key_minimum_length_and_repr() -> None:
    with pytest.raises(ValueError):
        MasterKey("short")
    assert OLD not in repr(MasterKey(OLD))


async def _credential(store: AdminStore, secret: str, provider: str = "anthropic") -> dict[str, object]:
    org = await directory.create_org(store, MASTER, f"org-{provider}", "Org")
    return await credential_ops.set_credential(store, MASTER, Keyring.from_secrets(OLD), provider=provider,
                                               secret=secret, org_id=str(org["id"]))


async def _rows(engine: AsyncEngine) -> list[Any]:
    async with engine.connect() as conn:
        return list((await conn.execute(select(table(ProviderCredential)))).all())


async def test_encryption_at_rest(engine: AsyncEngine, store: AdminStore) -> None:
    await _credential(store, SECRET, "anthropic")
    await _credential(store, SECRET, "openai")
    rows = await _rows(engine)
    assert len(rows) == 2
    for row in rows:
        for value in row:  # no column of any row holds the secret, as bytes or as text
            raw = value if isinstance(value, bytes) else str(value).encode()
            assert SECRET.encode() not in raw
            assert SECRET[:-4].encode() not in raw
    a, b = rows
    assert a.ciphertext != b.ciphertext and a.wrapped_key != b.wrapped_key
    ring = Keyring.from_secrets(OLD)
    for row in rows:
        sealed = Sealed(row.ciphertext, row.wrapped_key, row.kid)
        aad = credential_aad(row.id, row.owner_id, row.provider)
        assert open_sealed(ring, sealed, aad) == SECRET


async def test_rotate_master_key(engine: AsyncEngine, store: AdminStore) -> None:
    await _credential(store, SECRET, "anthropic")
    before = (await _rows(engine))[0]
    assert await rotate_master_key(engine, OLD, NEW) == 1
    after = (await _rows(engine))[0]
    assert after.kid == MasterKey(NEW).kid
    assert after.ciphertext == before.ciphertext  # only the data key is re-wrapped
    assert after.wrapped_key != before.wrapped_key
    sealed = Sealed(after.ciphertext, after.wrapped_key, after.kid)
    aad = credential_aad(after.id, after.owner_id, after.provider)
    assert open_sealed(Keyring.from_secrets(NEW), sealed, aad) == SECRET
    with pytest.raises(CredentialCryptoError):
        open_sealed(Keyring.from_secrets(OLD), sealed, aad)
    assert await rotate_master_key(engine, OLD, NEW) == 0  # re-running is harmless
    with pytest.raises(CredentialCryptoError):  # a key that wrapped nothing here: the rotation is refused
        await rotate_master_key(engine, "a-third-master-key-000", "a-fourth-master-key-00")

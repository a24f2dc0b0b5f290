"""Virtual API keys: ``tw_live_<lookup id>_<secret>`` (``tw_test_`` for test keys).

The lookup id (12 base62 characters) is the key's database id and finds its row; the secret (32 base62
characters, ~190 bits) is never stored: the database holds the sha256 of the *whole* key, and a presented
key is accepted when its sha256 equals the stored digest (compared with :func:`hmac.compare_digest`). The
plain key exists only in the response that created it.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import string
from dataclasses import dataclass

ALPHABET = string.ascii_letters + string.digits
LOOKUP_LENGTH = 12
SECRET_LENGTH = 32
ENVIRONMENTS = ("live", "test")
SCOPES = ("responses", "chat", "models", "admin", "admin:read")  # admin implies admin:read
DEFAULT_SCOPES = ("responses", "chat", "models")
_PREFIXES = {f"tw_{env}_": env for env in ENVIRONMENTS}
_ALLOWED = frozenset(ALPHABET)
# sha256 of nothing in particular: compared against when the lookup id is unknown, so an unknown id and a
# wrong secret take the same time.
DUMMY_DIGEST = hashlib.sha256(b"tollway: no such key").digest()


@dataclass(slots=True, frozen=True)
class NewKey:
    """A freshly generated key: ``plain`` is shown once; ``digest_hex`` and ``last4`` are stored."""

    lookup_id: str
    environment: str
    plain: str
    digest_hex: str
    last4: str


@dataclass(slots=True, frozen=True)
class ParsedKey:
    lookup_id: str
    environment: str
    digest: bytes  # sha256 of the whole presented key


def _random(length: int) -> str:
    return "".join(secrets.choice(ALPHABET) for _ in range(length))


def generate(environment: str = "live") -> NewKey:
    if environment not in ENVIRONMENTS:
        raise ValueError(f"environment must be one of {', '.join(ENVIRONMENTS)}")
    lookup, secret = _random(LOOKUP_LENGTH), _random(SECRET_LENGTH)
    plain = f"tw_{environment}_{lookup}_{secret}"
    return NewKey(lookup, environment, plain, hashlib.sha256(plain.encode()).hexdigest(), secret[-4:])


def parse(presented: str) -> ParsedKey | None:
    """Split a presented key into lookup id and digest; None when it is not shaped like a tollway key."""
    environment = _PREFIXES.get(presented[:8])
    if environment is None:
        return None
    lookup, sep, secret = presented[8:].partition("_")
    if (
        not sep
        or len(lookup) != LOOKUP_LENGTH
        or len(secret) != SECRET_LENGTH
        or not _ALLOWED.issuperset(lookup)
        or not _ALLOWED.issuperset(secret)
    ):
        return None
    return ParsedKey(lookup, environment, hashlib.sha256(presented.encode()).digest())


def matches(stored_digest: bytes, presented_digest: bytes) -> bool:
    """Constant-time comparison of two sha256 digests."""
    return hmac.compare_digest(stored_digest, presented_digest)


def from_header(value: bytes) -> str:
    """The key in an ``Authorization: Bearer …`` or ``x-api-key: …`` value."""
    text = value.decode("latin-1").strip()
    if text[:7].lower() == "bearer ":
        return text[7:].strip()
    return text


def display(lookup_id: str, environment: str, last4: str) -> str:
    """How a key is shown after creation (enough to recognise it, useless to call with)."""
    return f"tw_{environment}_{lookup_id}_…{last4}"

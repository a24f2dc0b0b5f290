"""Envelope for provider-native opaque reasoning state carried in ``reasoning.encrypted_content``.

A reasoning item produced by provider P carries ``tw1.P.<base64url(json)>``. When the item comes back
as input, the adapter for P unwraps it; any other adapter sees a foreign state, drops it and reports
it in ``tollway.fidelity.dropped``. A bare value without the ``tw1.`` prefix is taken to be OpenAI's own
``encrypted_content`` (what a client got from OpenAI directly).
"""

from __future__ import annotations

import base64
from typing import Any

import orjson

_PREFIX = "tw1."


def wrap(provider: str, state: dict[str, Any]) -> str:
    payload = base64.urlsafe_b64encode(orjson.dumps(state)).decode().rstrip("=")
    return f"{_PREFIX}{provider}.{payload}"


def unwrap(value: str) -> tuple[str, dict[str, Any]] | None:
    """Return ``(provider, state)``; ``("openai", {"encrypted_content": value})`` for a bare value;
    ``None`` when the envelope is corrupt."""
    if not value.startswith(_PREFIX):
        return "openai", {"encrypted_content": value}
    try:
        _, provider, payload = value.split(".", 2)
        raw = base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4))
        state = orjson.loads(raw)
    except (ValueError, orjson.JSONDecodeError):
        return None
    if not isinstance(state, dict):
        return None
    return provider, state

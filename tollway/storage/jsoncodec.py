"""The JSON codec of tollway's database engines (orjson, with pre-encoded pass-through).

Values headed for a JSON column are usually encoded once, up front, when a write is queued
(:class:`EncodedJSON`): that snapshots the caller's dicts (later mutation cannot leak into what is
stored), gives an exact byte size for the write queue's memory bound, and surfaces an unserialisable
value to the caller instead of to the background writer. The engine's serializer passes such values
through untouched and encodes anything else with orjson.

``Decimal`` values are written as JSON strings (exact, never a float); they read back as ``str``.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal
from typing import Any

import orjson


@dataclass(slots=True, frozen=True)
class EncodedJSON:
    """A JSON document already encoded to text."""

    text: str


def _default(value: Any) -> Any:
    if isinstance(value, Decimal):
        return str(value)
    raise TypeError(f"type {type(value).__name__} is not JSON serializable")


def encode(value: Any) -> EncodedJSON:
    """Encode ``value`` now; raises ``TypeError`` if it is not JSON-serialisable."""
    return EncodedJSON(orjson.dumps(value, default=_default).decode())


def dumps(value: Any) -> str:
    """The engine's ``json_serializer``."""
    if isinstance(value, EncodedJSON):
        return value.text
    return orjson.dumps(value, default=_default).decode()


def loads(text: str | bytes) -> Any:
    """The engine's ``json_deserializer``."""
    return orjson.loads(text)

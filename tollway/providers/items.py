"""Reading canonical input items, shared by the adapters that rebuild them in another wire format."""

from __future__ import annotations

from typing import Any

import orjson

from tollway.core import reasoning_state
from tollway.core.errors import invalid
from tollway.core.types import JSON, Fidelity, Item

TEXT_PARTS = frozenset({"input_text", "output_text", "text"})


def call_arguments(item: Item, param: str) -> JSON:
    """A function_call item's ``arguments`` string as an object (``{}`` when empty); 400 naming
    ``<param>.arguments`` when it is not a JSON object."""
    raw = item.get("arguments")
    if raw is None or raw == "":
        return {}
    try:
        args = orjson.loads(raw)
    except (orjson.JSONDecodeError, TypeError):
        raise invalid("Function call arguments must be a JSON object.", f"{param}.arguments") from None
    if not isinstance(args, dict):
        raise invalid("Function call arguments must be a JSON object.", f"{param}.arguments")
    return args


def system_text(content: Any, param: str, fidelity: Fidelity) -> str:
    """The text of a system/developer message; non-text parts are reported dropped."""
    if isinstance(content, str):
        return content
    texts: list[str] = []
    for j, part in enumerate(content if isinstance(content, list) else ()):
        if isinstance(part, dict) and part.get("type") in TEXT_PARTS:
            texts.append(part.get("text") or "")
        else:
            fidelity.dropped.append(f"{param}[{j}]")
    return "".join(texts)


def own_reasoning_state(item: Item, param: str, provider: str, fidelity: Fidelity) -> JSON | None:
    """The opaque state of a reasoning item when ``provider`` produced it; otherwise None, with the item
    reported dropped (no state, a corrupt envelope, or state from another provider — never sent garbled)."""
    encrypted = item.get("encrypted_content")
    if not isinstance(encrypted, str) or not encrypted:
        fidelity.dropped.append(f"{param}.reasoning (no provider state)")
        return None
    unwrapped = reasoning_state.unwrap(encrypted)
    if unwrapped is None:
        fidelity.dropped.append(f"{param}.reasoning (corrupt state)")
        return None
    origin, state = unwrapped
    if origin != provider:
        fidelity.dropped.append(f"{param}.reasoning (state from {origin})")
        return None
    return state

"""Reading canonical input items, shared by the adapters that rebuild them in another wire format."""

from __future__ import annotations

from typing import Any

import orjson

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

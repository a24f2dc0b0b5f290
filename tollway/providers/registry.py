"""The one place adapters are registered: adding a provider is one module plus one line here."""

from __future__ import annotations

from tollway.providers.anthropic import AnthropicAdapter
from tollway.providers.base import Adapter
from tollway.providers.openai_chat import OpenAIChatAdapter
from tollway.providers.openai_responses import OpenAIResponsesAdapter

ADAPTERS: dict[str, type[Adapter]] = {
    "openai_responses": OpenAIResponsesAdapter,
    "openai_chat": OpenAIChatAdapter,
    "anthropic": AnthropicAdapter,
}


def adapter_for(kind: str) -> Adapter:
    try:
        return ADAPTERS[kind]()
    except KeyError:
        raise ValueError(f"unknown adapter kind {kind!r}; known: {', '.join(sorted(ADAPTERS))}") from None

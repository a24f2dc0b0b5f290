"""The one place adapters are registered: adding a provider is one module plus one line here.

Entries are ``module:Class`` strings, imported when a configured provider first needs them (at start-up,
never per request), so an unused provider costs nothing.
"""

from __future__ import annotations

import importlib

from tollway.providers.base import Adapter

ADAPTERS: dict[str, str] = {
    "openai_responses": "tollway.providers.openai_responses:OpenAIResponsesAdapter",
    "openai_chat": "tollway.providers.openai_chat:OpenAIChatAdapter",
    "anthropic": "tollway.providers.anthropic:AnthropicAdapter",
    "gemini": "tollway.providers.gemini:GeminiAdapter",
    "mistral": "tollway.providers.mistral:MistralAdapter",
    "ollama": "tollway.providers.ollama:OllamaAdapter",
    "bedrock": "tollway.providers.bedrock:BedrockAdapter",
    "huggingface": "tollway.providers.huggingface:HuggingFaceAdapter",
}


def adapter_for(kind: str) -> Adapter:
    target = ADAPTERS.get(kind)
    if target is None:
        raise ValueError(f"unknown adapter kind {kind!r}; known: {', '.join(sorted(ADAPTERS))}")
    module, _, cls = target.partition(":")
    adapter: Adapter = getattr(importlib.import_module(module), cls)()
    return adapter

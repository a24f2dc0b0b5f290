"""Model resolution: turn the client's ``model`` string into (provider, upstream model id).

Deterministic, in this order (documented in the README):

1. the alias catalog (``models:`` in config), whose targets are ``provider/model``;
2. explicit ``provider/model`` where ``provider`` is a configured (or built-in ``mock``) provider;
3. the bare built-in ``mock`` model;
4. a prefix table for well-known families: ``gpt-``/``o1``/``o3``/``o4``/``chatgpt-`` → openai;
   ``claude-`` → anthropic, or bedrock when only Bedrock is configured; ``gemini-`` → gemini;
   ``mistral-``/``codestral-``/``magistral-``/``ministral-``/``pixtral-``/``devstral-`` → mistral;
   Bedrock model ids (``amazon.``, ``anthropic.``, ``meta.``, ``mistral.``, ``cohere.``, ``ai21.``) and
   cross-region inference profiles (``us.``, ``eu.``, ``apac.``, ``global.``) → bedrock;
5. otherwise 400 ``model_not_found`` with "did you mean" suggestions.

Ollama and Hugging Face models need an explicit ``ollama/`` or ``huggingface/`` prefix (or an alias):
their names overlap every other family. The table is a tuple checked in order, so nothing depends on
dict or registration order.

A model whose provider is known but not configured is a 400 naming the env var to set. Results are
cached per model string, so resolution costs one dict lookup on the hot path.
"""

from __future__ import annotations

import difflib
from dataclasses import dataclass

from tollway.core.errors import GatewayError
from tollway.providers.base import Adapter, ProviderSettings
from tollway.settings import KNOWN_PROVIDERS

MOCK_PROVIDER = "mock"

# (prefix, provider) pairs, checked in order; longest and most specific first.
FAMILY_PREFIXES: tuple[tuple[str, str], ...] = (
    ("chatgpt-", "openai"),
    ("gpt-", "openai"),
    ("o1", "openai"),
    ("o3", "openai"),
    ("o4", "openai"),
    ("claude-", "anthropic"),
    ("gemini-", "gemini"),
    ("mistral-", "mistral"),
    ("codestral-", "mistral"),
    ("magistral-", "mistral"),
    ("ministral-", "mistral"),
    ("pixtral-", "mistral"),
    ("devstral-", "mistral"),
    ("amazon.", "bedrock"),
    ("anthropic.", "bedrock"),
    ("meta.", "bedrock"),
    ("mistral.", "bedrock"),
    ("cohere.", "bedrock"),
    ("ai21.", "bedrock"),
    ("us.", "bedrock"),
    ("eu.", "bedrock"),
    ("apac.", "bedrock"),
    ("global.", "bedrock"),
)
# When the family's own provider is not configured but this one is, route there instead.
FAMILY_FALLBACK: dict[str, str] = {"anthropic": "bedrock"}


@dataclass(slots=True, frozen=True)
class Route:
    provider: ProviderSettings
    adapter: Adapter
    model: str  # upstream model id


class ModelResolver:
    def __init__(
        self,
        providers: dict[str, ProviderSettings],
        adapters: dict[str, Adapter],
        aliases: dict[str, str],
        known_models: list[str] | None = None,
    ) -> None:
        self._providers = providers
        self._adapters = adapters
        self._aliases = aliases
        self._known = known_models or []
        self._cache: dict[str, Route] = {}

    def resolve(self, model: str) -> Route:
        route = self._cache.get(model)
        if route is None:
            route = self._resolve(model)
            if len(self._cache) < 10_000:
                self._cache[model] = route
        return route

    def _route(self, provider: str, model: str, requested: str) -> Route:
        settings = self._providers.get(provider)
        if settings is None:
            known = KNOWN_PROVIDERS.get(provider)
            setup = known.get("setup_env", known["key_env"]) if known else None
            hint = f"set {setup}" if setup else f"add providers.{provider} to the config"
            raise GatewayError(
                400,
                f"model {requested!r} resolves to provider {provider!r}, which is not configured: {hint}",
                code="provider_not_configured",
                param="model",
            )
        if not model:
            raise GatewayError(400, f"model {requested!r} names no model after the provider", param="model",
                               code="model_not_found")
        return Route(settings, self._adapters[provider], model)

    def _resolve(self, model: str) -> Route:
        target = self._aliases.get(model)
        if target is not None:
            provider, _, upstream = target.partition("/")
            return self._route(provider, upstream, model)
        head, sep, rest = model.partition("/")
        if sep and (head in self._providers or head in KNOWN_PROVIDERS or head == MOCK_PROVIDER):
            return self._route(head, rest, model)
        if model == MOCK_PROVIDER or model.startswith(MOCK_PROVIDER + "-"):
            return self._route(MOCK_PROVIDER, model, model)
        for prefix, provider in FAMILY_PREFIXES:
            if model.startswith(prefix):
                fallback = FAMILY_FALLBACK.get(provider)
                if provider not in self._providers and fallback in self._providers:
                    return self._route(fallback, model, model)
                return self._route(provider, model, model)
        raise GatewayError(
            400,
            f"unknown model {model!r}{self._suggest(model)}",
            code="model_not_found",
            param="model",
        )

    def _suggest(self, model: str) -> str:
        names = [*self._aliases, *self._known]
        if MOCK_PROVIDER in self._providers:
            names.append(MOCK_PROVIDER)
        close = difflib.get_close_matches(model, names, n=3, cutoff=0.6)
        return f"; did you mean {', '.join(repr(c) for c in close)}?" if close else ""

    def model_catalog(self) -> list[tuple[str, str]]:
        """``(id, owner)`` pairs listed by ``GET /v1/models``: aliases (owned by their provider) plus
        ``mock`` when served."""
        out = [(alias, target.partition("/")[0]) for alias, target in self._aliases.items()]
        if MOCK_PROVIDER in self._providers:
            out.append((MOCK_PROVIDER, MOCK_PROVIDER))
        return out

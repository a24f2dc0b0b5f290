from __future__ import annotations

import pytest

from tollway.core.errors import GatewayError
from tollway.core.routing import ModelResolver
from tollway.providers.base import ProviderSettings
from tollway.providers.registry import adapter_for


def resolver(*names: str, aliases: dict[str, str] | None = None) -> ModelResolver:
    providers = {n: ProviderSettings(n, "openai_chat" if n not in ("openai", "anthropic") else
                                     ("openai_responses" if n == "openai" else "anthropic"), "http://x/v1")
                 for n in names}
    adapters = {n: adapter_for(p.kind) for n, p in providers.items()}
    return ModelResolver(providers, adapters, aliases or {}, ["gpt-4o", "claude-sonnet-4-5"])


@pytest.mark.parametrize(("model", "provider", "upstream"), [
    ("gpt-4o", "openai", "gpt-4o"),
    ("o3-mini", "openai", "o3-mini"),
    ("o4-mini", "openai", "o4-mini"),
    ("chatgpt-4o-latest", "openai", "chatgpt-4o-latest"),
    ("claude-sonnet-4-5-20250929", "anthropic", "claude-sonnet-4-5-20250929"),
    ("openai/gpt-4o", "openai", "gpt-4o"),
    ("anthropic/claude-haiku-4-5", "anthropic", "claude-haiku-4-5"),
    ("local/meta-llama/Llama-3-8B", "local", "meta-llama/Llama-3-8B"),
    ("fast", "anthropic", "claude-haiku-4-5"),
    ("mock", "mock", "mock"),
])
def test_resolution_table(model: str, provider: str, upstream: str) -> None:
    r = resolver("openai", "anthropic", "local", "mock", aliases={"fast": "anthropic/claude-haiku-4-5"})
    route = r.resolve(model)
    assert (route.provider.name, route.model) == (provider, upstream)
    assert r.resolve(model) is route  # cached


def test_alias_beats_prefix() -> None:
    r = resolver("openai", "anthropic", aliases={"gpt-4o": "anthropic/claude-sonnet-4-5"})
    assert r.resolve("gpt-4o").provider.name == "anthropic"


def test_unknown_model_did_you_mean() -> None:
    r = resolver("openai", aliases={"fast": "openai/gpt-4o-mini"})
    with pytest.raises(GatewayError) as exc:
        r.resolve("gpt4o")
    assert exc.value.code == "model_not_found" and exc.value.param == "model"
    assert "'gpt-4o'" in exc.value.message
    with pytest.raises(GatewayError) as exc:
        r.resolve("llama3")
    assert "did you mean" not in exc.value.message


def test_known_provider_without_credentials_names_env_var() -> None:
    r = resolver("openai")
    with pytest.raises(GatewayError) as exc:
        r.resolve("claude-opus-4-1")
    assert exc.value.code == "provider_not_configured"
    assert "ANTHROPIC_API_KEY" in exc.value.message


def test_unknown_provider_prefix_is_not_a_route() -> None:
    r = resolver("openai")
    with pytest.raises(GatewayError) as exc:
        r.resolve("nobody/model")
    assert exc.value.code == "model_not_found"


def test_catalog_lists_aliases_and_mock() -> None:
    r = resolver("openai", "mock", aliases={"fast": "openai/gpt-4o-mini"})
    assert r.model_catalog() == [("fast", "openai"), ("mock", "mock")]


@pytest.mark.parametrize(("model", "provider"), [
    ("gemini-2.5-flash", "gemini"),
    ("mistral-large-latest", "mistral"),
    ("magistral-medium-2509", "mistral"),
    ("devstral-small", "mistral"),
    ("amazon.nova-micro-v1:0", "bedrock"),
    ("anthropic.claude-3-5-sonnet-20241022-v2:0", "bedrock"),
    ("us.anthropic.claude-sonnet-4-5-20250929-v1:0", "bedrock"),
    ("meta.llama3-70b-instruct-v1:0", "bedrock"),
    ("ollama/llama3.2", "ollama"),
    ("huggingface/meta-llama/Llama-3.1-8B-Instruct", "huggingface"),
])
def test_issue5_families(model: str, provider: str) -> None:
    names = ("openai", "anthropic", "gemini", "mistral", "bedrock", "ollama", "huggingface")
    providers = {n: ProviderSettings(n, "openai_chat", "http://x") for n in names}
    r = ModelResolver(providers, {n: adapter_for("openai_chat") for n in names}, {})
    assert r.resolve(model).provider.name == provider


def test_claude_goes_to_bedrock_when_only_bedrock_is_configured() -> None:
    providers = {"bedrock": ProviderSettings("bedrock", "openai_chat", "http://x")}
    r = ModelResolver(providers, {"bedrock": adapter_for("openai_chat")}, {})
    assert r.resolve("claude-sonnet-4-5").provider.name == "bedrock"


def test_ollama_names_need_a_prefix() -> None:
    providers = {"ollama": ProviderSettings("ollama", "openai_chat", "http://x")}
    r = ModelResolver(providers, {"ollama": adapter_for("openai_chat")}, {})
    with pytest.raises(GatewayError):
        r.resolve("llama3.2")


@pytest.mark.parametrize(("model", "needle"), [("ollama/llama3.2", "OLLAMA_BASE_URL"),
                                               ("amazon.nova-micro-v1:0", "AWS_SECRET_ACCESS_KEY"),
                                               ("gemini-2.5-pro", "GEMINI_API_KEY")])
def test_missing_provider_hint_names_the_right_variable(model: str, needle: str) -> None:
    with pytest.raises(GatewayError) as exc:
        resolver("openai").resolve(model)
    assert needle in exc.value.message

from __future__ import annotations

import yaml

from bench.systems import model_for, tollway_config_yaml


def test_models_route_like_for_like() -> None:
    assert model_for("tollway", "chat") == "openai-chat/gpt-4o-mini"
    assert model_for("tollway", "responses") == "gpt-4o-mini"
    assert model_for("litellm", "chat") == "gpt-4o-mini"
    assert model_for("bare", "responses") == "gpt-4o-mini"


def test_tollway_config_points_every_provider_at_the_upstream() -> None:
    config = yaml.safe_load(tollway_config_yaml("http://127.0.0.1:8081"))
    providers = config["providers"]
    assert set(providers) == {"openai", "anthropic", "openai-chat"}
    assert {p["base_url"] for p in providers.values()} == {"http://127.0.0.1:8081/v1"}
    assert providers["openai-chat"]["kind"] == "openai_chat"

"""PriceTable: loading, lookup normalisation, overrides, caching."""

from __future__ import annotations

from collections.abc import Mapping
from decimal import Decimal

import orjson
import pytest

from tollway.metering import pricing
from tollway.metering.pricing import ModelPrice, PriceTable

D = Decimal


@pytest.fixture(scope="module")
def table() -> PriceTable:
    return PriceTable.load()


def _synthetic(
    models: Mapping[str, Mapping[str, object]], overrides: Mapping[str, Mapping[str, object]] | None = None
) -> PriceTable:
    raw = orjson.dumps({"version": "t.1", "currency": "USD", "unit": "per_1m_tokens", "models": models})
    return PriceTable.from_json(raw, overrides)


def test_load_reads_shipped_table(table: PriceTable) -> None:
    assert table.version == "2026-11-23.1"
    assert table.table_version == "2026-11-23.1"
    assert "litellm" in table.source
    price = table.lookup("openai", "gpt-4o")
    assert price is not None
    assert (price.input, price.cached_input, price.cache_write, price.output) == (D("2.5"), D("1.25"), None, D("10"))
    assert (price.max_input_tokens, price.max_output_tokens) == (128000, 16384)


def test_anthropic_entry(table: PriceTable) -> None:
    price = table.lookup("anthropic", "claude-sonnet-4-5")
    assert price is not None
    assert (price.input, price.cached_input, price.cache_write, price.output) == (
        D("3"),
        D("0.3"),
        D("3.75"),
        D("15"),
    )


@pytest.mark.parametrize(
    ("provider", "model", "expected"),
    [
        # exact ids win over normalisation
        ("openai", "gpt-4o", "openai/gpt-4o"),
        ("openai", "gpt-4o-2024-05-13", "openai/gpt-4o-2024-05-13"),
        ("anthropic", "claude-sonnet-4-5-20250929", "anthropic/claude-sonnet-4-5-20250929"),
        # unknown dated snapshots fall back to the family
        ("openai", "gpt-4o-2099-12-31", "openai/gpt-4o"),
        ("openai", "o3-mini-2099-01-31", "openai/o3-mini"),
        ("anthropic", "claude-sonnet-4-5-20991231", "anthropic/claude-sonnet-4-5"),
        ("anthropic", "claude-opus-4-5-latest", "anthropic/claude-opus-4-5"),
        # provider prefixes in the model name
        ("openai", "openai/gpt-4o", "openai/gpt-4o"),
        ("anthropic", "anthropic/claude-sonnet-4-5", "anthropic/claude-sonnet-4-5"),
        ("anthropic", "anthropic/claude-sonnet-4-5-20250929", "anthropic/claude-sonnet-4-5-20250929"),
        ("gemini", "models/gemini-2.5-pro", "gemini/gemini-2.5-pro"),
        ("gemini", "gemini/gemini-2.5-pro", "gemini/gemini-2.5-pro"),
        ("mistral", "mistral-large-latest", "mistral/mistral-large-latest"),
        # vertex-style @ snapshots
        ("anthropic", "claude-sonnet-4-5@20250929", "anthropic/claude-sonnet-4-5-20250929"),
        ("anthropic", "claude-opus-4-6@20260205", "anthropic/claude-opus-4-6-20260205"),
        ("anthropic", "claude-opus-4-5@20990101", "anthropic/claude-opus-4-5"),
        # bedrock: exact profile, unknown geography -> base id, dated-only families
        ("bedrock", "amazon.nova-micro-v1:0", "bedrock/amazon.nova-micro-v1:0"),
        ("bedrock", "us.amazon.nova-micro-v1:0", "bedrock/us.amazon.nova-micro-v1:0"),
        ("bedrock", "apac.amazon.nova-premier-v1:0", "bedrock/amazon.nova-premier-v1:0"),
        (
            "bedrock",
            "global.anthropic.claude-opus-4-1-20250805-v1:0",
            "bedrock/anthropic.claude-opus-4-1-20250805-v1:0",
        ),
        (
            "bedrock",
            "ca.anthropic.claude-sonnet-4-5-20250929-v1:0",
            "bedrock/anthropic.claude-sonnet-4-5-20250929-v1:0",
        ),
        (
            "bedrock",
            "us.anthropic.claude-sonnet-4-5-20250929-v1:0",
            "bedrock/us.anthropic.claude-sonnet-4-5-20250929-v1:0",
        ),
        ("bedrock", "anthropic.claude-opus-4-1", "bedrock/anthropic.claude-opus-4-1-20250805-v1:0"),
        ("bedrock", "us.anthropic.claude-opus-4-1", "bedrock/us.anthropic.claude-opus-4-1-20250805-v1:0"),
        ("bedrock", "apac.anthropic.claude-opus-4-1", "bedrock/anthropic.claude-opus-4-1-20250805-v1:0"),
        # two snapshots in the family: the newest date
        ("bedrock", "anthropic.claude-3-5-sonnet", "bedrock/anthropic.claude-3-5-sonnet-20241022-v2:0"),
        ("bedrock", "anthropic.claude-opus-4-6", "bedrock/anthropic.claude-opus-4-6-v1"),
        ("bedrock", "bedrock/amazon.nova-micro-v1:0", "bedrock/amazon.nova-micro-v1:0"),
        # openai fine-tunes price as their base fine-tune entry
        ("openai", "ft:gpt-4o-2024-08-06:acme::abc123", "openai/ft:gpt-4o-2024-08-06"),
    ],
)
def test_resolve(table: PriceTable, provider: str, model: str, expected: str) -> None:
    assert table.resolve(provider, model) == expected
    price = table.lookup(provider, model)
    assert price is not None


def test_snapshot_fallback_uses_family_prices(table: PriceTable) -> None:
    family = table.lookup("openai", "gpt-4o")
    assert table.lookup("openai", "gpt-4o-2099-12-31") is family
    # an exact dated entry keeps its own (different) price
    old = table.lookup("openai", "gpt-4o-2024-05-13")
    assert old is not None and old.input == D("5") and old.output == D("15")


@pytest.mark.parametrize(
    ("provider", "model"),
    [
        ("openai", "gpt-does-not-exist"),
        ("anthropic", "gpt-4o"),  # providers never share entries
        ("nope", "gpt-4o"),
        ("ollama", "llama3"),  # ollama is never shipped: local models are unpriced by default
        ("ollama", "ollama/llama3.1"),
        ("huggingface", "google/gemma-2-9b-it"),  # an HF org is not a provider prefix
        ("openai", ""),
        ("bedrock", "us."),
    ],
)
def test_unpriced(table: PriceTable, provider: str, model: str) -> None:
    assert table.lookup(provider, model) is None
    assert table.resolve(provider, model) is None


def test_no_ollama_prices_shipped(table: PriceTable) -> None:
    assert table.provider_models("ollama") == []


def test_provider_models(table: PriceTable) -> None:
    models = table.provider_models("anthropic")
    assert models == sorted(models)
    assert "claude-sonnet-4-5" in models and "claude-sonnet-4-5-20250929" in models
    assert all("/" not in m for m in models)
    assert "gemini-2.5-pro" in table.provider_models("gemini")
    assert "us.amazon.nova-micro-v1:0" in table.provider_models("bedrock")
    assert table.provider_models("nope") == []
    models.clear()  # a copy: callers cannot corrupt the table
    assert table.provider_models("anthropic")


def test_newest_snapshot_is_deterministic() -> None:
    models = {
        "anthropic/claude-x-20250101": {"input": "1", "output": "2"},
        "anthropic/claude-x-20250601": {"input": "3", "output": "4"},
        "anthropic/claude-x-2025-03-01": {"input": "5", "output": "6"},
        "anthropic/claude-y-20250101": {"input": "7", "output": "8"},
    }
    for ordering in (models, dict(reversed(list(models.items())))):
        t = _synthetic(ordering)
        assert t.resolve("anthropic", "claude-x") == "anthropic/claude-x-20250601"
        assert t.resolve("anthropic", "claude-x-latest") == "anthropic/claude-x-20250601"
        assert t.resolve("anthropic", "claude-x-20250101") == "anthropic/claude-x-20250101"
        assert t.resolve("anthropic", "claude-x-20991231") == "anthropic/claude-x-20250601"
        assert t.resolve("anthropic", "claude-y") == "anthropic/claude-y-20250101"
        assert t.resolve("anthropic", "claude-z") is None


def test_bedrock_family_ties_break_by_key() -> None:
    t = _synthetic(
        {
            "bedrock/anthropic.claude-q-20250101-v1:0": {"input": "1", "output": "2"},
            "bedrock/anthropic.claude-q-20250101-v2:0": {"input": "3", "output": "4"},
        }
    )
    assert t.resolve("bedrock", "anthropic.claude-q") == "bedrock/anthropic.claude-q-20250101-v2:0"
    assert t.resolve("bedrock", "eu.anthropic.claude-q") == "bedrock/anthropic.claude-q-20250101-v2:0"


def test_latest_alias_ranks_above_dated_snapshots() -> None:
    t = _synthetic(
        {
            "mistral/mistral-big-latest": {"input": "2", "output": "6"},
            "mistral/mistral-big-2024-11-18": {"input": "1", "output": "3"},
        }
    )
    assert t.resolve("mistral", "mistral-big") == "mistral/mistral-big-latest"


def test_lookup_is_cached_and_bounded(table: PriceTable, monkeypatch: pytest.MonkeyPatch) -> None:
    t = PriceTable.load()
    first = t.lookup("openai", "gpt-4o-2099-12-31")
    assert t._cache[("openai", "gpt-4o-2099-12-31")] is not None
    assert t.lookup("openai", "gpt-4o-2099-12-31") is first
    monkeypatch.setattr(pricing, "_CACHE_MAX", 50)
    for i in range(500):
        assert t.lookup("openai", f"unknown-{i}") is None
    assert len(t._cache) <= 50
    assert t.lookup("openai", "gpt-4o") == table.lookup("openai", "gpt-4o")


def test_overrides_take_precedence_and_amend_the_shipped_entry() -> None:
    t = PriceTable.load({"anthropic/claude-sonnet-4-5": {"input": "2", "output": 10}})
    price = t.lookup("anthropic", "claude-sonnet-4-5")
    assert price is not None
    # given fields replace the shipped ones, the rest (cache rates, limits) are kept
    assert (price.input, price.output, price.cached_input, price.cache_write) == (D("2"), D("10"), D("0.3"), D("3.75"))
    assert price.max_input_tokens == 200000
    # the override's family covers snapshots even where the table has an exact entry
    assert t.lookup("anthropic", "claude-sonnet-4-5-20250929") is price
    assert t.resolve("anthropic", "anthropic/claude-sonnet-4-5@20250929") == "anthropic/claude-sonnet-4-5"
    # other models are untouched
    other = t.lookup("anthropic", "claude-opus-4-5")
    assert other is not None and other.input == D("5")
    assert t.table_version == "2026-11-23.1"
    assert t.version.startswith("2026-11-23.1+local.")


def test_partial_override_as_the_settings_layer_passes_it() -> None:
    # tollway.runtime passes PriceOverride.model_dump(exclude_none=True): Decimal values, any subset
    t = PriceTable.load({"openai/gpt-4o": {"cached_input": D("0.5")}, "bedrock/ca.amazon.nova-micro-v1:0": {}})
    price = t.lookup("openai", "gpt-4o-2024-08-06")
    assert price is not None
    assert (price.input, price.cached_input, price.output) == (D("2.5"), D("0.5"), D("10"))
    # an override key that normalises onto a shipped entry amends that entry
    nova = t.lookup("bedrock", "ca.amazon.nova-micro-v1:0")
    assert nova is not None and nova.input == D("0.035")
    assert t.resolve("bedrock", "ca.amazon.nova-micro-v1:0") == "bedrock/ca.amazon.nova-micro-v1:0"
    # None means "not given"
    t2 = PriceTable.load({"openai/gpt-4o": {"input": None, "output": "12"}})
    p2 = t2.lookup("openai", "gpt-4o")
    assert p2 is not None and (p2.input, p2.output) == (D("2.5"), D("12"))


def test_override_version_is_deterministic_and_tracks_prices() -> None:
    a = PriceTable.load({"ollama/llama3.2": {"input": "0.1", "output": "0.2"}})
    b = PriceTable.load({"ollama/llama3.2": {"input": "0.1", "output": "0.2"}})
    c = PriceTable.load({"ollama/llama3.2": {"input": "0.1", "output": "0.3"}})
    assert a.version == b.version != c.version
    assert PriceTable.load({}).version == "2026-11-23.1"


def test_overrides_price_unpriced_models() -> None:
    t = PriceTable.load(
        {
            "ollama/llama3.2": {"input": "0.10", "output": 0.2, "cached_input": 0, "max_input_tokens": 131072},
            "huggingface/google/gemma-2-9b-it": {"input": "0.05", "output": "0.05"},
        }
    )
    price = t.lookup("ollama", "llama3.2:latest")
    assert price is not None
    assert (price.input, price.output, price.cached_input) == (D("0.10"), D("0.2"), D("0"))
    assert price.max_input_tokens == 131072
    assert t.lookup("ollama", "ollama/llama3.2") is price
    assert t.lookup("ollama", "llama3.2:1b") is None
    assert t.resolve("huggingface", "google/gemma-2-9b-it") == "huggingface/google/gemma-2-9b-it"
    assert "llama3.2" in t.provider_models("ollama")


@pytest.mark.parametrize(
    "overrides",
    [
        {"anthropic/claude-x": {"input": "3"}},  # output missing, not in the table
        {"anthropic/claude-x": {"output": "3"}},  # input missing, not in the table
        {"ollama/llama3": {"input": "0"}},
        {"claude-x": {"input": "3", "output": "15"}},  # no provider
        {"anthropic/": {"input": "3", "output": "15"}},
        {"anthropic/claude-x": {"input": "-1", "output": "15"}},
        {"anthropic/claude-x": {"input": "NaN", "output": "15"}},
        {"anthropic/claude-x": {"input": "Infinity", "output": "15"}},
        {"anthropic/claude-x": {"input": "three", "output": "15"}},
        {"anthropic/claude-x": {"input": True, "output": "15"}},
        {"anthropic/claude-x": {"input": [3], "output": "15"}},
        {"anthropic/claude-x": {"input": "3", "output": "15", "discount": "1"}},
        {"anthropic/claude-x": {"input": "3", "output": "15", "max_input_tokens": "big"}},
    ],
)
def test_bad_overrides_are_rejected(overrides: dict[str, dict[str, object]]) -> None:
    with pytest.raises(ValueError):
        PriceTable.load(overrides)


def test_float_override_reads_shortest_repr() -> None:
    t = PriceTable.load({"openai/gpt-x": {"input": 0.1, "output": 1.1}})
    price = t.lookup("openai", "gpt-x")
    assert price is not None and price.input == D("0.1") and price.output == D("1.1")


@pytest.mark.parametrize(
    "raw",
    [
        b"not json",
        b"[]",
        b'{"version": "x", "currency": "USD", "unit": "per_1m_tokens"}',
        b'{"version": "x", "currency": "EUR", "unit": "per_1m_tokens", "models": {}}',
        b'{"version": "x", "currency": "USD", "unit": "per_token", "models": {}}',
        b'{"version": "", "currency": "USD", "unit": "per_1m_tokens", "models": {}}',
    ],
)
def test_bad_tables_are_rejected(raw: bytes) -> None:
    with pytest.raises(ValueError):
        PriceTable.from_json(raw)


def test_model_price_resolved_rates() -> None:
    bare = ModelPrice(input=D("2"), output=D("8"))
    assert bare.base_rates == (D("2"), D("2"), D("2"), D("8"))
    assert bare.long_rates is None
    tiered = ModelPrice(
        input=D("1.25"),
        output=D("10"),
        cached_input=D("0.125"),
        input_above_200k=D("2.5"),
        output_above_200k=D("15"),
    )
    # no tier value for cached/cache-write: cached keeps its normal rate, cache-write the tier input rate
    assert tiered.long_rates == (D("2.5"), D("0.125"), D("2.5"), D("15"))
    with pytest.raises(ValueError):
        ModelPrice(input=D("-1"), output=D("1"))

"""The shipped data/prices.json: in sync with scripts/build_price_table.py, and the generator's rules."""

from __future__ import annotations

import importlib.util
import json
import subprocess
import sys
from decimal import Decimal
from importlib import resources
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

REPO_ROOT = Path(__file__).resolve().parents[2]
SCRIPT = REPO_ROOT / "scripts" / "build_price_table.py"
SOURCE = REPO_ROOT / ".." / "shared" / "pricing" / "model_prices_and_context_window.json"
PRICE_KEYS = (
    "input",
    "cached_input",
    "cache_write",
    "output",
    "reasoning",
    "input_above_200k",
    "output_above_200k",
    "cached_input_above_200k",
    "cache_write_above_200k",
)


@pytest.fixture(scope="module")
def gen() -> ModuleType:
    spec = importlib.util.spec_from_file_location("build_price_table", SCRIPT)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def shipped_bytes() -> bytes:
    return resources.files("tollway.metering").joinpath("data", "prices.json").read_bytes()


@pytest.fixture(scope="module")
def shipped(shipped_bytes: bytes) -> dict[str, Any]:
    data = json.loads(shipped_bytes)
    assert isinstance(data, dict)
    return data


@pytest.mark.skipif(not SOURCE.is_file(), reason="shared pricing source not present")
def test_shipped_table_is_in_sync_with_generator(tmp_path: Path, shipped_bytes: bytes) -> None:
    out = tmp_path / "prices.json"
    result = subprocess.run(
        [sys.executable, str(SCRIPT), "--source", str(SOURCE), "--out", str(out)],
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert out.read_bytes() == shipped_bytes, "re-run: uv run python scripts/build_price_table.py"


@pytest.mark.skipif(not SOURCE.is_file(), reason="shared pricing source not present")
def test_shipped_prices_equal_source_per_token_times_a_million(shipped: dict[str, Any]) -> None:
    source = json.loads(SOURCE.read_bytes(), parse_float=Decimal)
    models = shipped["models"]
    checks = {
        "openai/gpt-4o": ("gpt-4o", "input_cost_per_token"),
        "anthropic/claude-sonnet-4-5": ("claude-sonnet-4-5", "cache_read_input_token_cost"),
        "gemini/gemini-2.5-pro": ("gemini/gemini-2.5-pro", "output_cost_per_token_above_200k_tokens"),
        "bedrock/amazon.nova-micro-v1:0": ("amazon.nova-micro-v1:0", "input_cost_per_token"),
        "mistral/mistral-large-latest": ("mistral/mistral-large-latest", "output_cost_per_token"),
    }
    field_of = {
        "input_cost_per_token": "input",
        "cache_read_input_token_cost": "cached_input",
        "output_cost_per_token_above_200k_tokens": "output_above_200k",
        "output_cost_per_token": "output",
    }
    for key, (source_key, source_field) in checks.items():
        shipped_value = Decimal(models[key][field_of[source_field]])
        assert shipped_value == source[source_key][source_field] * 1_000_000, key


def test_shipped_header(shipped: dict[str, Any], shipped_bytes: bytes) -> None:
    assert shipped["version"] == "2026-11-23.1"
    assert shipped["currency"] == "USD"
    assert shipped["unit"] == "per_1m_tokens"
    assert shipped["source"].startswith("litellm 1.109.1")
    assert shipped_bytes.endswith(b"}\n")
    assert list(shipped["models"]) == sorted(shipped["models"])


def test_shipped_entries_are_well_formed(shipped: dict[str, Any]) -> None:
    providers = set()
    for key, entry in shipped["models"].items():
        provider, _, model = key.partition("/")
        providers.add(provider)
        assert model, key
        assert set(entry) == {*PRICE_KEYS, "max_input_tokens", "max_output_tokens"}, key
        for name in PRICE_KEYS:
            value = entry[name]
            assert value is None or isinstance(value, str), (key, name)
            if value is not None:
                parsed = Decimal(value)
                assert parsed.is_finite() and parsed >= 0 and "E" not in value.upper(), (key, name)
        assert entry["input"] is not None and entry["output"] is not None, key
        assert not (Decimal(entry["input"]) == 0 and Decimal(entry["output"]) == 0), key
        if provider == "bedrock":
            assert "/" not in model, key
    assert providers == {"openai", "anthropic", "gemini", "mistral", "bedrock"}


def test_per_million_is_exact(gen: ModuleType) -> None:
    assert gen.per_million(Decimal("3E-7"), "x") == "0.3"
    assert gen.per_million(Decimal("0.0000025"), "x") == "2.5"
    assert gen.per_million(Decimal("0.00001"), "x") == "10"
    assert gen.per_million(Decimal("8.75E-9"), "x") == "0.00875"
    assert gen.per_million(Decimal("1.2345678901234567890123E-7"), "x") == "0.12345678901234567890123"
    assert gen.per_million(0, "x") == "0"
    for bad in (-1, Decimal("NaN"), 1.5, "0.1", True):
        with pytest.raises(ValueError):
            gen.per_million(bad, "x")


@pytest.mark.parametrize(
    ("source_key", "provider", "expected"),
    [
        ("gpt-4o", "openai", "openai/gpt-4o"),
        ("openai/container", "openai", None),
        ("claude-sonnet-4-5", "anthropic", "anthropic/claude-sonnet-4-5"),
        ("gemini/gemini-2.5-pro", "gemini", "gemini/gemini-2.5-pro"),
        ("gemini-pro-latest", "gemini", None),
        ("mistral/mistral-large-latest", "mistral", "mistral/mistral-large-latest"),
        ("us.amazon.nova-micro-v1:0", "bedrock_converse", "bedrock/us.amazon.nova-micro-v1:0"),
        ("anthropic.claude-v2:1", "bedrock", "bedrock/anthropic.claude-v2:1"),
        ("bedrock/us-east-1/anthropic.claude-v2:1", "bedrock", None),
        ("claude-sonnet-4-5-20250929-v1:0", "bedrock", None),
        ("bedrock_mantle/openai.gpt-oss-120b", "bedrock_mantle", None),
        ("ollama/llama3", "ollama", None),
        ("huggingface/meta-llama/Llama-3-8B", "huggingface", None),
        ("huggingface/some-model", "huggingface", "huggingface/some-model"),
        ("vertex_ai/claude-x", "vertex_ai-anthropic_models", None),
    ],
)
def test_table_key(gen: ModuleType, source_key: str, provider: str, expected: str | None) -> None:
    assert gen.table_key(source_key, provider) == expected


def test_build_filters(gen: ModuleType) -> None:
    source = b"""{
      "sample_spec": {"litellm_provider": "one of ...", "mode": "chat", "input_cost_per_token": 0.0},
      "gpt-x": {"litellm_provider": "openai", "mode": "chat", "input_cost_per_token": 1.5e-6,
                "output_cost_per_token": 6e-6, "cache_read_input_token_cost": 7.5e-7,
                "max_input_tokens": 1000, "max_output_tokens": 100},
      "gpt-r": {"litellm_provider": "openai", "mode": "responses", "input_cost_per_token": 1e-6,
                "output_cost_per_token": 2e-6, "output_cost_per_reasoning_token": 3e-6},
      "text-embedding-x": {"litellm_provider": "openai", "mode": "embedding", "input_cost_per_token": 1e-7,
                           "output_cost_per_token": 0},
      "ollama/llama3": {"litellm_provider": "ollama", "mode": "chat", "input_cost_per_token": 0.0,
                        "output_cost_per_token": 0.0},
      "gemini/free": {"litellm_provider": "gemini", "mode": "chat", "input_cost_per_token": 0,
                      "output_cost_per_token": 0},
      "twelvelabs.video": {"litellm_provider": "bedrock", "mode": "chat", "output_cost_per_token": 1e-6}
    }"""
    table = gen.build(source, "v-test")
    assert table["version"] == "v-test"
    assert table["unit"] == "per_1m_tokens"
    assert sorted(table["models"]) == ["openai/gpt-r", "openai/gpt-x"]
    x = table["models"]["openai/gpt-x"]
    assert (x["input"], x["cached_input"], x["output"], x["cache_write"]) == ("1.5", "0.75", "6", None)
    assert (x["max_input_tokens"], x["max_output_tokens"]) == (1000, 100)
    assert table["models"]["openai/gpt-r"]["reasoning"] == "3"
    rendered = gen.render(table)
    assert json.loads(rendered) == table
    assert rendered == gen.render(json.loads(rendered))  # stable

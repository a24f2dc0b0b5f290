"""compute_cost on real table entries, hand-computed; decimal_json exactness."""

from __future__ import annotations

import json
import re
from decimal import Decimal

import orjson
import pytest
from hypothesis import given
from hypothesis import strategies as st

from tollway.core.types import Usage
from tollway.metering.cost import CostBreakdown, compute_cost, decimal_json
from tollway.metering.pricing import ModelPrice, PriceTable

D = Decimal
VERSION = "2026-11-23.1"


@pytest.fixture(scope="module")
def table() -> PriceTable:
    return PriceTable.load()


def _price(table: PriceTable, provider: str, model: str) -> ModelPrice:
    price = table.lookup(provider, model)
    assert price is not None, (provider, model)
    return price


def _amounts(c: CostBreakdown) -> tuple[Decimal | None, ...]:
    return (c.input_usd, c.cached_input_usd, c.cache_write_usd, c.output_usd, c.total_usd)


def test_plain_gpt_4o(table: PriceTable) -> None:
    # $2.50 / $10 per 1M: 1000 in -> 0.0025, 500 out -> 0.005
    c = compute_cost(_price(table, "openai", "gpt-4o"), Usage(input_tokens=1000, output_tokens=500), VERSION)
    assert c.status == "priced" and c.price_table_version == VERSION
    assert _amounts(c) == (D("0.0025"), D("0"), D("0"), D("0.005"), D("0.0075"))


def test_cached_gpt_4o(table: PriceTable) -> None:
    # 10_000 in of which 4_000 cached ($1.25): 6000*2.5 = 15000 -> 0.015; 4000*1.25 -> 0.005; 1000*10 -> 0.01
    usage = Usage(input_tokens=10_000, output_tokens=1_000, cached_tokens=4_000)
    c = compute_cost(_price(table, "openai", "gpt-4o"), usage, VERSION)
    assert _amounts(c) == (D("0.015"), D("0.005"), D("0"), D("0.01"), D("0.03"))


def test_cache_write_claude_sonnet_4_5(table: PriceTable) -> None:
    # $3 in, $0.30 cache read, $3.75 cache write, $15 out; 12_000 in = 2_000 plain + 8_000 read + 2_000 written
    usage = Usage(input_tokens=12_000, output_tokens=700, cached_tokens=8_000, cache_write_tokens=2_000)
    c = compute_cost(_price(table, "anthropic", "claude-sonnet-4-5-20250929"), usage, VERSION)
    assert _amounts(c) == (D("0.006"), D("0.0024"), D("0.0075"), D("0.0105"), D("0.0264"))


def test_reasoning_inside_output_o3_mini(table: PriceTable) -> None:
    # no separate reasoning rate: all 3000 output tokens at $4.40; 2000 in at $1.10
    usage = Usage(input_tokens=2_000, output_tokens=3_000, reasoning_tokens=2_500)
    c = compute_cost(_price(table, "openai", "o3-mini"), usage, VERSION)
    assert _amounts(c) == (D("0.0022"), D("0"), D("0"), D("0.0132"), D("0.0154"))


def test_reasoning_gpt_5_with_cache(table: PriceTable) -> None:
    # $1.25 in, $0.125 cached, $10 out; 3000 in (1000 cached), 5000 out (4000 reasoning)
    usage = Usage(input_tokens=3_000, output_tokens=5_000, cached_tokens=1_000, reasoning_tokens=4_000)
    c = compute_cost(_price(table, "openai", "gpt-5"), usage, VERSION)
    assert _amounts(c) == (D("0.0025"), D("0.000125"), D("0"), D("0.05"), D("0.052625"))


def test_gemini_reasoning_rate_equal_to_output(table: PriceTable) -> None:
    # gemini-2.5-flash lists a reasoning rate ($2.50, same as output): 1000 out (600 reasoning) -> 0.0025
    usage = Usage(input_tokens=10_000, output_tokens=1_000, reasoning_tokens=600)
    c = compute_cost(_price(table, "gemini", "gemini-2.5-flash"), usage, VERSION)
    assert _amounts(c) == (D("0.003"), D("0"), D("0"), D("0.0025"), D("0.0055"))


def test_separate_reasoning_rate() -> None:
    price = ModelPrice(input=D("1"), output=D("4"), reasoning=D("10"))
    # 600 reasoning * 10 + 400 other * 4 = 7600 -> 0.0076
    usage = Usage(input_tokens=1_000, output_tokens=1_000, reasoning_tokens=600)
    c = compute_cost(price, usage, VERSION)
    assert _amounts(c) == (D("0.001"), D("0"), D("0"), D("0.0076"), D("0.0086"))
    # reasoning above output is capped at output
    over = compute_cost(price, Usage(input_tokens=0, output_tokens=100, reasoning_tokens=500), VERSION)
    assert over.output_usd == D("0.001")


def test_separate_reasoning_rate_from_override() -> None:
    t = PriceTable.load({"openai/o3-mini": {"input": "1.1", "output": "4.4", "reasoning": "8.8"}})
    usage = Usage(input_tokens=2_000, output_tokens=3_000, reasoning_tokens=2_500)
    # 2500*8.8 = 22000 + 500*4.4 = 2200 -> 0.0242
    c = compute_cost(t.lookup("openai", "o3-mini"), usage, t.version)
    assert _amounts(c) == (D("0.0022"), D("0"), D("0"), D("0.0242"), D("0.0264"))
    assert c.price_table_version == t.version != VERSION


def test_missing_cached_and_cache_write_rates_bill_at_input() -> None:
    price = ModelPrice(input=D("2"), output=D("8"))
    usage = Usage(input_tokens=1_000, output_tokens=0, cached_tokens=300, cache_write_tokens=200)
    c = compute_cost(price, usage, VERSION)
    # 500*2, 300*2, 200*2
    assert _amounts(c) == (D("0.001"), D("0.0006"), D("0.0004"), D("0"), D("0.002"))


def test_long_context_tier_gemini_2_5_pro(table: PriceTable) -> None:
    price = _price(table, "gemini", "gemini-2.5-pro")
    # above 200k: $2.50 in, $0.25 cached, $15 out
    above = Usage(input_tokens=250_000, output_tokens=2_000, cached_tokens=50_000)
    assert _amounts(compute_cost(price, above, VERSION)) == (
        D("0.5"),
        D("0.0125"),
        D("0"),
        D("0.03"),
        D("0.5425"),
    )
    # exactly 200k is still the normal tier: $1.25, $0.125, $10
    at = Usage(input_tokens=200_000, output_tokens=2_000, cached_tokens=50_000)
    assert _amounts(compute_cost(price, at, VERSION)) == (
        D("0.1875"),
        D("0.00625"),
        D("0"),
        D("0.02"),
        D("0.21375"),
    )


def test_long_context_tier_bedrock_profile_with_cache_write(table: PriceTable) -> None:
    price = _price(table, "bedrock", "us.anthropic.claude-sonnet-4-5-20250929-v1:0")
    # tier rates $6.60 in, $0.66 read, $8.25 write, $24.75 out
    usage = Usage(input_tokens=300_000, output_tokens=1_000, cached_tokens=100_000, cache_write_tokens=50_000)
    c = compute_cost(price, usage, VERSION)
    assert _amounts(c) == (D("0.99"), D("0.066"), D("0.4125"), D("0.02475"), D("1.49325"))


def test_long_context_tier_without_cached_tier_price(table: PriceTable) -> None:
    # tier input/output only; no cached rate at all -> cached tokens at the tier input rate
    price = _price(table, "gemini", "gemini-2.5-computer-use-preview-10-2025")
    usage = Usage(input_tokens=210_000, output_tokens=1_000, cached_tokens=10_000)
    c = compute_cost(price, usage, VERSION)
    assert _amounts(c) == (D("0.5"), D("0.025"), D("0"), D("0.015"), D("0.54"))


def test_tiny_amounts_stay_exact(table: PriceTable) -> None:
    # nova micro: $0.035 / 1M in -> one token costs 0.000000035
    c = compute_cost(_price(table, "bedrock", "amazon.nova-micro-v1:0"), Usage(input_tokens=1), VERSION)
    assert c.input_usd == D("3.5E-8") and c.total_usd == D("3.5E-8")
    assert b'"total_usd":0.000000035' in orjson.dumps(c.to_json())


def test_more_cached_than_input_never_goes_negative() -> None:
    price = ModelPrice(input=D("3"), output=D("15"), cached_input=D("0.3"))
    c = compute_cost(price, Usage(input_tokens=100, output_tokens=0, cached_tokens=500), VERSION)
    assert c.input_usd == D("0") and c.cached_input_usd == D("0.00015") and c.total_usd == D("0.00015")


def test_unpriced_is_never_zero(table: PriceTable) -> None:
    usage = Usage(input_tokens=1_000, output_tokens=1_000)
    c = compute_cost(table.lookup("ollama", "llama3"), usage, VERSION)
    assert c.status == "unpriced"
    assert c.price_table_version == VERSION
    assert _amounts(c) == (None, None, None, None, None)
    assert orjson.loads(orjson.dumps(c.to_json())) == {
        "status": "unpriced",
        "currency": "USD",
        "price_table_version": VERSION,
        "input_usd": None,
        "cached_input_usd": None,
        "cache_write_usd": None,
        "output_usd": None,
        "total_usd": None,
    }


def test_zero_usage_is_priced_zero(table: PriceTable) -> None:
    c = compute_cost(_price(table, "openai", "gpt-4o"), Usage(), VERSION)
    assert c.status == "priced" and c.total_usd == D("0")


def test_to_json_is_exact(table: PriceTable) -> None:
    usage = Usage(input_tokens=12_345, output_tokens=6_789, cached_tokens=1_111, cache_write_tokens=222)
    c = compute_cost(_price(table, "anthropic", "claude-sonnet-4-5"), usage, VERSION)
    text = orjson.dumps(c.to_json())
    parsed = json.loads(text, parse_float=Decimal)
    assert parsed["status"] == "priced"
    assert parsed["price_table_version"] == VERSION
    # 11012*3 + 1111*0.3 + 222*3.75 + 6789*15 = 33036 + 333.3 + 832.5 + 101835 = 136036.8 per 1M
    assert parsed["total_usd"] == D("0.1360368")
    for name in ("input_usd", "cached_input_usd", "cache_write_usd", "output_usd", "total_usd"):
        assert parsed[name] == getattr(c, name)
    numbers = re.findall(rb":(-?\d[^,}]*)", text)
    assert len(numbers) == 5
    assert all(b"e" not in n.lower() for n in numbers)


@pytest.mark.parametrize(
    ("value", "text"),
    [
        (D("1.23E-7"), b"0.000000123"),
        (D("0.0000025000"), b"0.0000025"),
        (D("10"), b"10"),
        (D("1E+3"), b"1000"),
        (D("2.50"), b"2.5"),
        (D("0"), b"0"),
        (D("0E-12"), b"0"),
        (D("-0.0"), b"0"),
        (D("-1.5E-3"), b"-0.0015"),
        (D("123456789012345678901234567890.123456789"), b"123456789012345678901234567890.123456789"),
    ],
)
def test_decimal_json_text(value: Decimal, text: bytes) -> None:
    assert orjson.dumps(decimal_json(value)) == text
    assert orjson.dumps({"v": decimal_json(value)}) == b'{"v":' + text + b"}"


@pytest.mark.parametrize("value", [D("NaN"), D("Infinity"), D("-Infinity"), D("sNaN")])
def test_decimal_json_rejects_non_finite(value: Decimal) -> None:
    with pytest.raises(ValueError):
        decimal_json(value)


_decimals = st.builds(
    lambda digits, exponent, negative: Decimal((int(negative), tuple(digits), exponent)),
    st.lists(st.integers(0, 9), min_size=1, max_size=20),
    st.integers(-40, 40),
    st.booleans(),
)


@given(_decimals)
def test_decimal_json_round_trips(value: Decimal) -> None:
    text = orjson.dumps({"v": decimal_json(value)})
    assert b"e" not in text.lower()
    parsed = json.loads(text, parse_float=Decimal)["v"]
    assert parsed == value
    assert isinstance(parsed, (int, Decimal))

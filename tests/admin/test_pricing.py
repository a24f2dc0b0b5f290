"""PriceTable.set_overrides (used for the admin API's live overrides) and the pricing view."""

from __future__ import annotations

from decimal import Decimal

import pytest

from tollway.admin.price_ops import pricing_view
from tollway.metering.pricing import PriceTable

TABLE = b"""{"version": "t1", "currency": "USD", "unit": "per_1m_tokens", "source": "test", "models": {
  "openai/gpt-4o": {"input": "2.5", "output": "10", "cached_input": "1.25"},
  "openai/gpt-4o-2024-08-06": {"input": "2.5", "output": "10"}}}"""


def test_set_overrides_replaces_live_and_clears_the_cache() -> None:
    prices = PriceTable.from_json(TABLE, {"openai/gpt-4o": {"input": "3"}})
    config_version = prices.version
    assert prices.lookup("openai", "gpt-4o-2024-08-06") is not None
    assert prices.lookup("openai", "gpt-4o").input == Decimal("3")  # type: ignore[union-attr]
    assert prices.lookup("mock", "mock") is None
    prices.set_overrides({"openai/gpt-4o": {"input": "3"}, "mock/mock": {"input": "1", "output": "2"}})
    assert prices.lookup("mock", "mock").output == Decimal("2")  # type: ignore[union-attr]  # cache cleared
    assert prices.version not in (config_version, "t1") and prices.version.startswith("t1+local.")
    assert "mock" in prices.provider_models("mock")
    prices.set_overrides({})
    assert prices.version == "t1" and prices.lookup("mock", "mock") is None
    assert prices.lookup("openai", "gpt-4o").input == Decimal("2.5")  # type: ignore[union-attr]
    assert prices.lookup("openai", "gpt-4o").cached_input == Decimal("1.25")  # type: ignore[union-attr]


def test_invalid_overrides_leave_the_table_unchanged() -> None:
    prices = PriceTable.from_json(TABLE)
    prices.set_overrides({"mock/mock": {"input": "1", "output": "2"}})
    version = prices.version
    for bad in ({"mock/new": {"input": "1"}}, {"openai/gpt-4o": {"input": "-1"}}, {"nokey": {"input": "1"}}):
        with pytest.raises(ValueError):
            prices.set_overrides({"mock/mock": {"input": "5", "output": "5"}, **bad})
        assert prices.version == version
        assert prices.lookup("mock", "mock").input == Decimal("1")  # type: ignore[union-attr]


def test_pricing_view() -> None:
    prices = PriceTable.from_json(TABLE)
    view = pricing_view(prices)
    assert view == {"version": "t1", "table_version": "t1", "source": "test", "unit": "USD per 1M tokens"}
    one = pricing_view(prices, "openai", "gpt-4o-2024-08-06")["lookup"]
    assert one["priced_as"] == "openai/gpt-4o-2024-08-06" and one["price"]["output"] == "10"
    assert pricing_view(prices, "openai", "nope")["lookup"]["price"] is None
    listing = pricing_view(prices, "openai")["models"]
    assert set(listing) == {"gpt-4o", "gpt-4o-2024-08-06"} and listing["gpt-4o"]["cached_input"] == "1.25"

"""Metering: the shipped, versioned price table (:mod:`.pricing`) and per-request cost (:mod:`.cost`)."""

from tollway.metering.cost import CostBreakdown, compute_cost, decimal_json
from tollway.metering.pricing import ModelPrice, PriceTable

__all__ = ["CostBreakdown", "ModelPrice", "PriceTable", "compute_cost", "decimal_json"]

from __future__ import annotations

from typing import Any

import pytest

from bench.aggregate import added_p50_ms, median_cpu, median_of_rounds, ratios, rss_growth
from bench.load import WrkResult


def _wrk(rps: float, p50: float, errors: int = 0) -> WrkResult:
    return WrkResult(
        requests=int(rps * 2),
        duration_s=2.0,
        rps=rps,
        mean_ms=p50,
        p50_ms=p50,
        p90_ms=p50 * 2,
        p99_ms=p50 * 4,
        p999_ms=p50 * 8,
        max_ms=p50 * 10,
        errors=errors,
        status_errors=errors,
        timeouts=0,
    )


def test_median_of_rounds_takes_medians_and_sums_counts() -> None:
    summary = median_of_rounds([_wrk(100, 5.0), _wrk(300, 1.0, errors=2), _wrk(200, 3.0, errors=1)])
    assert summary is not None
    assert summary["rps"] == 200
    assert summary["p50_ms"] == 3.0
    assert summary["p99_ms"] == 12.0
    assert summary["errors"] == 3
    assert summary["requests"] == 1200
    assert summary["rounds"] == 3


def test_median_of_no_rounds_is_none() -> None:
    assert median_of_rounds([]) is None


def test_added_p50_is_the_difference_to_direct() -> None:
    assert added_p50_ms({"p50_ms": 3.5}, {"p50_ms": 0.25}) == pytest.approx(3.25)
    assert added_p50_ms(None, {"p50_ms": 0.25}) is None
    assert added_p50_ms({"p50_ms": 3.5}, None) is None


def test_median_cpu() -> None:
    usages = [
        {"server_pct": 90.0, "other_pct": 5.0},
        {"server_pct": 70.0, "other_pct": 30.0},
        {"server_pct": 80.0, "other_pct": 10.0},
    ]
    assert median_cpu(usages) == {"server_cpu_pct": 80.0, "other_cpu_pct": 10.0}
    assert median_cpu([]) == {"server_cpu_pct": 0.0, "other_cpu_pct": 0.0}


def _cell(rps: float, p50: float, added: float | None) -> dict[str, Any]:
    return {"median": {"rps": rps, "p50_ms": p50}, "added_p50_ms": added}


def test_ratios_per_scenario_and_geomean() -> None:
    medians: dict[str, dict[str, dict[str, Any]]] = {
        "chat-json-c16": {
            "direct": _cell(50_000, 0.25, None),
            "bare": _cell(4000, 2.25, 2.0),
            "tollway": _cell(2000, 4.25, 4.0),
        },
        "responses-stream-c16": {
            "direct": _cell(50_000, 0.25, None),
            "bare": _cell(3000, 3.25, 3.0),
            "tollway": _cell(3000, 3.25, 3.0),
        },
    }
    out = ratios(medians)
    assert set(out) == {"tollway/bare"}  # no LiteLLM measured
    pair = out["tollway/bare"]
    assert pair["scenarios"]["chat-json-c16"]["rps"] == pytest.approx(0.5)
    assert pair["scenarios"]["chat-json-c16"]["p50"] == pytest.approx(4.25 / 2.25)
    assert pair["scenarios"]["chat-json-c16"]["added_p50"] == pytest.approx(2.0)
    assert pair["scenarios"]["responses-stream-c16"]["rps"] == pytest.approx(1.0)
    assert pair["geomean"]["rps"] == pytest.approx((0.5 * 1.0) ** 0.5)
    assert pair["geomean"]["added_p50"] == pytest.approx((2.0 * 1.0) ** 0.5)


def test_ratios_skip_a_scenario_where_one_side_has_no_data() -> None:
    medians: dict[str, dict[str, dict[str, Any]]] = {
        "s1": {"tollway": _cell(100, 10.0, 9.0), "litellm": {"median": None, "added_p50_ms": None}},
        "s2": {"tollway": _cell(100, 10.0, 9.0), "litellm": _cell(50, 20.0, 19.0)},
    }
    pair = ratios(medians)["tollway/litellm"]
    assert list(pair["scenarios"]) == ["s2"]
    assert pair["scenarios"]["s2"]["rps"] == pytest.approx(2.0)


def test_ratio_with_zero_denominator_is_none() -> None:
    medians: dict[str, dict[str, dict[str, Any]]] = {"s": {"tollway": _cell(100, 1.0, 0.5), "bare": _cell(0, 1.0, 0.0)}}
    pair = ratios(medians)["tollway/bare"]
    assert pair["scenarios"]["s"]["rps"] is None
    assert pair["scenarios"]["s"]["added_p50"] is None
    assert pair["geomean"]["rps"] is None


def test_rss_growth() -> None:
    growth = rss_growth([(0, 80_000), (50_000, 81_000), (100_000, 82_000)])
    assert growth == {
        "requests": 100_000.0,
        "rss_start_kib": 80_000.0,
        "rss_end_kib": 82_000.0,
        "growth_kib": 2000.0,
        "growth_kib_per_10k": 200.0,
    }
    assert rss_growth([(0, 1)]) is None

from __future__ import annotations

import pytest

from bench.stream_probe import StreamSample, added, count_events, summarize


def test_count_events_keeps_the_unfinished_tail() -> None:
    complete, rest = count_events(b"data: 1\n\ndata: 2\n\ndata: 3")
    assert complete == 2
    assert rest == b"data: 3"


def test_count_events_handles_crlf_and_named_events() -> None:
    complete, rest = count_events(b"event: a\r\ndata: 1\r\n\r\nevent: b\r\ndata: 2\r\n\r\n")
    assert complete == 2
    assert rest == b""


def test_count_events_across_chunk_boundary() -> None:
    first, rest = count_events(b"data: 1\n")
    assert first == 0
    second, rest = count_events(rest + b"\ndata: 2\n\n")
    assert second == 2
    assert rest == b""


def test_mean_gap() -> None:
    assert StreamSample(200, 0.001, [0.001, 0.006, 0.011]).mean_gap_s == pytest.approx(0.005)
    assert StreamSample(200, 0.001, [0.001]).mean_gap_s is None


def test_summarize_counts_failures_and_takes_medians() -> None:
    samples = [
        StreamSample(200, 0.002, [0.002, 0.007, 0.012]),
        StreamSample(200, 0.004, [0.004, 0.010, 0.016]),
        StreamSample(200, 0.003, [0.003, 0.009, 0.015]),
        StreamSample(502, 0.001, [0.001]),
        StreamSample(0, 0.0, []),
    ]
    stats = summarize(samples)
    assert stats.requests == 5
    assert stats.errors == 2
    assert stats.ttfb_p50_ms == pytest.approx(3.0)
    assert stats.gap_mean_ms == pytest.approx(6.0)
    assert stats.events == 3
    assert stats.total_p50_ms == pytest.approx(15.0)


def test_summarize_all_failed() -> None:
    stats = summarize([StreamSample(500, 0.001, [])])
    assert stats.errors == 1
    assert stats.ttfb_p50_ms is None


def test_added_is_against_direct() -> None:
    direct = summarize([StreamSample(200, 0.001, [0.001, 0.006, 0.011])])
    system = summarize([StreamSample(200, 0.003, [0.003, 0.0085, 0.014])])
    out = added(system, direct)
    assert out["added_ttfb_ms"] == pytest.approx(2.0)
    assert out["added_gap_ms"] == pytest.approx(0.5)

from __future__ import annotations

from typing import Any

from bench.report import fmt, render_markdown


def _results() -> dict[str, Any]:
    median = {
        "rps": 3075.4,
        "p50_ms": 4.44,
        "p90_ms": 11.55,
        "p99_ms": 30.53,
        "errors": 0.0,
        "rounds": 3.0,
        "server_cpu_pct": 57.0,
        "other_cpu_pct": 39.0,
    }
    direct = {**median, "rps": 45365.0, "p50_ms": 0.34, "server_cpu_pct": 0.0, "other_cpu_pct": 95.0}
    return {
        "meta": {
            "machine": {
                "date_utc": "2026-11-23T14:27:00+00:00",
                "cpu_model": "Test CPU",
                "cores": 2,
                "kernel": "6.1",
                "python": "3.11.7",
                "versions": {
                    "tollway": "0.1.0",
                    "tollway_commit": "abc123",
                    "litellm": "1.100.5",
                    "uvicorn": "0.37.0",
                    "uvloop": "0.21.0",
                    "httptools": "0.6.4",
                    "aiohttp": "3.12.15",
                    "orjson": "3.11.3",
                    "nginx": "nginx version: nginx/1.22.1",
                    "wrk": "wrk 4.1.0",
                },
            },
            "interrupted": False,
            "pinning": {"servers": "taskset -c 0", "load_and_upstream": "taskset -c 1"},
            "settings": {
                "mode": "quick",
                "rounds": 3,
                "duration_s": 2,
                "warmup_s": 1,
                "upstream_chunks": 20,
                "bare": "b",
                "tollway": "t",
                "litellm": "l",
            },
        },
        "systems": {
            "direct": {"status": "ok", "start_s": 1.0, "rss_idle_kib": None},
            "bare": {"status": "ok", "start_s": 1.7, "rss_idle_kib": 44339, "rss_after_kib": 44800},
            "tollway": {"status": "failed", "reason": "tollway failed to start: exited with code 3\nlog line"},
        },
        "scenarios": [
            {
                "id": "chat-json-c16",
                "endpoint": "chat",
                "stream": False,
                "connections": 16,
                "results": {
                    "direct": {"median": direct, "added_p50_ms": None, "error": None},
                    "bare": {"median": median, "added_p50_ms": 4.1, "error": None},
                    "litellm": {"median": None, "added_p50_ms": None, "error": "smoke check failed: HTTP 500"},
                },
            }
        ],
        "ratios": {
            "tollway/bare": {
                "scenarios": {"chat-json-c16": {"rps": 0.671, "p50": 1.55, "added_p50": None}},
                "geomean": {"rps": 0.671, "p50": 1.55, "added_p50": None},
            }
        },
        "stream_probe": {
            "chunks": 20,
            "delay_ms": 5,
            "requests": 10,
            "results": {
                "responses": {
                    "bare": {
                        "ttfb_p50_ms": 3.07,
                        "added_ttfb_ms": 1.64,
                        "gap_mean_ms": 4.022,
                        "added_gap_ms": -0.004,
                        "events": 28,
                        "errors": 0,
                    }
                }
            },
        },
    }


def test_fmt() -> None:
    assert fmt(None) == "n/a"
    assert fmt(3075.4, 0) == "3,075"
    assert fmt(4.444) == "4.44"
    assert fmt(0.0041, 3) == "0.004"


def test_markdown_has_machine_ratios_tables_and_chart() -> None:
    md = render_markdown(_results(), ["a note\nwith detail"], "chart.png")
    assert md.startswith("# tollway benchmark: quick run, 2026-11-23T14:27:00+00:00")
    assert "Test CPU, 2 cores" in md
    assert "LiteLLM 1.100.5" in md
    assert "| tollway/bare | chat-json-c16 | 0.67x | 1.55x | n/a |" in md
    assert "| **tollway/bare** | **geomean** | 0.67x | 1.55x | n/a |" in md
    assert "### chat-json-c16: POST /v1/chat/completions, non-streaming, 16 connections" in md
    assert "| bare | 3,075 | 4.44 | 11.55 | 30.53 | 4.10 | 0 | 3 | 57 | 39 |" in md
    # direct's CPU columns are meaningless (no server on the measured core)
    assert "| direct | 45,365 | 0.34 | 11.55 | 30.53 | n/a | 0 | 3 | n/a | n/a |" in md
    assert "| litellm | smoke check failed: HTTP 500 |" in md
    assert "| responses | bare | 3.07 | 1.64 | 4.022 | -0.004 | 28 | 0 |" in md
    assert "| tollway | failed: tollway failed to start: exited with code 3 |" in md
    assert "| bare | ok | 1.7 | 43.3 | 43.8 |" in md
    assert "![latency percentiles and throughput per system](chart.png)" in md
    assert "- a note" in md
    assert "with detail" not in md
    assert "RSS growth run: not run" in md


def test_markdown_describes_the_long_run() -> None:
    results = _results()
    results["meta"]["settings"].update(long_run_requests=100_000, long_run_connections=64)
    md = render_markdown(results, [], None)
    assert "RSS growth run: at least 100,000 chat requests per system at 64 connections" in md


def test_markdown_without_ratios_probe_or_chart() -> None:
    results = _results()
    results["ratios"] = {}
    results["stream_probe"] = {"skipped": "mock failed to start: not found\ntrace"}
    results["meta"]["interrupted"] = True
    md = render_markdown(results, [], None)
    assert "(interrupted, partial)" in md
    assert "No pair of systems measured together" in md
    assert "Skipped: mock failed to start: not found" in md
    assert "chart.png" not in md
    assert "## Notes" not in md

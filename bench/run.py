"""Benchmark entry point: ``uv run python bench/run.py [--quick] [--systems ...] [--duration S] [--out DIR]``.

Starts the upstreams and the systems under test, drives load with wrk, probes streaming, and writes
results.json, results.md and chart.png into ``--out`` (default bench/results). See bench/README.md.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

_BENCH_DIR = Path(__file__).resolve().parent


def parse_args(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description="tollway benchmark harness")
    parser.add_argument("--quick", action="store_true", help="about 1.5 minutes: 2 scenarios, 3 short rounds")
    parser.add_argument(
        "--systems", default="direct,bare,tollway,litellm", help="comma-separated subset of direct,bare,tollway,litellm"
    )
    parser.add_argument("--duration", type=int, help="seconds per measured wrk run (default 2 quick, 5 full)")
    parser.add_argument("--rounds", type=int, help="interleaved rounds per scenario (default 3 quick, 5 full)")
    parser.add_argument("--long-run-requests", type=int, help="requests of the RSS growth run (0 disables)")
    parser.add_argument("--probe-chunks", type=int, help="chunks per streamed answer of the mock (probe)")
    parser.add_argument("--probe-delay-ms", type=int, help="delay between the mock's chunks, ms (probe)")
    parser.add_argument("--out", type=Path, default=_BENCH_DIR / "results", help="output folder")
    return parser.parse_args(argv)


def main(argv: list[str]) -> int:
    from bench.harness import run_benchmark
    from bench.plan import make_plan
    from bench.systems import SYSTEM_NAMES

    args = parse_args(argv)
    names = [n.strip() for n in args.systems.split(",") if n.strip()]
    unknown = [n for n in names if n not in SYSTEM_NAMES]
    if unknown:
        print(f"unknown system(s): {', '.join(unknown)}; choose from {', '.join(SYSTEM_NAMES)}", file=sys.stderr)
        return 2
    if "direct" not in names:
        names.insert(0, "direct")  # added latency is measured against it
    plan = make_plan(
        args.quick, args.duration, args.rounds, args.long_run_requests, args.probe_chunks, args.probe_delay_ms
    )
    return run_benchmark(plan, names, args.out.resolve())


if __name__ == "__main__":
    sys.path.insert(0, str(_BENCH_DIR.parent))
    raise SystemExit(main(sys.argv[1:]))

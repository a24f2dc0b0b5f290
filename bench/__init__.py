"""Benchmark harness for tollway: run with ``uv run python bench/run.py [--quick]`` (see bench/README.md)."""

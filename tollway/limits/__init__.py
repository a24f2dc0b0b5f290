"""Budgets (USD, reserve-then-settle) and rate limits (RPM, TPM, concurrency), exact across workers and
replicas through Redis, exact in memory for one process. See ``docs/limits.md``."""

"""``tollway serve --workers N`` (N > 1) without ``REDIS_URL``: budgets and rate limits could not be
shared between the worker processes, so each worker would admit up to the full limit — N times it in
total. tollway refuses such a start, unless the operator accepts per-worker limits explicitly with
``limits.per_worker_fallback: true``, which is then logged loudly at start-up.
"""

from __future__ import annotations

import logging

from tollway.settings import Settings

log = logging.getLogger("tollway.limits")

REFUSAL = ("--workers {n} without REDIS_URL: budgets and rate limits cannot be shared between worker processes "
           "(each would admit the full limit, {n} times it in total). Set REDIS_URL, run one worker, or set "
           "limits.per_worker_fallback: true to accept per-worker limits.")


def check_workers(settings: Settings) -> str | None:
    """The reason to refuse the start, or None (a per-worker fallback is logged as a warning)."""
    if settings.workers <= 1 or settings.redis_url:
        return None
    if not settings.limits.per_worker_fallback:
        return REFUSAL.format(n=settings.workers)
    log.warning("limits: per-worker fallback: each of the %d workers enforces every budget and rate limit on "
                "its own, so up to %d times each limit is admitted in total (set REDIS_URL to share them)",
                settings.workers, settings.workers, extra={"event": "limits.per_worker_fallback",
                                                           "workers": settings.workers})
    return None

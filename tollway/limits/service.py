"""Budgets and rate limits for one gateway process: the rule cache and its poller, the backend (Redis when
``REDIS_URL`` is set, else this process's memory), the guard with its lease renewer, the webhook sender and
the reconciler. Built once by :meth:`Limits.start` in ``Runtime.start``; stopped after the pipeline drained
(so every settlement has run).
"""

from __future__ import annotations

import logging
import time

from sqlalchemy.ext.asyncio import AsyncEngine

from tollway.limits.backend import Backend, BackendUnavailable
from tollway.limits.cache import RuleCache
from tollway.limits.guard import LimitsGuard
from tollway.limits.memory_backend import MemoryBackend
from tollway.limits.reconcile import Reconciler
from tollway.limits.rules import BudgetRule
from tollway.limits.store import RuleStore
from tollway.limits.webhooks import Webhooks
from tollway.metering.pricing import PriceTable
from tollway.settings import Settings
from tollway.storage.engine import DB_ERRORS, create_engine

log = logging.getLogger("tollway.limits")


class Limits:
    def __init__(self, engine: AsyncEngine, store: RuleStore, rules: RuleCache, backend: Backend,
                 guard: LimitsGuard, reconciler: Reconciler, webhooks: Webhooks | None) -> None:
        self.engine = engine
        self.store = store
        self.rules = rules
        self.backend = backend
        self.guard = guard
        self.reconciler = reconciler
        self.webhooks = webhooks

    @classmethod
    async def start(cls, settings: Settings, prices: PriceTable) -> Limits:
        config = settings.limits
        engine = create_engine(settings.database_url, pool_size=2, max_overflow=3)
        store = RuleStore(engine)
        rules = RuleCache(store, config.rules_poll_s)
        await rules.start()
        url = settings.redis_url
        backend: Backend
        if url:  # redis-py is imported only when Redis is configured (it costs ~13 MB of RSS)
            from tollway.limits.redis_backend import RedisBackend

            backend = RedisBackend(url, config.redis_timeout_s)
        else:
            backend = MemoryBackend()
        webhooks = None
        if config.webhook_url:
            secret = config.webhook_secret.get_secret_value().encode() if config.webhook_secret else None
            webhooks = Webhooks(config.webhook_url, secret)
            webhooks.start()
        guard = LimitsGuard(rules, backend, prices, config, webhooks=webhooks,
                            max_exchange_s=settings.timeouts.total + 60)
        guard.start()
        reconciler = Reconciler(rules, backend, guard.clock, engine, config.reconcile_s)
        reconciler.start()
        log.info("budgets and rate limits ready", extra={
            "event": "limits.started", "backend": backend.name, "failure_policy": config.redis_failure_policy,
            "admission": config.budget_admission, "timezone": config.timezone,
            "webhooks": bool(config.webhook_url)})
        if not settings.redis_url:
            log.info("limits are kept in this process's memory (exact for one process; set REDIS_URL to share "
                     "them between workers and replicas)", extra={"event": "limits.memory_backend"})
        return cls(engine, store, rules, backend, guard, reconciler, webhooks)

    async def changed(self) -> None:
        """After a rule write: install the new rules in this process now (the others poll)."""
        try:
            await self.rules.refresh()
        except DB_ERRORS as exc:
            log.warning("limits: refresh after a rule change failed (polling will pick it up)",
                        extra={"event": "limits.refresh_failed", "error": repr(exc)})

    async def adopt(self, rule: BudgetRule) -> None:
        """A budget was created or changed: count what its current period already spent (from the ledger)."""
        try:
            await self.reconciler.run_rule(rule, time.time(), horizon_s=0.0)
        except DB_ERRORS as exc:
            log.warning("limits: the new budget is reconciled later (ledger unreadable)",
                        extra={"event": "limits.reconcile_failed", "error": repr(exc)})
        except BackendUnavailable as exc:
            log.warning("limits: the new budget is reconciled later (backend unavailable)",
                        extra={"event": "limits.reconcile_failed", "error": str(exc)})

    async def stop(self) -> None:
        await self.reconciler.stop()
        await self.guard.stop()
        if self.webhooks is not None:
            await self.webhooks.stop()
        await self.rules.stop()
        await self.backend.close()
        await self.engine.dispose()

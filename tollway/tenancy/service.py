"""Tenancy wiring for one gateway process: engine, snapshot cache (and its poller), end-user writer,
authenticator, model guard, BYOK credential source and live price overrides.

:meth:`Tenancy.start_if_enabled` decides at start-up: with a master key configured, or any API key in the
database, key authentication is on; with neither the gateway runs open (local development) and says so.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Mapping
from typing import Any, cast

from sqlalchemy import Table, select
from sqlalchemy.ext.asyncio import AsyncEngine

from tollway.metering.pricing import PriceTable
from tollway.settings import Settings
from tollway.storage.engine import DB_ERRORS, create_engine
from tollway.storage.writer import describe
from tollway.tenancy.auth import KeyAuthenticator, ModelGuard
from tollway.tenancy.cache import TenancyCache
from tollway.tenancy.credentials import TenantCredentials
from tollway.tenancy.crypto import Keyring
from tollway.tenancy.end_users import EndUserRegistry
from tollway.tenancy.models import ApiKey
from tollway.tenancy.snapshot import Snapshot

log = logging.getLogger("tollway.tenancy")

OPEN_MODE_MESSAGE = "open mode: no API keys configured, every request is allowed"
_KEYS = cast(Table, ApiKey.__table__)


def keyring_from(settings: Settings) -> Keyring | None:
    if settings.master_key is None:
        return None
    previous = settings.master_key_previous.get_secret_value() if settings.master_key_previous else ""
    return Keyring.from_secrets(settings.master_key.get_secret_value(), previous)


async def any_key_exists(engine: AsyncEngine) -> bool:
    async with asyncio.timeout(10.0), engine.connect() as connection:
        return (await connection.execute(select(_KEYS.c.id).limit(1))).first() is not None


class PriceOverrides:
    """Applies the admin API's price overrides (over the config file's) whenever they change."""

    def __init__(self, prices: PriceTable, configured: Mapping[str, Mapping[str, object]]) -> None:
        self.prices = prices
        self.configured = {k: dict(v) for k, v in configured.items()}
        self.applied: dict[str, dict[str, Any]] = {}

    def on_snapshot(self, snapshot: Snapshot) -> None:
        if snapshot.price_overrides == self.applied:
            return
        try:
            self.prices.set_overrides({**self.configured, **snapshot.price_overrides})
        except ValueError as exc:
            log.error("price overrides from the database rejected; previous prices kept",
                      extra={"event": "tenancy.price_overrides_invalid", "error": str(exc)})
            return
        self.applied = dict(snapshot.price_overrides)
        log.info("price overrides applied", extra={"event": "tenancy.price_overrides", "count": len(self.applied),
                                                   "version": self.prices.version})


class Tenancy:
    def __init__(self, settings: Settings, engine: AsyncEngine, prices: PriceTable) -> None:
        self.settings = settings
        self.engine = engine
        self.keyring = keyring_from(settings)
        self.cache = TenancyCache(engine, poll_interval_s=settings.tenancy_poll_s, redis_url=settings.redis_url)
        self.end_users = EndUserRegistry(engine)
        self.auth = KeyAuthenticator(self.cache, self.end_users)
        self.model_guard = ModelGuard()
        self.credentials = TenantCredentials(self.keyring)
        configured = {k: v.model_dump(exclude_none=True) for k, v in settings.prices.items()}
        self.price_overrides = PriceOverrides(prices, configured)
        self.cache.subscribe(self.credentials.on_snapshot)
        self.cache.subscribe(self.price_overrides.on_snapshot)

    @classmethod
    async def start_if_enabled(cls, settings: Settings, prices: PriceTable) -> Tenancy | None:
        """A started :class:`Tenancy`, or None (logged) in open mode."""
        keyring_from(settings)  # a malformed master key stops start-up here (ValueError)
        engine = create_engine(settings.database_url, pool_size=3, max_overflow=5)
        enabled = settings.master_key is not None
        if not enabled:
            try:
                enabled = await any_key_exists(engine)
            except DB_ERRORS as exc:
                # Cannot tell whether keys exist: fail closed rather than open the gateway to everyone.
                log.error("tenancy: cannot check for API keys; key authentication stays on",
                          extra={"event": "tenancy.check_failed", "error": describe(exc)})
                enabled = True
        if not enabled:
            await engine.dispose()
            log.warning(OPEN_MODE_MESSAGE, extra={"event": "tenancy.open_mode"})
            return None
        tenancy = cls(settings, engine, prices)
        await tenancy.start()
        return tenancy

    async def start(self) -> None:
        self.end_users.start()
        await self.cache.start()
        log.info("key authentication on", extra={
            "event": "tenancy.enabled", "keys": len(self.cache.snapshot.keys),
            "byok_credentials": len(self.credentials), "poll_interval_s": self.cache.poll_interval_s,
            "redis": bool(self.settings.redis_url)})

    async def stop(self) -> None:
        await self.cache.stop()
        await self.end_users.close()
        await self.engine.dispose()

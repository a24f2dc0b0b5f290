"""The Redis backend: budgets and rate limits shared by every worker and replica.

Every operation is ONE ``EVALSHA`` of a script in :mod:`tollway.limits.redis_scripts` (atomic on the
server, clocked by Redis ``TIME``). Keys are ``tw:{tw}:<kind>:<hex digest>`` — digests of rule id, entity
id and period (see :mod:`tollway.limits.guard`), never a raw id, let alone an API key.

Failures: a Redis error or a timeout (``limits.redis_timeout_s`` for a command; opening a connection may
take a few seconds) raises :class:`BackendUnavailable` and marks Redis down for ``retry_s``; meanwhile
calls fail at once instead of each waiting for the timeout, then one call at a time probes again.
Automatic client retries are off: re-sending an admission whose reply was lost could reserve twice.
Transitions are logged once and failures counted (:attr:`RedisBackend.failures`). At most
``max_connections`` connections per process; a call waits for a free one (a few seconds at most).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence
from decimal import Decimal
from typing import Any

from redis.asyncio import BlockingConnectionPool, Redis
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff
from redis.commands.core import AsyncScript
from redis.exceptions import RedisError

from tollway.limits import redis_scripts as lua
from tollway.limits.backend import (
    AdmitResult,
    BackendUnavailable,
    BudgetEvent,
    BudgetFailure,
    BudgetSettlement,
    BudgetSlot,
    Lease,
    Mode,
    RateFailure,
    RateKind,
    RateSettlement,
    RateSlot,
)
from tollway.limits.money import from_wire, to_wire
from tollway.limits.periods import Window

log = logging.getLogger("tollway.limits")

PREFIX = "tw:{tw}:"
SETTLED_MARKER_MS = 60_000  # settlements are retried for ~8 s


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


def budget_keys(key: str) -> tuple[str, str]:
    return f"{PREFIX}b:{key}", f"{PREFIX}b:{key}:l"


def rate_keys(key: str, kind: RateKind) -> tuple[str, str]:
    if kind == "r":
        return f"{PREFIX}q:{key}", f"{PREFIX}q:{key}"
    if kind == "t":
        return f"{PREFIX}t:{key}", f"{PREFIX}t:{key}:n"
    return f"{PREFIX}c:{key}", f"{PREFIX}c:{key}"


class RedisBackend:
    name = "redis"

    def __init__(self, url: str, timeout_s: float = 0.5, retry_s: float = 1.0, max_connections: int = 64) -> None:
        self.url = url
        self.retry_s = retry_s
        self.failures = 0
        self.down = False
        self._down_until = 0.0
        self._probing = False
        wait_s = max(2.0, timeout_s * 4)  # for a free pooled connection, and to open a new one
        pool = BlockingConnectionPool.from_url(url, max_connections=max_connections, timeout=wait_s,
                                               socket_timeout=timeout_s, socket_connect_timeout=wait_s,
                                               retry=Retry(NoBackoff(), 0), health_check_interval=0)
        self._redis: Redis = Redis(connection_pool=pool)
        self._admit = self._redis.register_script(lua.ADMIT)
        self._settle = self._redis.register_script(lua.SETTLE)
        self._renew = self._redis.register_script(lua.RENEW)
        self._budget_state = self._redis.register_script(lua.BUDGET_STATE)
        self._rate_state = self._redis.register_script(lua.RATE_STATE)
        self._raise = self._redis.register_script(lua.RAISE)

    async def _call(self, script: AsyncScript, keys: Sequence[str], args: Sequence[str | int]) -> Any:
        probing = False
        if self.down:  # one call at a time probes; the others fail at once instead of waiting on a timeout
            if self._probing or time.monotonic() < self._down_until:
                raise BackendUnavailable("redis is marked down; retrying shortly")
            self._probing = probing = True
        try:
            reply = await script(keys=list(keys), args=list(args))
        except (RedisError, OSError, TimeoutError) as exc:
            self.failures += 1
            self._down_until = time.monotonic() + self.retry_s
            if not self.down:
                self.down = True
                log.error("limits: redis is unreachable; the failure policy applies",
                          extra={"event": "limits.redis_down", "error": repr(exc)})
            raise BackendUnavailable(repr(exc)) from exc
        finally:
            if probing:
                self._probing = False
        if self.down:
            self.down = False
            log.info("limits: redis is reachable again", extra={"event": "limits.redis_up"})
        return reply

    # ---- admission -------------------------------------------------------------------------------

    async def admit(self, lease_id: str, budgets: list[BudgetSlot], rates: list[RateSlot], lease_ms: int,
                    mode: Mode) -> AdmitResult:
        keys: list[str] = []
        args: list[str | int] = [lease_id, lease_ms, mode, len(budgets), len(rates)]
        for b in budgets:
            keys.extend(budget_keys(b.key))
            args.extend((to_wire(b.limit), to_wire(b.amount), b.window.start_ms, b.window.end_ms,
                         b.window.expire_at_ms))
        for r in rates:
            keys.extend(rate_keys(r.key, r.kind))
            args.extend((r.kind, r.limit, r.cost, r.window_ms))
        reply = await self._call(self._admit, keys, args)
        try:
            return self._parse_admit(reply)
        except (ValueError, IndexError, TypeError) as exc:
            raise BackendUnavailable(f"unexpected reply from the admit script: {exc}") from exc

    @staticmethod
    def _parse_admit(reply: list[Any]) -> AdmitResult:
        status, now_ms = _text(reply[0]), int(reply[1])
        if status == "period":
            return AdmitResult(False, now_ms, period_mismatch=True)
        if status == "ok":
            result = AdmitResult(True, now_ms)
            for item in reply[2:]:
                text = _text(item)
                if "|" in text:
                    spent, reserved = text.split("|")
                    result.budgets.append((from_wire(spent), from_wire(reserved)))
                else:
                    result.rates.append(int(text))
            return result
        result = AdmitResult(False, now_ms)
        for item in reply[2:]:
            parts = _text(item).split("|")
            if parts[0] == "b":
                result.budget_failures.append(BudgetFailure(int(parts[1]) - 1, from_wire(parts[2]),
                                                            from_wire(parts[3]), parts[4] == "1"))
            elif parts[0] == "u":
                result.rates.append(int(parts[2]))
            else:
                result.rate_failures.append(RateFailure(int(parts[1]) - 1, int(parts[2]), int(parts[3])))
        return result

    # ---- settlement ------------------------------------------------------------------------------

    async def settle(self, lease_id: str, budgets: list[BudgetSettlement],
                     rates: list[RateSettlement]) -> list[BudgetEvent] | None:
        keys = [f"{PREFIX}s:{lease_id}"]
        args: list[str | int] = [lease_id, SETTLED_MARKER_MS, len(budgets), len(rates)]
        for b in budgets:
            keys.extend((*budget_keys(b.reserve_key), budget_keys(b.spend_key)[0]))
            args.extend((to_wire(b.actual), b.spend_window.expire_at_ms,
                         "" if b.alert_at is None else to_wire(b.alert_at), to_wire(b.limit)))
        for r in rates:
            keys.extend(rate_keys(r.key, r.kind))
            args.extend((r.kind, max(r.tokens, 0)))
        reply = await self._call(self._settle, keys, args)
        if _text(reply[0]) == "dup":
            return None
        events: list[BudgetEvent] = []
        for item in reply[1:]:
            kind, index, spent = _text(item).split("|")
            events.append(BudgetEvent(int(index) - 1, "threshold" if kind == "threshold" else "exhausted",
                                      from_wire(spent)))
        return events

    async def renew(self, leases: list[Lease], lease_ms: int) -> None:
        if not leases:
            return
        keys = [budget_keys(x.key)[1] if x.kind == "b" else rate_keys(x.key, "c")[0] for x in leases]
        await self._call(self._renew, keys, [lease_ms, *(v for x in leases for v in (x.lease_id, x.kind))])

    # ---- status and reconciliation -----------------------------------------------------------------

    async def budget_state(self, key: str) -> tuple[Decimal, Decimal]:
        spent, reserved = await self._call(self._budget_state, budget_keys(key), [])
        return from_wire(spent), from_wire(reserved)

    async def rate_state(self, key: str, kind: RateKind, window_ms: int = 60_000) -> int:
        return int(await self._call(self._rate_state, rate_keys(key, kind), [kind, window_ms]))

    async def raise_spent(self, key: str, amount: Decimal, window: Window) -> Decimal | None:
        old = await self._call(self._raise, budget_keys(key)[:1], [to_wire(amount), window.expire_at_ms])
        return None if old is None else from_wire(old)

    async def try_lock(self, name: str, ttl_s: float) -> bool:
        if self.down and time.monotonic() < self._down_until:
            return False
        try:
            return bool(await self._redis.set(f"{PREFIX}lock:{name}", b"1", nx=True, px=int(ttl_s * 1000)))
        except (RedisError, OSError, TimeoutError):
            return False

    async def ping(self) -> bool:
        try:
            return bool(await self._redis.ping())
        except (RedisError, OSError, TimeoutError):
            return False

    async def close(self) -> None:
        await self._redis.aclose(close_connection_pool=True)

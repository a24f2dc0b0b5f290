"""Budget webhooks: a signed POST to ``limits.webhook_url`` when a budget crosses its alert threshold or is
exhausted — once per budget period across every process (the backend's once-only flags decide who sends).

Delivery is in the background, never on the request path: :meth:`Webhooks.emit` only enqueues (a full
queue drops the event, logged and counted). Each event is tried up to ``attempts`` times with exponential
backoff on a network error, a timeout, 408, 429 or 5xx; any other answer ends it.

Signature (``limits.webhook_secret``): header ``x-tollway-signature: t=<unix seconds>,v1=<hex>`` where
``hex = HMAC-SHA256(secret, "<t>." + body)``; :func:`verify` checks one. ``x-tollway-event`` carries the
event type and ``x-tollway-event-id`` its id (the same on every retry, for de-duplication).
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import hmac
import logging
import secrets
import time
from typing import Any

import aiohttp
import orjson

log = logging.getLogger("tollway.limits")

SIGNATURE_HEADER = "x-tollway-signature"
RETRY_STATUSES = frozenset({408, 429})


def sign(secret: bytes, timestamp: int, body: bytes) -> str:
    digest = hmac.new(secret, str(timestamp).encode() + b"." + body, hashlib.sha256).hexdigest()
    return f"t={timestamp},v1={digest}"


def verify(secret: bytes, header: str, body: bytes, tolerance_s: float = 300.0, now: float | None = None) -> bool:
    """True when ``header`` is a valid signature of ``body`` made within ``tolerance_s``."""
    fields = dict(part.split("=", 1) for part in header.split(",") if "=" in part)
    try:
        timestamp = int(fields["t"])
    except (KeyError, ValueError):
        return False
    if abs((time.time() if now is None else now) - timestamp) > tolerance_s:
        return False
    expected = sign(secret, timestamp, body).split("v1=", 1)[1]
    return hmac.compare_digest(expected, fields.get("v1", ""))


class Webhooks:
    def __init__(self, url: str, secret: bytes | None, *, attempts: int = 6, base_delay_s: float = 0.5,
                 timeout_s: float = 10.0, max_queue: int = 10_000, workers: int = 4) -> None:
        self.url = url
        self.secret = secret
        self.attempts = attempts
        self.base_delay_s = base_delay_s
        self.timeout_s = timeout_s
        self.workers = workers
        self.delivered = 0
        self.failed = 0
        self.dropped = 0
        self._queue: asyncio.Queue[dict[str, Any]] = asyncio.Queue(max_queue)
        self._tasks: list[asyncio.Task[None]] = []
        self._session: aiohttp.ClientSession | None = None

    def start(self) -> None:
        if self.secret is None:
            log.warning("limits: webhooks are sent unsigned (set limits.webhook_secret)",
                        extra={"event": "limits.webhook_unsigned"})
        self._session = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=self.timeout_s))
        loop = asyncio.get_running_loop()
        self._tasks = [loop.create_task(self._run(), name=f"limits-webhook-{i}") for i in range(self.workers)]

    def emit(self, kind: str, data: dict[str, Any]) -> None:
        event = {"id": "evt_" + secrets.token_hex(12), "type": kind, "created_at": int(time.time()), "data": data}
        try:
            self._queue.put_nowait(event)
        except asyncio.QueueFull:
            self.dropped += 1
            log.error("limits: webhook queue full; event dropped",
                      extra={"event": "limits.webhook_dropped", "type": kind})

    async def stop(self, timeout: float = 5.0) -> None:
        """Deliver what is queued for up to ``timeout`` seconds, then stop."""
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(timeout):
                await self._queue.join()
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self._tasks.clear()
        if self._session is not None:
            await self._session.close()
            self._session = None

    async def _run(self) -> None:
        while True:
            event = await self._queue.get()
            try:
                await self._deliver(event)
            finally:
                self._queue.task_done()

    async def _deliver(self, event: dict[str, Any]) -> None:
        assert self._session is not None
        body = orjson.dumps(event)
        delay = self.base_delay_s
        outcome = ""
        for attempt in range(1, self.attempts + 1):
            headers = {"content-type": "application/json", "x-tollway-event": event["type"],
                       "x-tollway-event-id": event["id"]}
            if self.secret is not None:
                headers[SIGNATURE_HEADER] = sign(self.secret, int(time.time()), body)
            try:
                async with self._session.post(self.url, data=body, headers=headers) as response:
                    status = response.status
                    await response.read()
            except (aiohttp.ClientError, TimeoutError, OSError) as exc:
                outcome = repr(exc)
            else:
                if 200 <= status < 300:
                    self.delivered += 1
                    return
                outcome = f"HTTP {status}"
                if status < 500 and status not in RETRY_STATUSES:
                    break
            if attempt < self.attempts:
                await asyncio.sleep(delay)
                delay *= 2
        self.failed += 1
        log.error("limits: webhook not delivered", extra={"event": "limits.webhook_failed", "type": event["type"],
                                                          "id": event["id"], "error": outcome})

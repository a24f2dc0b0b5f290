"""The one seam for upstream I/O: a pooled aiohttp session shared by every provider.

Adapters build :class:`UpstreamRequest` objects and parse bytes; this module sends them, frames
streams (SSE or NDJSON) and maps transport failures to gateway errors: connection refused → 502
naming the provider, timeouts → 504.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from dataclasses import dataclass

import aiohttp

from tollway.core.errors import GatewayError, upstream_error
from tollway.providers.base import Adapter, UpstreamRequest
from tollway.providers.framing import Event, decoder_for

log = logging.getLogger("tollway.upstream")


@dataclass(slots=True)
class UpstreamReply:
    status: int
    body: bytes


def _transport_error(provider: str, exc: BaseException) -> GatewayError:
    if isinstance(exc, asyncio.TimeoutError | aiohttp.ServerTimeoutError):
        return GatewayError(504, f"{provider}: upstream timed out", type="server_error", code="upstream_timeout")
    if isinstance(exc, aiohttp.ClientConnectorError):
        return GatewayError(502, f"{provider}: cannot connect to provider ({exc.os_error.strerror or exc})",
                            type="server_error", code="upstream_connection_failed")
    return GatewayError(502, f"{provider}: upstream connection failed ({type(exc).__name__})",
                        type="server_error", code="upstream_connection_failed")


class UpstreamClient:
    def __init__(self, connect_timeout: float, read_timeout: float, total_timeout: float) -> None:
        self._timeout = aiohttp.ClientTimeout(total=total_timeout, sock_connect=connect_timeout,
                                              sock_read=read_timeout)
        self._session: aiohttp.ClientSession | None = None

    async def start(self) -> None:
        connector = aiohttp.TCPConnector(limit=0, limit_per_host=0, ttl_dns_cache=300, keepalive_timeout=60)
        self._session = aiohttp.ClientSession(
            connector=connector, timeout=self._timeout, auto_decompress=True, skip_auto_headers=("User-Agent",)
        )

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None

    @property
    def session(self) -> aiohttp.ClientSession:
        if self._session is None:
            raise RuntimeError("UpstreamClient.start() was not awaited")
        return self._session

    async def send(self, req: UpstreamRequest, provider: str, adapter: Adapter) -> bytes:
        """Send a non-streaming request; return the 2xx body or raise the mapped GatewayError."""
        try:
            async with self.session.request(req.method, req.url, data=req.body, headers=req.headers) as resp:
                body = await resp.read()
                if resp.status >= 400:
                    raise self._http_error(provider, adapter, resp.status, body, resp.headers.get("retry-after"))
                return body
        except (TimeoutError, aiohttp.ClientError) as exc:
            raise _transport_error(provider, exc) from exc

    def _http_error(
        self, provider: str, adapter: Adapter, status: int, body: bytes, retry_after: str | None
    ) -> GatewayError:
        message, code = adapter.error_message(body)
        log.info("upstream error", extra={"provider": provider, "status": status, "code": code})
        return upstream_error(provider, status, message, code=code, retry_after=retry_after)

    async def open_stream(self, req: UpstreamRequest, provider: str, adapter: Adapter) -> UpstreamStream:
        """Open a streaming request. Errors before the first byte raise the mapped GatewayError, so the
        door can still answer with a proper HTTP status."""
        try:
            resp = await self.session.request(req.method, req.url, data=req.body, headers=req.headers)
        except (TimeoutError, aiohttp.ClientError) as exc:
            raise _transport_error(provider, exc) from exc
        if resp.status >= 400:
            try:
                body = await resp.read()
            except (TimeoutError, aiohttp.ClientError) as exc:
                raise _transport_error(provider, exc) from exc
            finally:
                resp.release()
            raise self._http_error(provider, adapter, resp.status, body, resp.headers.get("retry-after"))
        return UpstreamStream(resp, provider, req.stream_format)


class UpstreamStream:
    """An open upstream stream, framed into events by the decoder for its format."""

    def __init__(self, resp: aiohttp.ClientResponse, provider: str, fmt: str) -> None:
        self._resp = resp
        self._provider = provider
        self._decoder = decoder_for(fmt, provider)

    async def batches(self) -> AsyncIterator[list[Event]]:
        """The events of each network read, as one batch (never empty), then whatever the end flushes."""
        decoder = self._decoder
        try:
            async for chunk in self._resp.content.iter_any():
                events = decoder.feed(chunk)
                if events:
                    yield events
        except (TimeoutError, aiohttp.ClientError) as exc:
            raise _transport_error(self._provider, exc) from exc
        rest = decoder.end()
        if rest:
            yield rest

    def close(self) -> None:
        self._resp.close()

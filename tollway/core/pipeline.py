"""The one request pipeline both doors run:

parse (door) → resolve model → load conversation (previous_response_id) → adapter builds the upstream
request → shared client → adapter parses the response or stream → meter → enrich → door serialises.

Later capabilities (tenancy, budgets, cache, compression) plug in as steps of :meth:`Pipeline.prepare`
and :meth:`Pipeline.finish`; the doors never talk to providers themselves.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator, Callable, Coroutine, Sequence
from dataclasses import dataclass, field
from typing import Any

import orjson

from tollway.core.assembler import OutputAssembler, assign_ids
from tollway.core.context import ExchangeRecord, RequestContext
from tollway.core.enrich import Timings, tollway_block
from tollway.core.errors import GatewayError
from tollway.core.ids import ordered_hex
from tollway.core.routing import ModelResolver, Route
from tollway.core.steps import CredentialSource, Guard, Recorder
from tollway.core.types import (
    CanonicalRequest,
    CanonicalResponse,
    Delta,
    Fidelity,
    Item,
    StreamError,
    ToolCallStart,
    Usage,
)
from tollway.metering.cost import CostBreakdown, compute_cost
from tollway.metering.pricing import PriceTable
from tollway.providers.base import UpstreamRequest
from tollway.providers.client import UpstreamClient, UpstreamStream
from tollway.storage.responses import ResponseStore

log = logging.getLogger("tollway.pipeline")


@dataclass(slots=True)
class Prepared:
    """Everything decided before the upstream call."""

    req: CanonicalRequest
    route: Route
    upstream: UpstreamRequest
    fidelity: Fidelity
    ctx: RequestContext
    response_id: str
    created_at: int
    timings: Timings
    turn_input: list[Item]  # this turn's input items, with ids (stored for input_items)


@dataclass(slots=True)
class Outcome:
    """A finished exchange, metered and enriched."""

    response: CanonicalResponse
    cost: CostBreakdown
    tollway: dict[str, Any]
    model: str
    extra: dict[str, Any] = field(default_factory=dict)


def _check_tool_outputs(items: list[Item]) -> None:
    """A function_call_output must answer an earlier function_call (checked by the gateway itself)."""
    calls: set[str] = set()
    for i, item in enumerate(items):
        kind = item.get("type")
        if kind == "function_call":
            calls.add(item["call_id"])
        elif kind == "function_call_output" and item["call_id"] not in calls:
            raise GatewayError(
                400,
                f"No tool call found for function call output with call_id {item['call_id']!r}.",
                param=f"input[{i}].call_id" if i < len(items) else "input",
                code="invalid_value",
            )


def _check_allowed(req: CanonicalRequest, name: str) -> None:
    allowed = req.tool_choice.allowed
    if (allowed is not None and name not in allowed) or req.tool_choice.mode == "none":
        raise GatewayError(
            502,
            f"the model called tool {name!r}, which tool_choice does not allow; the call was refused",
            type="server_error",
            code="tool_choice_violation",
        )


class Pipeline:
    def __init__(
        self,
        resolver: ModelResolver,
        client: UpstreamClient,
        prices: PriceTable,
        store: ResponseStore,
        strict: bool = False,
        *,
        guards: Sequence[Guard] = (),
        recorders: Sequence[Recorder] = (),
        credentials: CredentialSource | None = None,
    ) -> None:
        self.resolver = resolver
        self.client = client
        self.prices = prices
        self.store = store
        self.strict = strict
        self.guards = list(guards)
        self.recorders = list(recorders)
        self.credentials = credentials
        self._tasks: set[asyncio.Task[None]] = set()

    async def prepare(self, req: CanonicalRequest, ctx: RequestContext) -> Prepared:
        ctx.model = req.model
        ctx.streaming = req.stream
        route = self.resolver.resolve(req.model)
        if self.credentials is not None:
            settings = self.credentials.provider_settings(ctx, route.provider)
            if settings is not route.provider:
                route = Route(settings, route.adapter, route.model)
        ctx.provider = route.provider.name
        ctx.upstream_model = route.model
        if req.store and not self.store.has_capacity():
            raise GatewayError(503, "response storage is unavailable and its backlog is full; retry later or send "
                               "store: false", type="server_error", code="storage_unavailable")
        turn_input = assign_ids(req.input)
        if req.previous_response_id is not None:
            history = await self.store.conversation_items(req.previous_response_id)
            if history is None:
                raise GatewayError(
                    404,
                    f"Previous response with id '{req.previous_response_id}' not found.",
                    type="not_found",
                    code="previous_response_not_found",
                    param="previous_response_id",
                )
            req.input = [*history, *turn_input]
        _check_tool_outputs(req.input)
        fidelity = Fidelity()
        for name in req.extra:
            fidelity.dropped.append(name)
        upstream = route.adapter.build_request(req, route.model, route.provider, fidelity)
        if (ctx.strict or self.strict) and (fidelity.dropped or fidelity.approximated):
            fields = [*fidelity.dropped, *fidelity.approximated]
            raise GatewayError(
                400,
                f"strict mode: provider {route.provider.name!r} cannot honour: {', '.join(fields)}",
                code="fidelity_strict",
                param=fields[0],
            )
        for guard in self.guards:
            if await guard.admit(ctx, req, route):
                ctx.extra.setdefault("admitted", []).append(guard)
        return Prepared(
            req=req,
            route=route,
            upstream=upstream,
            fidelity=fidelity,
            ctx=ctx,
            response_id="resp_" + ordered_hex(12),  # keys the response store: time-ordered
            created_at=int(time.time()),
            timings=Timings(started=ctx.started),
            turn_input=turn_input,
        )

    async def complete(self, p: Prepared) -> Outcome:
        p.timings.upstream_started = time.perf_counter()
        body = await self.client.send(p.upstream, p.route.provider.name, p.route.adapter)
        p.timings.upstream_ended = time.perf_counter()
        try:
            response = p.route.adapter.parse_response(body)
        except (ValueError, KeyError, TypeError, orjson.JSONDecodeError) as exc:
            raise GatewayError(502, f"{p.route.provider.name}: could not parse the provider's response ({exc})",
                               type="server_error", code="upstream_invalid_response") from exc
        for item in response.output:
            if item.get("type") == "function_call":
                _check_allowed(p.req, item["name"])
        assign_ids(response.output)
        return self.finish(p, response)

    async def open_stream(self, p: Prepared) -> StreamRun:
        p.timings.upstream_started = time.perf_counter()
        upstream = await self.client.open_stream(p.upstream, p.route.provider.name, p.route.adapter)
        return StreamRun(self, p, upstream)

    def finish(
        self,
        p: Prepared,
        response: CanonicalResponse,
        *,
        status: str | None = None,
        http_status: int = 200,
        error_code: str | None = None,
    ) -> Outcome:
        """Meter, enrich and record a finished exchange (completed, incomplete, failed mid-stream or cut by
        a client disconnect: ``status`` overrides the response's own for the record)."""
        usage = response.usage
        price = self.prices.lookup(p.route.provider.name, p.route.model)
        cost = compute_cost(price, usage or Usage(), self.prices.version)
        p.timings.ended = time.perf_counter()
        if not p.timings.upstream_ended:
            p.timings.upstream_ended = p.timings.ended
        model = response.upstream_model or p.route.model
        p.ctx.upstream_model = model
        self._emit(p.ctx, status or response.status, http_status, error_code, usage, cost, p.timings)
        block = tollway_block(
            ctx=p.ctx,
            provider=p.route.provider.name,
            model=model,
            timings=p.timings,
            cost=cost,
            output=response.output,
            usage=usage,
            incomplete_reason=response.incomplete_reason,
            fidelity=p.fidelity,
        )
        return Outcome(response=response, cost=cost, tollway=block, model=model)

    def fail(self, ctx: RequestContext, err: GatewayError) -> None:
        """Record an exchange that ended in an error response (refused, invalid, or the provider failed
        before any output). Idempotent: a context records once."""
        if ctx.recorded:
            return
        timings = Timings(started=ctx.started, ended=time.perf_counter())
        self._emit(ctx, "error", err.status, err.code or err.type, None, None, timings)

    def _emit(
        self,
        ctx: RequestContext,
        status: str,
        http_status: int,
        error_code: str | None,
        usage: Usage | None,
        cost: CostBreakdown | None,
        timings: Timings,
    ) -> None:
        if ctx.recorded:
            return
        ctx.recorded = True
        if not self.recorders and not ctx.extra.get("admitted"):
            return
        record = ExchangeRecord(
            request_id=ctx.request_id,
            created_at=time.time(),
            principal=ctx.principal,
            end_user_id=ctx.end_user_id,
            end_user_external_id=ctx.end_user_external_id,
            door=ctx.door,
            model=ctx.model,
            provider=ctx.provider,
            upstream_model=ctx.upstream_model,
            streaming=ctx.streaming,
            status=status,
            http_status=http_status,
            error_code=error_code,
            usage=usage or Usage(),
            cost=cost,
            latency_ms=timings.latency_ms,
            overhead_ms=timings.overhead_ms,
            tags=ctx.tags,
        )
        for recorder in self.recorders:
            recorder.record(record)
        for guard in ctx.extra.pop("admitted", ()):
            self._spawn(guard.settle(ctx, record))

    def _spawn(self, coro: Coroutine[object, object, None]) -> None:
        task = asyncio.get_running_loop().create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def drain(self) -> None:
        """Wait for pending settlements (shutdown)."""
        while self._tasks:
            await asyncio.gather(*list(self._tasks), return_exceptions=True)

    def remember(self, p: Prepared, outcome: Outcome, resource: dict[str, Any]) -> None:
        """Persist a finished response for previous_response_id (non-blocking)."""
        if not p.req.store:
            return
        try:
            self.store.save(
                p.response_id,
                created_at=p.created_at,
                model=outcome.model,
                status=outcome.response.status,
                previous_response_id=p.req.previous_response_id,
                input_items=p.turn_input,
                output_items=outcome.response.output,
                resource=resource,
            )
        except (GatewayError, TypeError) as exc:  # backlog filled since prepare(), or an unencodable value
            log.error("response not stored", extra={"request_id": p.ctx.request_id, "response_id": p.response_id,
                                                    "error": str(exc)})


class StreamRun:
    """One upstream stream: yields provider deltas (already applied to ``assembler``)."""

    def __init__(self, pipeline: Pipeline, prepared: Prepared, upstream: UpstreamStream) -> None:
        self.pipeline = pipeline
        self.prepared = prepared
        self.upstream = upstream
        self.assembler = OutputAssembler()
        self.parser = prepared.route.adapter.stream_parser(prepared.req)

    async def frames(self, encode: Callable[[Delta], bytes]) -> AsyncIterator[bytes]:
        """Relay the stream: every delta is applied to the assembler and encoded by the door's ``encode``
        right away (encoders read the assembler's state as of that delta); the frames of one upstream
        network read are yielded together so the door writes them in one send. Raises GatewayError for an
        upstream failure or a provider error event, after yielding what came before it."""
        apply = self.assembler.apply
        feed = self.parser.feed
        req = self.prepared.req
        provider = self.prepared.route.provider.name
        out: list[bytes] = []

        def relay(deltas: list[Delta]) -> None:
            for d in deltas:
                if isinstance(d, ToolCallStart):
                    _check_allowed(req, d.name)
                apply(d)
                if isinstance(d, StreamError):
                    raise GatewayError(502, f"{provider}: {d.message}", type=d.type, code=d.code)
                frame = encode(d)
                if frame:
                    out.append(frame)

        try:
            async for events in self.upstream.batches():
                for event, data in events:
                    try:
                        deltas = feed(event, data)
                    except (ValueError, KeyError, TypeError, orjson.JSONDecodeError) as exc:
                        raise GatewayError(502, f"{provider}: malformed stream event ({exc})",
                                           type="server_error", code="upstream_invalid_response") from exc
                    relay(deltas)
                if out:
                    yield b"".join(out)
                    out.clear()
            relay(self.parser.close())
            if out:
                yield b"".join(out)
        except GatewayError:
            if out:  # what arrived before the failure still reaches the client, then the error
                yield b"".join(out)
            raise
        finally:
            self.prepared.timings.upstream_ended = time.perf_counter()
            self.upstream.close()

    def outcome(self, error: GatewayError | None = None, disconnected: bool = False) -> Outcome:
        """The stream's final state: completed/incomplete, failed by ``error``, or cut by the client."""
        response = self.assembler.result()
        if error is not None:
            response.status = "failed"
            return self.pipeline.finish(self.prepared, response, status="failed", error_code=error.code or error.type)
        if disconnected:
            return self.pipeline.finish(self.prepared, response, status="client_disconnected", http_status=499,
                                        error_code="client_disconnected")
        return self.pipeline.finish(self.prepared, response)

    def close(self) -> None:
        self.upstream.close()

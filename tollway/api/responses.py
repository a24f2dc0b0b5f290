"""``/v1/responses`` endpoints: create (JSON and SSE), retrieve, delete, list input items."""

from __future__ import annotations

import time
from typing import Any

from tollway.api.context import response_headers
from tollway.api.http import Request, read_json, send_chunk, send_json, start_stream
from tollway.api.responses_request import parse_responses_request
from tollway.api.responses_resource import ENCRYPTED_INCLUDE, build_resource, usage_json
from tollway.api.responses_stream import ResponsesStreamEncoder
from tollway.api.streaming import run_stream
from tollway.core.errors import GatewayError
from tollway.core.pipeline import Outcome, Prepared
from tollway.metering.cost import decimal_json
from tollway.runtime import Runtime


def _final_resource(p: Prepared, outcome: Outcome, error: dict[str, Any] | None = None) -> dict[str, Any]:
    r = outcome.response
    cost = decimal_json(outcome.cost.total_usd) if outcome.cost.total_usd is not None else None
    return build_resource(
        p.req,
        response_id=p.response_id,
        created_at=p.created_at,
        completed_at=int(time.time()) if r.status == "completed" else None,
        status=r.status,
        model=outcome.model,
        output=r.output,
        usage=usage_json(r.usage, cost),
        incomplete_reason=r.incomplete_reason,
        error=error,
        tollway=outcome.tollway,
    )


def enrichment_headers(outcome: Outcome) -> list[tuple[bytes, bytes]]:
    t = outcome.tollway
    total = outcome.cost.total_usd
    return [
        (b"x-tollway-provider", t["provider"].encode()),
        (b"x-tollway-cost-usd", format(total, "f").encode() if total is not None else b"unpriced"),
        (b"x-tollway-overhead-ms", f"{t['overhead_ms']:.3f}".encode()),
    ]


async def create_response(rt: Runtime, req: Request) -> None:
    body = await read_json(req, rt.settings.max_body_bytes)
    creq = parse_responses_request(body)
    ctx = req.ctx
    assert ctx is not None
    if ctx.end_user_external_id is None:
        ctx.end_user_external_id = creq.user
    if rt.auth is not None and (ctx.end_user_external_id or ctx.principal is not None):
        await rt.auth.resolve_end_user(ctx)
    p = await rt.pipeline.prepare(creq, ctx)
    if not creq.stream:
        outcome = await rt.pipeline.complete(p)
        resource = _final_resource(p, outcome)
        rt.pipeline.remember(p, outcome, resource)
        await send_json(req.send, 200, resource, enrichment_headers(outcome) + response_headers(ctx))
        return
    run = await rt.pipeline.open_stream(p)
    enc = ResponsesStreamEncoder(run.assembler, ENCRYPTED_INCLUDE in creq.include)
    snapshot = build_resource(creq, response_id=p.response_id, created_at=p.created_at, completed_at=None,
                              status="in_progress", model=p.route.model, output=[], usage=None)

    def on_finish(outcome: Outcome) -> bytes:
        final = _final_resource(p, outcome)
        rt.pipeline.remember(p, outcome, final)
        return enc.finish(final)

    def on_error(err: GatewayError, outcome: Outcome) -> bytes:
        failed = _final_resource(p, outcome, {"code": err.code or err.type, "message": err.message})
        return enc.error(err, failed)

    await start_stream(req.send, response_headers(ctx))
    await send_chunk(req.send, enc.start(snapshot))
    await run_stream(req, run, enc.feed, on_finish, on_error)


async def _stored(rt: Runtime, req: Request) -> Any:
    stored = await rt.store.get(req.params["id"])
    if stored is None:
        raise GatewayError(404, f"Response with id '{req.params['id']}' not found.", type="not_found",
                           code="response_not_found", param="response_id")
    return stored


async def get_response(rt: Runtime, req: Request) -> None:
    stored = await _stored(rt, req)
    await send_json(req.send, 200, stored.resource)


async def delete_response(rt: Runtime, req: Request) -> None:
    rid = req.params["id"]
    if not await rt.store.delete(rid):
        raise GatewayError(404, f"Response with id '{rid}' not found.", type="not_found",
                           code="response_not_found", param="response_id")
    await send_json(req.send, 200, {"id": rid, "object": "response.deleted", "deleted": True})


async def list_input_items(rt: Runtime, req: Request) -> None:
    await _stored(rt, req)
    q = req.query()
    limit_raw = q.get("limit", "20")
    if not limit_raw.isdigit() or not 1 <= int(limit_raw) <= 100:
        raise GatewayError(400, "Invalid 'limit': expected an integer between 1 and 100.", param="limit",
                           code="invalid_value")
    order = q.get("order", "desc")
    if order not in ("asc", "desc"):
        raise GatewayError(400, "Invalid 'order': expected 'asc' or 'desc'.", param="order", code="invalid_value")
    items, has_more = await rt.store.input_items(req.params["id"], limit=int(limit_raw), order=order,
                                                 after=q.get("after"))
    await send_json(req.send, 200, {
        "object": "list",
        "data": items,
        "first_id": items[0]["id"] if items else None,
        "last_id": items[-1]["id"] if items else None,
        "has_more": has_more,
    })

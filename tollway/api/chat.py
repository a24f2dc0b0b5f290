"""``POST /v1/chat/completions``: translated to the canonical model at the door, never the pivot."""

from __future__ import annotations

from typing import Any

from tollway.api.chat_request import parse_chat_request
from tollway.api.chat_response import chat_completion_json
from tollway.api.chat_stream import ChatStreamEncoder
from tollway.api.context import response_headers
from tollway.api.http import Request, read_json, send_json, start_stream
from tollway.api.responses import enrichment_headers
from tollway.api.streaming import run_stream
from tollway.core.errors import GatewayError
from tollway.core.pipeline import Outcome
from tollway.metering.cost import decimal_json
from tollway.runtime import Runtime


def _cost(outcome: Outcome) -> Any:
    total = outcome.cost.total_usd
    return decimal_json(total) if total is not None else None


async def create_chat_completion(rt: Runtime, req: Request) -> None:
    body = await read_json(req, rt.settings.max_body_bytes)
    creq = parse_chat_request(body)
    stream_options = creq.extra.pop("stream_options", None)
    include_usage = isinstance(stream_options, dict) and stream_options.get("include_usage") is True
    ctx = req.ctx
    assert ctx is not None
    if ctx.end_user_external_id is None:
        ctx.end_user_external_id = creq.user
    if rt.auth is not None and (ctx.end_user_external_id or ctx.principal is not None):
        await rt.auth.resolve_end_user(ctx)
    p = await rt.pipeline.prepare(creq, ctx)
    completion_id = "chatcmpl-" + p.response_id.removeprefix("resp_")
    if not creq.stream:
        outcome = await rt.pipeline.complete(p)
        payload = chat_completion_json(outcome.response, completion_id=completion_id, created=p.created_at,
                                       model=outcome.model, cost_usd=_cost(outcome), tollway=outcome.tollway)
        await send_json(req.send, 200, payload, enrichment_headers(outcome) + response_headers(ctx))
        return
    run = await rt.pipeline.open_stream(p)
    enc = ChatStreamEncoder(completion_id, p.created_at, p.route.model, include_usage)

    def on_finish(outcome: Outcome) -> bytes:
        r = outcome.response
        return enc.finish(r.status, r.incomplete_reason, r.usage, _cost(outcome), outcome.tollway)

    def on_error(err: GatewayError, outcome: Outcome) -> bytes:
        return enc.error(err)

    await start_stream(req.send, response_headers(ctx))
    await run_stream(req, run, enc.feed, on_finish, on_error)

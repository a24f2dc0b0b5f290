"""The mock upstream provider as an aiohttp application: routes, faults and the streaming plumbing.

Routes: ``POST /v1/responses`` (OpenAI Responses), ``POST /v1/chat/completions`` (OpenAI Chat),
``POST /v1/messages`` (Anthropic Messages), ``GET /v1/models`` (OpenAI list shape; Anthropic's when the
request carries ``anthropic-version``) and ``GET /health``.

Faults (``x-mock-scenario: fault=...`` or ``[mock:fault=...]`` in the last user text): ``429`` (with
``retry-after: 2``), ``500``, ``529`` (Anthropic ``overloaded_error``; 503 on the OpenAI routes),
``400`` (names ``param``, default the route's messages/input field), ``401``, ``slow_first_byte``
(sleep ``delay_ms``, default 1 s, before the status line), ``disconnect`` (half the content deltas,
then the connection is aborted; a JSON body is cut in half), ``malformed`` (an invalid JSON body /
an unparseable SSE data line, then the stream ends) and ``stream_error`` (half the deltas, then the
provider's in-stream error event; a 500 for non-streaming requests).
"""

from __future__ import annotations

import asyncio
from typing import Any

import orjson
from aiohttp import web
from aiohttp.typedefs import Handler

from tollway.mock import anthropic, bedrock, gemini, huggingface, mistral, ollama, openai_chat, openai_responses
from tollway.mock.scenario import MockDefaults, RequestInvalid, Script, make_script
from tollway.mock.wire import ErrorKind, StreamPlan, Wire

__all__ = ["MockDefaults", "bound_port", "create_app", "run", "start"]

_JSON_HEADERS = {"Content-Type": "application/json"}
_SSE_HEADERS = {"Content-Type": "text/event-stream; charset=utf-8", "Cache-Control": "no-cache"}
_HTTP_FAULTS: dict[str, ErrorKind] = {
    "400": "invalid",
    "401": "auth",
    "403": "forbidden",
    "404": "not_found",
    "429": "rate_limit",
    "500": "server",
    "529": "overloaded",
}
_MAX_BODY = 64 * 1024 * 1024
_MEMO_MAX_BODY = 16 * 1024
_MEMO_ENTRIES = 512


def _error_response(
    wire: Wire, kind: ErrorKind, message: str | None, param: str | None, code: str | None
) -> web.Response:
    status, body = wire.error(kind, message, param, code)
    headers = dict(_JSON_HEADERS)
    if wire.error_headers is not None:
        headers.update(wire.error_headers(kind, code))
    if kind == "rate_limit":
        headers["retry-after"] = "2"
    return web.Response(status=status, body=body, headers=headers)


def _cut(plan: StreamPlan) -> int:
    """Where a faulty stream stops: after about half of its content deltas (at least one)."""
    deltas = plan.deltas
    if not deltas:
        return max(len(plan.frames) - 1, 0)
    k = (len(deltas) + 1) // 2
    return deltas[k] if k < len(deltas) else deltas[-1] + 1


def _abort(request: web.Request) -> None:
    transport = request.transport
    if transport is not None:
        transport.abort()


async def _stream(
    request: web.Request, wire: Wire, script: Script, data: dict[str, Any]
) -> web.StreamResponse:
    plan = wire.render_stream(script, data)
    frames = plan.frames
    fault = script.fault
    end = _cut(plan) if fault in ("disconnect", "stream_error", "malformed") else len(frames)
    headers = _SSE_HEADERS if wire.content_type == b"text/event-stream" else {
        "Content-Type": wire.content_type.decode(), "Cache-Control": "no-cache"}
    resp = web.StreamResponse(headers=headers)
    await resp.prepare(request)
    delay = script.delay
    if delay > 0 and plan.deltas:
        pauses = set(plan.deltas[1:])
        for i in range(end):
            if i in pauses:
                await asyncio.sleep(delay)
            await resp.write(frames[i])
    else:
        for i in range(end):
            await resp.write(frames[i])
    if fault == "disconnect":
        _abort(request)
        return resp
    if fault == "stream_error":
        await resp.write(wire.stream_error(end))
    elif fault == "malformed":
        await resp.write(wire.malformed_frame)
    await resp.write_eof()
    return resp


async def _json(request: web.Request, wire: Wire, script: Script, data: dict[str, Any]) -> web.StreamResponse:
    fault = script.fault
    if fault == "malformed":
        return web.Response(body=wire.malformed_json, headers=_JSON_HEADERS)
    if fault == "stream_error":
        return _error_response(wire, "server", None, None, None)
    body = wire.render_json(script, data)
    if script.delay > 0 and script.output_tokens > 1:
        # a non-streaming answer takes about as long as its stream would have (a delta per word)
        await asyncio.sleep(script.delay * (script.output_tokens - 1))
    if fault == "disconnect":
        resp = web.StreamResponse(headers=_JSON_HEADERS)
        resp.content_length = len(body)
        await resp.prepare(request)
        await resp.write(body[: len(body) // 2])
        _abort(request)
        return resp
    return web.Response(body=body, headers=_JSON_HEADERS)


def _handler(wire: Wire, defaults: MockDefaults) -> Handler:
    # Parsing is memoised per (body, scenario header): a benchmark sends the same bodies over and over.
    # Only the rendering (fresh ids and timestamps) runs for every request. Scripts are never mutated.
    memo: dict[tuple[bytes, str | None, str], tuple[dict[str, Any], Script]] = {}

    async def handle(request: web.Request) -> web.StreamResponse:
        if wire.check_headers is not None:
            refused = wire.check_headers(request.headers)
            if refused is not None:
                return _error_response(wire, refused[0], refused[1], None, refused[2])
        raw = await request.read()
        header = request.headers.get("x-mock-scenario")
        cacheable = len(raw) <= _MEMO_MAX_BODY
        key = (raw, header, request.path)
        hit = memo.get(key) if cacheable else None
        if hit is not None:
            data, script = hit
        else:
            try:
                parsed = orjson.loads(raw)
            except orjson.JSONDecodeError:
                parsed = None
            if not isinstance(parsed, dict):
                message = "We could not parse the JSON body of your request. (HINT: send a JSON object.)"
                return _error_response(wire, "invalid", message, None, None)
            data = parsed
            if wire.from_path is not None:
                data = wire.from_path(dict(request.match_info), data)
            try:
                script = make_script(wire.parse(data), header, defaults)
            except RequestInvalid as exc:
                return _error_response(wire, "invalid", exc.message, exc.param, exc.code)
            if cacheable:
                if len(memo) >= _MEMO_ENTRIES:
                    memo.clear()
                memo[key] = (data, script)
        if script.first_byte > 0:
            await asyncio.sleep(script.first_byte)
        kind = _HTTP_FAULTS.get(script.fault or "")
        if kind is not None:
            param = (script.param or wire.default_param) if kind == "invalid" else None
            return _error_response(wire, kind, None, param, None)
        if script.stream:
            return await _stream(request, wire, script, data)
        return await _json(request, wire, script, data)

    return handle


def _models_bodies(models: tuple[str, ...]) -> tuple[bytes, bytes]:
    openai = {
        "object": "list",
        "data": [{"id": m, "object": "model", "created": 0, "owned_by": "tollway-mock"} for m in models],
    }
    anthropic_ = {
        "data": [
            {"type": "model", "id": m, "display_name": m, "created_at": "1970-01-01T00:00:00Z"}
            for m in models
        ],
        "has_more": False,
        "first_id": models[0] if models else None,
        "last_id": models[-1] if models else None,
    }
    return orjson.dumps(openai), orjson.dumps(anthropic_)


# One line per wire format: the POST routes the mock answers.
ROUTES: list[tuple[str, Wire]] = [
    ("/v1/responses", openai_responses.WIRE),
    ("/v1/chat/completions", openai_chat.WIRE),
    ("/v1/messages", anthropic.WIRE),
    ("/api/chat", ollama.WIRE),
    ("/mistral/v1/chat/completions", mistral.WIRE),
    ("/hf/v1/chat/completions", huggingface.WIRE),
    ("/v1beta/models/{target}", gemini.WIRE),
    ("/model/{modelId}/converse", bedrock.CONVERSE),
    ("/model/{modelId}/converse-stream", bedrock.CONVERSE_STREAM),
]


def create_app(defaults: MockDefaults | None = None) -> web.Application:
    """The mock provider application; ``defaults`` sets chunking and delays for every request."""
    defaults = defaults or MockDefaults()
    app = web.Application(client_max_size=_MAX_BODY)
    openai_models, anthropic_models = _models_bodies(defaults.models)
    health = orjson.dumps({"status": "ok"})

    async def models(request: web.Request) -> web.Response:
        body = anthropic_models if "anthropic-version" in request.headers else openai_models
        return web.Response(body=body, headers=_JSON_HEADERS)

    async def healthz(request: web.Request) -> web.Response:
        return web.Response(body=health, headers=_JSON_HEADERS)

    for path, wire in ROUTES:
        app.router.add_post(path, _handler(wire, defaults))
    app.router.add_get("/v1/models", models)
    app.router.add_get("/health", healthz)
    return app


async def start(host: str, port: int, defaults: MockDefaults | None = None) -> web.AppRunner:
    """Serve the mock on ``host:port`` (``port=0``: any free port, see :func:`bound_port`). The caller
    stops it with ``await runner.cleanup()``."""
    runner = web.AppRunner(create_app(defaults), access_log=None, handle_signals=False)
    await runner.setup()
    site = web.TCPSite(runner, host, port)
    await site.start()
    return runner


def bound_port(runner: web.AppRunner) -> int:
    """The TCP port the runner's first site listens on."""
    for address in runner.addresses:
        if isinstance(address, tuple) and len(address) >= 2:
            return int(address[1])
    raise RuntimeError("the mock runner has no TCP site")


async def run(host: str, port: int, defaults: MockDefaults | None = None) -> None:
    """Serve the mock until cancelled (``tollway mock``)."""
    runner = await start(host, port, defaults)
    try:
        await asyncio.Event().wait()
    finally:
        await runner.cleanup()

"""Builds the per-request context from the HTTP request: strict mode, tags and the end user."""

from __future__ import annotations

from tollway.api.http import Request
from tollway.core.context import RequestContext
from tollway.core.errors import GatewayError

MAX_TAGS = 16


def parse_tags(raw: bytes) -> dict[str, str]:
    """``x-tollway-tags: team=search, feature=rerank`` → ``{"team": "search", "feature": "rerank"}``.
    A bare word is a tag with an empty value."""
    tags: dict[str, str] = {}
    for part in raw.decode("utf-8", "replace").split(","):
        part = part.strip()
        if not part:
            continue
        key, _, value = part.partition("=")
        key, value = key.strip(), value.strip()
        if not key or len(key) > 64 or len(value) > 256:
            raise GatewayError(400, f"invalid x-tollway-tags entry {part[:40]!r}: key 1-64 chars, value <= 256",
                               param="x-tollway-tags", code="invalid_value")
        tags[key] = value
    if len(tags) > MAX_TAGS:
        raise GatewayError(400, f"x-tollway-tags holds more than {MAX_TAGS} tags", param="x-tollway-tags",
                           code="invalid_value")
    return tags


def request_context(req: Request, door: str = "") -> RequestContext:
    """The context for ``req``, attached as ``req.ctx`` before any header is checked, so a request refused
    for a bad header is still recorded."""
    ctx = req.ctx = RequestContext(request_id=req.request_id, started=req.started, door=door)
    for name, value in req.scope["headers"]:
        if name == b"x-tollway-strict":
            ctx.strict = value.lower() in (b"true", b"1", b"yes")
        elif name == b"x-tollway-tags":
            ctx.tags = parse_tags(value)
        elif name == b"x-tollway-end-user":
            ctx.end_user_external_id = value.decode("utf-8", "replace")[:256] or None
    return ctx


def authorization(req: Request) -> bytes | None:
    for name, value in req.scope["headers"]:
        if name == b"authorization" or name == b"x-api-key":
            return bytes(value)
    return None


def response_headers(ctx: RequestContext | None) -> list[tuple[bytes, bytes]]:
    """Headers pipeline steps asked to add to the response (e.g. ``x-ratelimit-*`` from the rate limiter),
    stored by them as ``ctx.extra["response_headers"]``: a list of ``(name, value)`` byte pairs."""
    if ctx is None:
        return []
    headers: list[tuple[bytes, bytes]] = ctx.extra.get("response_headers", [])
    return headers

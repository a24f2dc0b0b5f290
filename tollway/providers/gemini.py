"""Google Gemini adapter (Generative Language API): ``POST {base_url}/models/{model}:generateContent`` and
``:streamGenerateContent?alt=sse``, key in ``x-goog-api-key``.

The request body is built by :mod:`tollway.providers.gemini_request`, answers are parsed by
:mod:`tollway.providers.gemini_stream` (a whole answer is parsed as a one-chunk stream); see their
docstrings for the mapping decisions. The model id goes in the URL as ``models/<id>`` (an id given as
``models/<id>`` or ``tunedModels/<id>`` is used as it is).

Errors: Google's ``{"error": {"code", "message", "status", "details"}}``. The message is kept; the code is
the ``ErrorInfo.reason`` when there is one (e.g. ``API_KEY_INVALID``, which Google sends as a 400), else the
status (``RESOURCE_EXHAUSTED``, ``PERMISSION_DENIED``, ``NOT_FOUND``, ``UNAVAILABLE``…). Google puts the
retry delay of a 429 in ``RetryInfo.retryDelay`` rather than a header: it is appended to the message. The
HTTP status is mapped by :func:`tollway.core.errors.upstream_error` (503 ``UNAVAILABLE``, "the model is
overloaded", becomes 503 ``overloaded_error``).
"""

from __future__ import annotations

from typing import Any

import orjson

from tollway.core.assembler import OutputAssembler
from tollway.core.errors import GatewayError
from tollway.core.types import CanonicalRequest, CanonicalResponse, Fidelity, StreamError
from tollway.providers.base import ProviderSettings, StreamParser, UpstreamRequest
from tollway.providers.gemini_request import build_body, model_resource
from tollway.providers.gemini_stream import GeminiStreamParser

_ERROR_TEXT_LIMIT = 500
_ERROR_INFO = "type.googleapis.com/google.rpc.ErrorInfo"
_RETRY_INFO = "type.googleapis.com/google.rpc.RetryInfo"


def _error_text(body: bytes) -> str:
    text = body.decode("utf-8", "replace").strip()
    return text[:_ERROR_TEXT_LIMIT] if text else "empty error body"


def _bad_body() -> GatewayError:
    return GatewayError(502, "gemini: the provider returned a malformed response body.", type="server_error",
                        code="upstream_bad_response")


def parse_error(data: Any) -> tuple[str, str | None] | None:
    """Google's error object (possibly inside a one-element array) -> (message, code)."""
    if isinstance(data, list) and data:
        data = data[0]
    error = data.get("error") if isinstance(data, dict) else None
    if not isinstance(error, dict):
        return None
    message = error.get("message")
    if not isinstance(message, str) or not message:
        return None
    status = error.get("status")
    code = status if isinstance(status, str) and status else None
    details = error.get("details")
    for detail in details if isinstance(details, list) else ():
        if not isinstance(detail, dict):
            continue
        kind = detail.get("@type")
        if kind == _ERROR_INFO and isinstance(detail.get("reason"), str):
            code = detail["reason"]
        elif kind == _RETRY_INFO and isinstance(detail.get("retryDelay"), str):
            message = f"{message} (retry after {detail['retryDelay']})"
    return message, code


class GeminiAdapter:
    kind = "gemini"

    def build_request(
        self, req: CanonicalRequest, model: str, settings: ProviderSettings, fidelity: Fidelity
    ) -> UpstreamRequest:
        body = build_body(req, model, fidelity)
        resource = model_resource(model)
        headers = {"content-type": "application/json"}
        if settings.api_key is not None:
            headers["x-goog-api-key"] = settings.api_key
        if req.stream:
            headers["accept"] = "text/event-stream"
            url = f"{settings.base_url}/{resource}:streamGenerateContent?alt=sse"
        else:
            url = f"{settings.base_url}/{resource}:generateContent"
        headers.update(settings.headers)
        return UpstreamRequest(method="POST", url=url, headers=headers, body=orjson.dumps(body), stream=req.stream,
                               stream_format="sse")

    def parse_response(self, body: bytes) -> CanonicalResponse:
        try:
            data = orjson.loads(body)
        except orjson.JSONDecodeError:
            raise _bad_body() from None
        if not isinstance(data, dict) or not ("candidates" in data or "promptFeedback" in data):
            raise _bad_body()
        parser = GeminiStreamParser()
        assembler = OutputAssembler()
        for delta in (*parser.chunk(data), *parser.end()):
            if isinstance(delta, StreamError):
                raise GatewayError(502, f"gemini: {delta.message}", type=delta.type, code=delta.code)
            assembler.apply(delta)
        response = assembler.result()
        for item in response.output:
            del item["id"]
        return response

    def stream_parser(self, req: CanonicalRequest) -> StreamParser:
        return GeminiStreamParser()

    def error_message(self, body: bytes) -> tuple[str, str | None]:
        try:
            data = orjson.loads(body)
        except orjson.JSONDecodeError:
            return _error_text(body), None
        parsed = parse_error(data)
        return parsed if parsed is not None else (_error_text(body), None)

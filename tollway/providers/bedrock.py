"""AWS Bedrock adapter: the Converse and ConverseStream APIs (``POST {base_url}/model/{modelId}/converse`` and
``/converse-stream``), signed with AWS Signature Version 4 by botocore.

The request body is built by :mod:`tollway.providers.bedrock_request` and the stream is parsed by
:mod:`tollway.providers.bedrock_stream` (see their docstrings for the mapping decisions). This module holds the
adapter, the signing, the response parser and the error parser.

* URL: the model id (a base model id such as ``amazon.nova-micro-v1:0``, an inference profile such as
  ``us.anthropic.claude-sonnet-4-5-20250929-v1:0``, or an ARN) is percent-encoded as one path segment, with
  ``:`` left as is. aiohttp (yarl) would turn a ``%3A`` back into ``:`` before sending, so the adapter signs
  the URL exactly as it goes on the wire; an ARN's ``/`` is sent as ``%2F`` (kept by yarl). With the wire path
  ``.../us.amazon.nova-micro-v1:0/converse`` AWS computes the same canonical URI (``...v1%3A0...``) as
  botocore does here.
* Signing: ``settings.api_key`` is the access key id, ``options["aws_secret_access_key"]`` the secret,
  ``options.get("aws_session_token")`` the session token and ``options["region"]`` the region (else taken
  from a ``bedrock-runtime.<region>.amazonaws.com`` base URL, else ``us-east-1``). botocore's ``SigV4Auth``
  (service ``bedrock``) signs the method, path, host, ``content-type``, ``x-amz-date`` (and
  ``x-amz-security-token``) and the body hash; signing reads the clock but does no I/O. A missing key or
  secret is a 400 naming the environment variable and config key to set.
* Response: content blocks become canonical items: a run of ``text`` blocks one assistant message,
  ``toolUse`` a function call (arguments as compact JSON), ``reasoningContent`` a reasoning item whose
  ``encrypted_content`` wraps the signature or the redacted content (so it can go back to Bedrock). Bedrock
  returns no response id or model name.
* ``stopReason`` and usage: see :func:`~tollway.providers.bedrock_stream.map_stop_reason` and
  :func:`~tollway.providers.bedrock_stream.usage_counts` (input includes cache reads and writes). Bedrock
  does not report reasoning tokens separately (they are inside ``outputTokens``).
* Errors: the body is ``{"message": "..."}`` (the exception name is in the ``x-amzn-ErrorType`` header, which
  the shared client does not pass on); the message is kept, the status maps as for every provider.
"""

from __future__ import annotations

import re
from typing import Any
from urllib.parse import quote

import orjson
from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials

from tollway.core import reasoning_state
from tollway.core.errors import GatewayError
from tollway.core.types import JSON, CanonicalRequest, CanonicalResponse, Fidelity, Item, Usage
from tollway.providers.base import ProviderSettings, StreamParser, UpstreamRequest
from tollway.providers.bedrock_request import PROVIDER, build_body
from tollway.providers.bedrock_stream import BedrockStreamParser, map_stop_reason, usage_counts

SERVICE = "bedrock"
DEFAULT_REGION = "us-east-1"
_REGION_IN_URL = re.compile(r"bedrock-runtime(?:-fips)?\.([a-z0-9-]+)\.amazonaws\.com")
_MODEL_SAFE = ":"  # besides letters, digits and "_.-~"
_SIGNERS_MAX = 64
_ERROR_TEXT_LIMIT = 500


def _dumps(value: Any) -> str:
    return orjson.dumps(value).decode()


def model_url(base_url: str, model: str, stream: bool) -> str:
    """``{base_url}/model/{model id as one path segment}/converse[-stream]``."""
    return f"{base_url}/model/{quote(model, safe=_MODEL_SAFE)}/{'converse-stream' if stream else 'converse'}"


def region_for(settings: ProviderSettings) -> str:
    region = settings.options.get("region")
    if region:
        return region
    match = _REGION_IN_URL.search(settings.base_url)
    return match.group(1) if match else DEFAULT_REGION


def _missing(settings: ProviderSettings, env: str, key: str) -> GatewayError:
    return GatewayError(
        400,
        f"{settings.name}: AWS credentials are incomplete: set {env} (or providers.{settings.name}.{key})",
        code="provider_not_configured",
        param="model",
    )


# --------------------------------------------------------------------------------------------------
# Response
# --------------------------------------------------------------------------------------------------


def _text_item(text: str) -> Item:
    return {
        "type": "message",
        "role": "assistant",
        "status": "completed",
        "content": [{"type": "output_text", "text": text, "annotations": []}],
    }


def _reasoning_item(block: JSON) -> Item | None:
    redacted = block.get("redactedContent")
    if isinstance(redacted, str) and redacted:
        return {
            "type": "reasoning",
            "summary": [],
            "content": [],
            "encrypted_content": reasoning_state.wrap(PROVIDER, {"redacted": redacted}),
        }
    text_block = block.get("reasoningText")
    if not isinstance(text_block, dict):
        return None
    text = text_block.get("text") or ""
    signature = text_block.get("signature")
    if not text and not signature:
        return None
    item: Item = {
        "type": "reasoning",
        "summary": [],
        "content": [{"type": "reasoning_text", "text": text}] if text else [],
    }
    if isinstance(signature, str) and signature:
        item["encrypted_content"] = reasoning_state.wrap(PROVIDER, {"signature": signature})
    return item


def _block_text(block: JSON) -> str | None:
    """The generated text of a ``text`` or ``citationsContent`` block; None for other blocks."""
    text = block.get("text")
    if isinstance(text, str):
        return text
    cited = block.get("citationsContent")
    if isinstance(cited, dict):
        parts = cited.get("content")
        return "".join(p.get("text") or "" for p in parts if isinstance(p, dict)) if isinstance(parts, list) else ""
    return None


def convert_output(content: list[Any]) -> list[Item]:
    """Converse content blocks -> canonical output items. Runs of text blocks form one message; blocks with
    no canonical form (images, tool results of server tools) are skipped."""
    output: list[Item] = []
    run: list[str] = []
    for block in content:
        if not isinstance(block, dict):
            continue
        text = _block_text(block)
        if text is not None:
            run.append(text)
            continue
        if run:
            joined = "".join(run)
            if joined:
                output.append(_text_item(joined))
            run = []
        tool = block.get("toolUse")
        reasoning = block.get("reasoningContent")
        if isinstance(tool, dict):
            output.append(
                {
                    "type": "function_call",
                    "call_id": tool.get("toolUseId"),
                    "name": tool.get("name"),
                    "arguments": _dumps(tool.get("input") or {}),
                    "status": "completed",
                }
            )
        elif isinstance(reasoning, dict):
            item = _reasoning_item(reasoning)
            if item is not None:
                output.append(item)
    joined = "".join(run)
    if joined:
        output.append(_text_item(joined))
    return output


def parse_usage(raw: Any) -> Usage | None:
    counts = usage_counts(raw)
    if counts is None:
        return None
    total, output, read, write = counts
    return Usage(input_tokens=total, output_tokens=output, cached_tokens=read, cache_write_tokens=write)


def _error_text(body: bytes) -> str:
    text = body.decode("utf-8", "replace").strip()
    return text[:_ERROR_TEXT_LIMIT] if text else "empty error body"


class BedrockAdapter:
    kind = "bedrock"

    def __init__(self) -> None:
        # SigV4 signers per (access key, secret, token, region): built once, reused for every request.
        self._signers: dict[tuple[str, str, str | None, str], SigV4Auth] = {}

    def _signer(self, settings: ProviderSettings) -> SigV4Auth:
        access_key = settings.api_key
        if not access_key:
            raise _missing(settings, settings.api_key_source or "AWS_ACCESS_KEY_ID", "api_key")
        secret = settings.options.get("aws_secret_access_key")
        if not secret:
            raise _missing(settings, "AWS_SECRET_ACCESS_KEY", "aws_secret_access_key")
        token = settings.options.get("aws_session_token") or None
        region = region_for(settings)
        key = (access_key, secret, token, region)
        signer = self._signers.get(key)
        if signer is None:
            if len(self._signers) >= _SIGNERS_MAX:
                self._signers.clear()
            signer = SigV4Auth(Credentials(access_key, secret, token), SERVICE, region)
            self._signers[key] = signer
        return signer

    def build_request(
        self, req: CanonicalRequest, model: str, settings: ProviderSettings, fidelity: Fidelity
    ) -> UpstreamRequest:
        signer = self._signer(settings)
        body = orjson.dumps(build_body(req, model, fidelity))
        url = model_url(settings.base_url, model, req.stream)
        headers = {"content-type": "application/json", **settings.headers}
        aws_request = AWSRequest(method="POST", url=url, data=body, headers=headers)
        signer.add_auth(aws_request)
        return UpstreamRequest(
            method="POST",
            url=url,
            headers=dict(aws_request.headers.items()),
            body=body,
            stream=req.stream,
            stream_format="eventstream",
        )

    def parse_response(self, body: bytes) -> CanonicalResponse:
        try:
            data = orjson.loads(body)
        except orjson.JSONDecodeError:
            data = None
        output = data.get("output") if isinstance(data, dict) else None
        message = output.get("message") if isinstance(output, dict) else None
        content = message.get("content") if isinstance(message, dict) else None
        if not isinstance(data, dict) or not isinstance(content, list):
            raise GatewayError(
                502,
                "bedrock: the provider returned a malformed response body.",
                type="server_error",
                code="upstream_bad_response",
            )
        status, reason = map_stop_reason(data.get("stopReason"))
        return CanonicalResponse(
            output=convert_output(content),
            status=status,
            incomplete_reason=reason,
            usage=parse_usage(data.get("usage")),
        )

    def stream_parser(self, req: CanonicalRequest) -> StreamParser:
        return BedrockStreamParser()

    def error_message(self, body: bytes) -> tuple[str, str | None]:
        try:
            data = orjson.loads(body)
        except orjson.JSONDecodeError:
            return _error_text(body), None
        if not isinstance(data, dict):
            return _error_text(body), None
        message = data.get("message", data.get("Message"))
        etype = data.get("__type")
        code = etype.rsplit("#", 1)[-1].split(":", 1)[0] if isinstance(etype, str) and etype else None
        if isinstance(message, str) and message:
            return message, code
        return _error_text(body), code

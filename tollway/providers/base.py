"""The provider interface: adapters are pure transforms between canonical types and a provider's wire
format. They never do I/O; :mod:`tollway.providers.client` sends what they build and hands them back
what arrives.

An adapter module defines one class implementing :class:`Adapter` and is listed once in
:mod:`tollway.providers.registry`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal, Protocol

from tollway.core.types import CanonicalRequest, CanonicalResponse, Delta, Fidelity

StreamFormat = Literal["sse", "ndjson", "eventstream"]


@dataclass(slots=True)
class ProviderSettings:
    """One configured provider endpoint."""

    name: str  # the configured name, e.g. "openai", "anthropic", "mock", "vllm-local"
    kind: str  # adapter kind from the registry, e.g. "openai_responses", "anthropic", "openai_chat"
    base_url: str  # without trailing slash, e.g. "https://api.openai.com/v1"
    api_key: str | None = None
    headers: dict[str, str] = field(default_factory=dict)
    # env var / config key that supplies the key, for "missing credentials" errors
    api_key_source: str | None = None
    # provider-specific settings, e.g. {"region": "us-east-1", "aws_secret_access_key": ..., "aws_session_token": ...}
    options: dict[str, str] = field(default_factory=dict)


@dataclass(slots=True)
class UpstreamRequest:
    method: str
    url: str
    headers: dict[str, str]
    body: bytes
    stream: bool = False
    stream_format: StreamFormat = "sse"


class StreamParser(Protocol):
    """Per-request stateful parser of one provider stream. Pure: no I/O."""

    def feed(self, event: str | None, data: bytes) -> list[Delta]:
        """One framed upstream event: for SSE ``event`` is the ``event:`` field (or None) and ``data``
        the joined ``data:`` lines; for NDJSON ``event`` is None and ``data`` one line."""
        ...

    def close(self) -> list[Delta]:
        """Called once when the upstream stream ends; returns any final deltas (e.g. a Finish when the
        provider has no explicit end event)."""
        ...


class Adapter(Protocol):
    kind: str

    def build_request(
        self, req: CanonicalRequest, model: str, settings: ProviderSettings, fidelity: Fidelity
    ) -> UpstreamRequest:
        """Translate ``req`` for upstream model id ``model``. Fields that cannot be honoured are mapped
        if possible (and named in ``fidelity.approximated``) or named in ``fidelity.dropped``."""
        ...

    def parse_response(self, body: bytes) -> CanonicalResponse:
        """Parse a successful (2xx) non-streaming body."""
        ...

    def stream_parser(self, req: CanonicalRequest) -> StreamParser:
        ...

    def error_message(self, body: bytes) -> tuple[str, str | None]:
        """Extract ``(message, code)`` from an error body (any status >= 400); must not raise."""
        ...

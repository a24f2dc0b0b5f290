"""Per-request context shared by the doors and the pipeline, and the record every exchange leaves.

The door builds a :class:`RequestContext` (request id, start time, the authenticated :class:`Principal`
when tenancy is on, tags); the pipeline fills in what it learns and, when the exchange ends — completed,
incomplete, failed upstream, refused, or cut by a client disconnect — hands one :class:`ExchangeRecord`
to every recorder (the usage ledger). Nothing here does I/O.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from tollway.core.types import Usage
from tollway.metering.cost import CostBreakdown


@dataclass(slots=True, frozen=True)
class Principal:
    """Who is calling: the virtual key and where it sits in the tenancy tree (ids and names only —
    never secrets or emails)."""

    key_id: str
    key_name: str
    org_id: str
    org_name: str
    team_id: str | None = None
    team_name: str | None = None
    project_id: str | None = None
    project_name: str | None = None
    scopes: frozenset[str] = frozenset()
    allowed_models: tuple[str, ...] = ()  # globs; empty = every model
    end_user_id: str | None = None  # a key bound to one end user
    end_user_external_id: str | None = None


@dataclass(slots=True)
class RequestContext:
    request_id: str
    started: float  # perf_counter() at arrival
    door: str = ""  # "responses" | "chat"
    strict: bool = False
    principal: Principal | None = None
    end_user_external_id: str | None = None  # from the request (user / safety_identifier / header)
    end_user_id: str | None = None  # resolved by tenancy
    tags: dict[str, str] = field(default_factory=dict)  # from x-tollway-tags
    streaming: bool = False
    model: str | None = None  # as requested
    provider: str | None = None  # resolved provider name
    upstream_model: str | None = None
    recorded: bool = False  # an ExchangeRecord was emitted
    extra: dict[str, Any] = field(default_factory=dict)  # for pipeline steps (e.g. budget reservations)


@dataclass(slots=True)
class ExchangeRecord:
    """One immutable fact per request for the ledger."""

    request_id: str
    created_at: float  # epoch seconds
    principal: Principal | None
    end_user_id: str | None
    end_user_external_id: str | None
    door: str
    model: str | None
    provider: str | None
    upstream_model: str | None
    streaming: bool
    status: str  # completed | incomplete | failed | error | client_disconnected
    http_status: int
    error_code: str | None
    usage: Usage
    cost: CostBreakdown | None
    latency_ms: float
    overhead_ms: float
    tags: dict[str, str]

"""Enrichment: the ``tollway`` object and the cost-bearing usage attached to every response.

The contract (both doors, JSON and the final stream event)::

    "tollway": {"request_id", "provider", "model", "latency_ms", "upstream_ms", "overhead_ms",
                "cost": {...}, "agentic": {...}, "fidelity": {"dropped": [], "approximated": []}}

``overhead_ms`` is the gateway's wall time minus the upstream window (from sending the upstream request
to its last byte) — the same definition the benchmark uses.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from tollway.core.context import RequestContext
from tollway.core.types import Fidelity, Item, Usage
from tollway.metering.cost import CostBreakdown


@dataclass(slots=True)
class Timings:
    started: float  # perf_counter() when the request reached the gateway
    upstream_started: float = 0.0
    upstream_ended: float = 0.0
    ended: float = 0.0

    @property
    def latency_ms(self) -> float:
        return (self.ended - self.started) * 1000.0

    @property
    def upstream_ms(self) -> float:
        if not self.upstream_started:
            return 0.0
        return (self.upstream_ended - self.upstream_started) * 1000.0

    @property
    def overhead_ms(self) -> float:
        return max(self.latency_ms - self.upstream_ms, 0.0)


def agentic_summary(output: list[Item], usage: Usage | None, incomplete_reason: str | None) -> dict[str, Any]:
    calls = [it for it in output if it.get("type") == "function_call"]
    tools_used: list[str] = []
    for c in calls:
        if c["name"] not in tools_used:
            tools_used.append(c["name"])
    reasoning = any(it.get("type") == "reasoning" for it in output)
    return {
        "output_items_count": len(output),
        "has_tool_calls": bool(calls),
        "tool_calls_count": len(calls),
        "tools_used": tools_used,
        # the agent must act next when the output ends with function calls it has to run
        "requires_action": bool(output) and output[-1].get("type") == "function_call",
        "has_reasoning": reasoning or bool(usage and usage.reasoning_tokens),
        "reasoning_tokens": usage.reasoning_tokens if usage else 0,
        "incomplete_reason": incomplete_reason,
    }


def tenant_json(ctx: RequestContext) -> dict[str, Any] | None:
    p = ctx.principal
    if p is None:
        return None
    return {
        "org": {"id": p.org_id, "name": p.org_name},
        "team": {"id": p.team_id, "name": p.team_name} if p.team_id else None,
        "project": {"id": p.project_id, "name": p.project_name} if p.project_id else None,
        "key_id": p.key_id,
    }


def tollway_block(
    *,
    ctx: RequestContext,
    provider: str,
    model: str,
    timings: Timings,
    cost: CostBreakdown,
    output: list[Item],
    usage: Usage | None,
    incomplete_reason: str | None,
    fidelity: Fidelity,
) -> dict[str, Any]:
    block: dict[str, Any] = {
        "request_id": ctx.request_id,
        "provider": provider,
        "model": model,
        "latency_ms": round(timings.latency_ms, 3),
        "upstream_ms": round(timings.upstream_ms, 3),
        "overhead_ms": round(timings.overhead_ms, 3),
        "cost": cost.to_json(),
        "agentic": agentic_summary(output, usage, incomplete_reason),
        "fidelity": fidelity.to_json(),
    }
    tenant = tenant_json(ctx)
    if tenant is not None:
        block["tenant"] = tenant
    if ctx.end_user_id is not None:
        block["end_user"] = {"id": ctx.end_user_id, "external_id": ctx.end_user_external_id}
    return block

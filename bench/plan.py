"""What a benchmark run does: scenarios, rounds, durations, the streaming probe and the long RSS run."""

from __future__ import annotations

from dataclasses import asdict, dataclass, replace
from typing import Any

from bench.bodies import Endpoint

CONNECTIONS = (1, 16, 64)
ENDPOINTS: tuple[Endpoint, ...] = ("chat", "responses")


@dataclass(frozen=True, slots=True)
class Scenario:
    endpoint: Endpoint
    stream: bool
    connections: int

    @property
    def id(self) -> str:
        return f"{self.endpoint}-{'stream' if self.stream else 'json'}-c{self.connections}"

    def to_json(self) -> dict[str, Any]:
        return {"id": self.id, "endpoint": self.endpoint, "stream": self.stream, "connections": self.connections}


@dataclass(frozen=True, slots=True)
class Plan:
    mode: str
    scenarios: tuple[Scenario, ...]
    rounds: int  # interleaved rounds per scenario; the median over them is reported
    duration_s: int  # per wrk run
    warmup_s: int  # one wrk run per system and scenario before the measured rounds
    upstream_chunks: int  # text deltas in the zero-delay upstream's bodies
    probe_requests: int  # streaming probe requests per system and endpoint (0: no probe)
    probe_endpoints: tuple[Endpoint, ...]
    probe_chunks: int
    probe_delay_ms: int
    long_run_requests: int  # requests of the RSS growth run per system (0: no long run)
    long_run_connections: int

    def to_json(self) -> dict[str, Any]:
        data = asdict(self)
        data["scenarios"] = [scenario.id for scenario in self.scenarios]
        return data


def full_scenarios() -> tuple[Scenario, ...]:
    return tuple(
        Scenario(endpoint, stream, connections)
        for endpoint in ENDPOINTS
        for stream in (False, True)
        for connections in CONNECTIONS
    )


QUICK = Plan(
    mode="quick",
    scenarios=(Scenario("chat", False, 16), Scenario("responses", True, 16)),
    rounds=3,
    duration_s=2,
    warmup_s=1,
    upstream_chunks=20,
    probe_requests=10,
    probe_endpoints=("responses",),
    probe_chunks=20,
    probe_delay_ms=5,
    long_run_requests=0,
    long_run_connections=64,
)

FULL = Plan(
    mode="full",
    scenarios=full_scenarios(),
    rounds=5,
    duration_s=5,
    warmup_s=2,
    upstream_chunks=20,
    probe_requests=30,
    probe_endpoints=ENDPOINTS,
    probe_chunks=50,
    probe_delay_ms=5,
    long_run_requests=100_000,
    long_run_connections=64,
)


def make_plan(
    quick: bool,
    duration_s: int | None = None,
    rounds: int | None = None,
    long_run_requests: int | None = None,
    probe_chunks: int | None = None,
    probe_delay_ms: int | None = None,
) -> Plan:
    """The quick or full plan with the command-line overrides applied."""
    plan = QUICK if quick else FULL
    if probe_chunks is not None:
        plan = replace(plan, probe_chunks=max(1, probe_chunks))
    if probe_delay_ms is not None:
        plan = replace(plan, probe_delay_ms=max(0, probe_delay_ms))
    if duration_s is not None:
        plan = replace(plan, duration_s=max(1, duration_s))
    if rounds is not None:
        plan = replace(plan, rounds=max(1, rounds))
    if long_run_requests is not None:
        plan = replace(plan, long_run_requests=max(0, long_run_requests))
    return plan


def rotation(names: list[str], round_index: int) -> list[str]:
    """The order systems run in round ``round_index``: rotated each round so none always goes first."""
    if not names:
        return []
    shift = round_index % len(names)
    return names[shift:] + names[:shift]

"""One benchmark run, start to finish: tools, upstream, systems, load rounds, RSS, streaming probe, report.

The systems under test run alone on core 0; the harness itself, wrk, nginx and the mock on core 1. Every
scenario runs the systems round-robin (rotated each round) and reports medians. A system that fails to
start, fails its smoke check or dies is reported and the others carry on. Every process started is
stopped at the end, also on Ctrl-C or SIGTERM.
"""

from __future__ import annotations

import asyncio
import http.client
import os
import shutil
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
import orjson

from bench import aggregate, bodies, litellm_setup, machine, provision, report, stream_probe, systems
from bench.bodies import Endpoint
from bench.cpu import CpuMeter, wait_idle
from bench.load import WrkResult, lua_script, run_wrk
from bench.net import http_post
from bench.plan import Plan, Scenario, rotation
from bench.processes import ProcessRegistry, tail
from bench.upstream import Upstream

SERVER_CPU = "0"
LOAD_CPU = "1"
LONG_RUN_SEGMENT_S = 10
LONG_RUN_CAP_S = 1200
OTHER_LOAD_WARN_PCT = 10.0
_SMOKE_MARKERS: dict[tuple[Endpoint, bool], bytes] = {
    ("chat", False): b'"choices"',
    ("chat", True): b"[DONE]",
    ("responses", False): b'"output"',
    ("responses", True): b"response.completed",
}


def say(message: str) -> None:
    print(f"[bench] {message}", flush=True)


@dataclass(slots=True)
class Run:
    plan: Plan
    names: list[str]
    out_dir: Path
    registry: ProcessRegistry
    workdir: Path
    wrk_bin: str = ""
    upstream: Upstream | None = None
    running: dict[str, systems.System] = field(default_factory=dict)
    status: dict[str, dict[str, Any]] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)
    cells: dict[str, dict[str, dict[str, Any]]] = field(default_factory=dict)
    probe: dict[str, Any] = field(default_factory=dict)

    def note(self, message: str) -> None:
        self.notes.append(message)
        say(message)

    def fail(self, name: str, reason: str) -> None:
        """Mark a system failed (or dead) and stop measuring it."""
        self.status.setdefault(name, {})["status"] = "failed"
        self.status[name]["reason"] = reason
        self.running.pop(name, None)
        say(f"{name}: {reason}")


def run_benchmark(plan: Plan, names: list[str], out_dir: Path) -> int:
    """Run the plan for the named systems and write the report into ``out_dir``. Returns the exit code."""
    out_dir.mkdir(parents=True, exist_ok=True)
    registry = ProcessRegistry(out_dir / "logs")
    registry.install_handlers()
    run = Run(plan, names, out_dir, registry, Path(tempfile.mkdtemp(prefix="tollway-bench-work-")))
    cpus_ok = (os.cpu_count() or 1) >= 2
    server_cpus, load_cpus = (SERVER_CPU, LOAD_CPU) if cpus_ok else ("", "")
    if cpus_ok:
        os.sched_setaffinity(0, {int(LOAD_CPU)})
    else:
        run.note("fewer than 2 cores: no CPU pinning, figures mix server and load generator")
    interrupted = False
    code = 0
    try:
        code = _run(run, server_cpus, load_cpus)
    except KeyboardInterrupt:
        interrupted = True
        code = 130
        say("interrupted: stopping everything, writing what was measured")
    finally:
        registry.stop_all()
        if run.upstream is not None:
            shutil.rmtree(run.upstream.root, ignore_errors=True)
        shutil.rmtree(run.workdir, ignore_errors=True)
    if run.wrk_bin:
        results = _results(run, interrupted)
        written = report.write(out_dir, results, run.notes)
        for path in written:
            say(f"wrote {path}")
    return code


def _run(run: Run, server_cpus: str, load_cpus: str) -> int:
    why = provision.ensure([provision.WRK, provision.NGINX, provision.TASKSET], run.notes)
    if why is not None:
        run.note(why)
        return 2
    run.wrk_bin = provision.find(provision.WRK) or "wrk"
    nginx_bin = provision.find(provision.NGINX) or "nginx"
    run.upstream = Upstream(run.registry, nginx_bin, run.plan.upstream_chunks, load_cpus)
    why = run.upstream.start()
    if why is not None:
        run.note(why)
        return 2
    say(f"upstream nginx on {run.upstream.base_url}")
    _start_systems(run, server_cpus)
    for scenario in run.plan.scenarios:
        _scenario(run, scenario, load_cpus)
    for name, system in run.running.items():
        run.status[name]["rss_after_kib"] = system.rss_kib()
    if run.plan.long_run_requests > 0:
        for name in list(run.running):
            if name != "direct":
                _long_run(run, name, load_cpus)
    if run.plan.probe_requests > 0:
        _probe_phase(run)
    return 0


def _start_systems(run: Run, server_cpus: str) -> None:
    assert run.upstream is not None
    for name in run.names:
        if name == "litellm":
            why = litellm_setup.ensure_installed(run.notes)
            if why is not None:
                run.status[name] = {"status": "skipped", "reason": why}
                say(f"litellm skipped: {why}")
                continue
        say(f"starting {name}")
        started = time.monotonic()
        result = systems.start(name, run.registry, run.upstream.base_url, run.upstream.port, run.workdir, server_cpus)
        if isinstance(result, str):
            run.status[name] = {"status": "failed", "reason": result}
            say(result)
            continue
        time.sleep(1.0)  # let start-up work settle before the idle RSS
        run.running[name] = result
        run.status[name] = {
            "status": "ok",
            "start_s": round(time.monotonic() - started, 2),
            "rss_idle_kib": result.rss_kib(),
        }


def _script(run: Run, name: str, endpoint: Endpoint, stream: bool) -> Path:
    path = run.workdir / f"wrk-{name}-{endpoint}-{'stream' if stream else 'json'}.lua"
    if not path.exists():
        body = bodies.request_body(endpoint, systems.model_for(name, endpoint), stream)
        path.write_text(lua_script(body, run.running[name].headers))
    return path


def _url(system: systems.System, endpoint: Endpoint) -> str:
    return f"http://127.0.0.1:{system.port}{bodies.PATHS[endpoint]}"


def smoke_check(status: int, body: bytes, endpoint: Endpoint, stream: bool) -> str | None:
    """Whether one answer is a real success (not a fast error page). None when it is, else why not."""
    if status != 200:
        return f"HTTP {status}: {body[:300]!r}"
    marker = _SMOKE_MARKERS[(endpoint, stream)]
    if marker not in body:
        return f"answer lacks {marker.decode()}: {body[:300]!r}"
    if not stream:
        try:
            orjson.loads(body)
        except orjson.JSONDecodeError:
            return f"answer is not JSON: {body[:300]!r}"
    return None


def _smoke(run: Run, name: str, system: systems.System, scenario: Scenario) -> str | None:
    body = bodies.request_body(scenario.endpoint, systems.model_for(name, scenario.endpoint), scenario.stream)
    try:
        status, answer = http_post(system.port, bodies.PATHS[scenario.endpoint], body, system.headers)
    except (OSError, http.client.HTTPException) as exc:
        return f"{type(exc).__name__}: {exc}"
    return smoke_check(status, answer, scenario.endpoint, scenario.stream)


def _scenario(run: Run, scenario: Scenario, load_cpus: str) -> None:
    assert run.upstream is not None
    why = run.upstream.set_mode("sse" if scenario.stream else "json")
    if why is not None:
        run.note(f"{scenario.id}: {why}")
        return
    cells: dict[str, dict[str, Any]] = {}
    run.cells[scenario.id] = cells
    active: list[str] = []
    for name in [n for n in run.names if n in run.running]:
        system = run.running[name]
        problem = _smoke(run, name, system, scenario)
        if problem is not None:
            cells[name] = {"rounds": [], "cpu": [], "error": f"smoke check failed: {problem}"}
            say(f"{scenario.id}: {name} smoke check failed: {problem}")
            continue
        cells[name] = {"rounds": [], "cpu": [], "error": None}
        active.append(name)
        script = _script(run, name, scenario.endpoint, scenario.stream)
        url = _url(system, scenario.endpoint)
        run_wrk(run.registry, run.wrk_bin, url, script, scenario.connections, run.plan.warmup_s, load_cpus)
        _settle(system)
    for round_index in range(run.plan.rounds):
        line: list[str] = []
        for name in rotation(active, round_index):
            if name not in run.running:
                continue
            system = run.running[name]
            if not system.alive():
                run.fail(name, f"died during {scenario.id}\n{_log_tail(system)}")
                continue
            script = _script(run, name, scenario.endpoint, scenario.stream)
            pgid = system.managed.popen.pid if system.managed is not None else None
            meter = CpuMeter(int(SERVER_CPU), pgid).start()
            result = run_wrk(
                run.registry,
                run.wrk_bin,
                _url(system, scenario.endpoint),
                script,
                scenario.connections,
                run.plan.duration_s,
                load_cpus,
            )
            usage = meter.stop()
            _settle(system)
            if isinstance(result, str):
                cells[name]["error"] = result
                continue
            cells[name]["cpu"].append(usage)
            cells[name]["rounds"].append(result)
            line.append(f"{name} {result.rps:,.0f} req/s p50 {result.p50_ms:.2f} ms err {result.errors}")
        say(f"{scenario.id} round {round_index + 1}/{run.plan.rounds}: " + " | ".join(line))


def _settle(system: systems.System) -> None:
    """Let the server finish what it accepted before the next run (see :func:`bench.cpu.wait_idle`)."""
    if system.managed is not None and system.alive():
        wait_idle(system.managed.popen.pid)


def _log_tail(system: systems.System) -> str:
    return tail(system.managed.log_path) if system.managed is not None else ""


def _long_run(run: Run, name: str, load_cpus: str) -> None:
    """RSS growth of ``name`` over at least ``long_run_requests`` chat requests at high concurrency."""
    assert run.upstream is not None
    if run.upstream.set_mode("json") is not None:
        return
    system = run.running[name]
    scenario = Scenario("chat", False, run.plan.long_run_connections)
    script = _script(run, name, "chat", False)
    start_rss = system.rss_kib()
    if start_rss is None:
        return
    samples: list[tuple[int, int]] = [(0, start_rss)]
    total, errors = 0, 0
    began = time.monotonic()
    say(f"long run: {name}, {run.plan.long_run_requests:,} requests")
    while total < run.plan.long_run_requests and time.monotonic() - began < LONG_RUN_CAP_S:
        result = run_wrk(
            run.registry, run.wrk_bin, _url(system, "chat"), script, scenario.connections, LONG_RUN_SEGMENT_S, load_cpus
        )
        rss = system.rss_kib()
        if isinstance(result, str) or rss is None:
            run.fail(name, f"died during the long run\n{_log_tail(system)}")
            return
        total += result.requests
        errors += result.errors
        samples.append((total, rss))
    growth = aggregate.rss_growth(samples)
    run.status[name]["long_run"] = {
        "growth": growth,
        "errors": errors,
        "samples": samples,
        "complete": total >= run.plan.long_run_requests,
    }


def _probe_phase(run: Run) -> None:
    assert run.upstream is not None
    plan = run.plan
    run.probe = {"chunks": plan.probe_chunks, "delay_ms": plan.probe_delay_ms, "requests": plan.probe_requests}
    why = run.upstream.start_mock(plan.probe_chunks, plan.probe_delay_ms)
    if why is None:
        why = run.upstream.set_mode("mock")
    if why is not None:
        run.probe["skipped"] = why
        run.note(f"streaming probe skipped: {why}")
        return
    say(f"streaming probe: {plan.probe_chunks} chunks {plan.probe_delay_ms} ms apart, {plan.probe_requests} req each")
    run.probe["results"] = asyncio.run(_probe(run))


async def _probe(run: Run) -> dict[str, dict[str, Any]]:
    names = [n for n in run.names if n in run.running]
    out: dict[str, dict[str, Any]] = {}
    async with stream_probe.new_session() as session:
        for endpoint in run.plan.probe_endpoints:
            samples: dict[str, list[stream_probe.StreamSample]] = {n: [] for n in names}
            for index in range(-3, run.plan.probe_requests):  # 3 warm-up requests, not recorded
                for name in rotation(names, index):
                    got = await _one_sample(session, run.running[name], name, endpoint)
                    if index >= 0:
                        samples[name].append(got)
            stats = {n: stream_probe.summarize(s) for n, s in samples.items()}
            direct = stats.get("direct")
            out[endpoint] = {
                n: {**st.to_json(), **(stream_probe.added(st, direct) if direct is not None else {})}
                for n, st in stats.items()
            }
    return out


async def _one_sample(
    session: aiohttp.ClientSession, system: systems.System, name: str, endpoint: Endpoint
) -> stream_probe.StreamSample:
    body = bodies.request_body(endpoint, systems.model_for(name, endpoint), stream=True)
    try:
        return await stream_probe.sample(session, _url(system, endpoint), body, system.headers)
    except (aiohttp.ClientError, TimeoutError):
        return stream_probe.StreamSample(status=0, ttfb_s=0.0, event_times_s=[])


def _results(run: Run, interrupted: bool) -> dict[str, Any]:
    scenarios: list[dict[str, Any]] = []
    medians: dict[str, dict[str, dict[str, Any]]] = {}
    for scenario in run.plan.scenarios:
        cells = run.cells.get(scenario.id)
        if cells is None:
            continue
        direct = aggregate.median_of_rounds(cells.get("direct", {}).get("rounds", []))
        per_system: dict[str, dict[str, Any]] = {}
        for name, cell in cells.items():
            rounds: list[WrkResult] = cell["rounds"]
            cpu: list[dict[str, float]] = cell["cpu"]
            median = aggregate.median_of_rounds(rounds)
            if median is not None:
                median.update(aggregate.median_cpu(cpu))
                if name != "direct" and median["other_cpu_pct"] > OTHER_LOAD_WARN_PCT:
                    run.note(
                        f"{scenario.id}/{name}: {median['other_cpu_pct']:.0f}% of the server core went to other "
                        "processes during the rounds (shared machine); its figures are perturbed"
                    )
            per_system[name] = {
                "median": median,
                "added_p50_ms": aggregate.added_p50_ms(median, direct) if name != "direct" else None,
                "error": cell["error"],
                "rounds": [{**r.to_json(), **c} for r, c in zip(rounds, cpu, strict=True)],
            }
        medians[scenario.id] = per_system
        scenarios.append({**scenario.to_json(), "results": per_system})
    return {
        "meta": {
            "machine": machine.describe(systems.REPO_ROOT, run.wrk_bin, provision.find(provision.NGINX)),
            "interrupted": interrupted,
            "pinning": {"servers": f"taskset -c {SERVER_CPU}", "load_and_upstream": f"taskset -c {LOAD_CPU}"},
            "settings": {
                **run.plan.to_json(),
                "wrk": "wrk -t1 --timeout 10s (one thread, keep-alive, closed loop)",
                "nginx": "1 worker, access_log off, fixed bodies (json/sse), pass-through to the mock for the probe",
                "tollway": "tollway serve --workers 1, default production settings, auth on (project-scoped key)",
                "litellm": "litellm --num_workers 1, no DB, disable_spend_logs, no master key",
                "bare": "uvicorn (uvloop, httptools) + aiohttp ClientSession + orjson, no logic",
            },
        },
        "systems": {name: run.status.get(name, {"status": "not run"}) for name in run.names},
        "scenarios": scenarios,
        "ratios": aggregate.ratios(medians),
        "stream_probe": run.probe,
    }

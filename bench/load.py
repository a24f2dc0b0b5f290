"""Load generation with wrk: the Lua script (POST body + a ``done()`` printing JSON), the run, the parse.

wrk keeps ``connections`` keep-alive connections busy for ``duration_s`` (closed loop), one thread, pinned
to the load core. Its ``done()`` hook prints one line ``WRK_JSON {...}`` with the request count, the error
counters and the latency distribution (microseconds), which :func:`parse_wrk_output` reads.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import orjson

from bench.processes import ProcessRegistry

MARKER = "WRK_JSON "

_DONE = """
done = function(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    'WRK_JSON {"requests":%.0f,"duration_us":%.0f,"bytes":%.0f,' ..
    '"errors":{"connect":%.0f,"read":%.0f,"write":%.0f,"status":%.0f,"timeout":%.0f},' ..
    '"latency_us":{"min":%.0f,"mean":%.1f,"stdev":%.1f,"max":%.0f,' ..
    '"p50":%.0f,"p90":%.0f,"p99":%.0f,"p999":%.0f}}\\n',
    summary.requests, summary.duration, summary.bytes,
    e.connect, e.read, e.write, e.status, e.timeout,
    latency.min, latency.mean, latency.stdev, latency.max,
    latency:percentile(50), latency:percentile(90), latency:percentile(99), latency:percentile(99.9)))
end
"""


@dataclass(slots=True)
class WrkResult:
    requests: int
    duration_s: float
    rps: float
    mean_ms: float
    p50_ms: float
    p90_ms: float
    p99_ms: float
    p999_ms: float
    max_ms: float
    errors: int
    status_errors: int
    timeouts: int

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


def lua_script(body: bytes, headers: dict[str, str]) -> str:
    """A wrk script POSTing ``body`` with ``headers`` and reporting as JSON when done."""
    text = body.decode()
    if "]==]" in text:
        raise ValueError("request body contains the Lua long-string terminator ]==]")
    lines = ['wrk.method = "POST"', f"wrk.body = [==[{text}]==]"]
    for name, value in headers.items():
        lines.append(f"wrk.headers[{_lua_string(name)}] = {_lua_string(value)}")
    return "\n".join(lines) + "\n" + _DONE


def _lua_string(value: str) -> str:
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'


def parse_wrk_output(stdout: str) -> WrkResult:
    """Read the ``WRK_JSON`` line wrk's ``done()`` printed. Raises ValueError when there is none."""
    for line in stdout.splitlines():
        if line.startswith(MARKER):
            data = orjson.loads(line[len(MARKER) :])
            break
    else:
        raise ValueError("no WRK_JSON line in wrk output")
    errors = data["errors"]
    latency = data["latency_us"]
    duration_s = data["duration_us"] / 1e6
    requests = int(data["requests"])
    return WrkResult(
        requests=requests,
        duration_s=duration_s,
        rps=requests / duration_s if duration_s > 0 else 0.0,
        mean_ms=latency["mean"] / 1000,
        p50_ms=latency["p50"] / 1000,
        p90_ms=latency["p90"] / 1000,
        p99_ms=latency["p99"] / 1000,
        p999_ms=latency["p999"] / 1000,
        max_ms=latency["max"] / 1000,
        errors=int(sum(errors.values())),
        status_errors=int(errors["status"]),
        timeouts=int(errors["timeout"]),
    )


def run_wrk(
    registry: ProcessRegistry,
    wrk_bin: str,
    url: str,
    script: Path,
    connections: int,
    duration_s: float,
    cpus: str,
) -> WrkResult | str:
    """Run wrk once: the parsed result, or why it failed."""
    argv = [wrk_bin, "-t1", f"-c{connections}", f"-d{duration_s:g}s", "--timeout", "10s", "-s", str(script), url]
    done = registry.run("wrk", argv, cpus=cpus, timeout_s=duration_s + 60)
    try:
        return parse_wrk_output(done.stdout)
    except ValueError:
        detail = (done.stderr.strip() or done.stdout.strip())[-500:]
        return f"wrk exited with {done.returncode}: {detail}"

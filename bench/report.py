"""The written report: results.json (everything), results.md (tables for the README), chart.png.

The chart is drawn by :mod:`bench.chart` in a throwaway environment with matplotlib (not a project
dependency): ``uv run --no-project --with matplotlib==<pin> python bench/chart.py``.
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path
from typing import Any

import orjson

MATPLOTLIB = "matplotlib==3.11.2"
CHART_SCRIPT = Path(__file__).resolve().parent / "chart.py"
_DOORS = {"chat": "POST /v1/chat/completions", "responses": "POST /v1/responses"}


def write(out_dir: Path, results: dict[str, Any], notes: list[str]) -> list[Path]:
    """Write results.json, chart.png (when matplotlib can be had) and results.md. Returns the paths written."""
    out_dir.mkdir(parents=True, exist_ok=True)
    json_path = out_dir / "results.json"
    json_path.write_bytes(orjson.dumps(results, option=orjson.OPT_INDENT_2))
    written = [json_path]
    chart_path = out_dir / "chart.png"
    chart_problem = draw_chart(json_path, chart_path)
    if chart_problem is None:
        written.append(chart_path)
    else:
        notes.append(f"no chart: {chart_problem}")
    md_path = out_dir / "results.md"
    md_path.write_text(render_markdown(results, notes, chart_path.name if chart_problem is None else None))
    written.append(md_path)
    return written


def draw_chart(json_path: Path, png_path: Path) -> str | None:
    """Run bench/chart.py with matplotlib. None on success, else why not."""
    uv = shutil.which("uv")
    if uv is None:
        return "uv not found"
    argv = [uv, "run", "--no-project", "--with", MATPLOTLIB, "python", str(CHART_SCRIPT), str(json_path), str(png_path)]
    try:
        done = subprocess.run(argv, capture_output=True, text=True, check=False, timeout=300)
    except subprocess.TimeoutExpired:
        return "chart drawing timed out"
    if done.returncode != 0:
        return (done.stderr.strip().splitlines() or ["failed"])[-1]
    return None


def fmt(value: float | None, digits: int = 2) -> str:
    """A number for a table cell; ``n/a`` when missing."""
    if value is None:
        return "n/a"
    if digits == 0:
        return f"{value:,.0f}"
    return f"{value:,.{digits}f}"


def _cpu(system: str, pct: float | None) -> str:
    # direct has no server on the measured core: its CPU columns mean nothing
    return "n/a" if system == "direct" else fmt(pct, 0)


def _mib(kib: float | None) -> str:
    return "n/a" if kib is None else f"{kib / 1024:,.1f}"


def _ratio(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.2f}x"


def _header(results: dict[str, Any]) -> list[str]:
    meta = results["meta"]
    m = meta["machine"]
    s = meta["settings"]
    v = m["versions"]
    title = f"# tollway benchmark: {s['mode']} run, {m['date_utc']}"
    if meta.get("interrupted"):
        title += " (interrupted, partial)"
    return [
        title,
        "",
        f"- Machine: {m['cpu_model']}, {m['cores']} cores, Linux {m['kernel']}, Python {m['python']}",
        f"- Versions: tollway {v['tollway']} ({v['tollway_commit']}), LiteLLM {v['litellm']}, "
        f"uvicorn {v['uvicorn']}, uvloop {v['uvloop']}, httptools {v['httptools']}, aiohttp {v['aiohttp']}, "
        f"orjson {v['orjson']}, {v['nginx']}, {v['wrk']}",
        f"- Method: servers under test pinned alone on a core ({meta['pinning']['servers']}), wrk, the nginx "
        f"upstream and the harness on the other ({meta['pinning']['load_and_upstream']}); per scenario "
        f"{s['warmup_s']} s warm-up per system, then {s['rounds']} interleaved rounds of {s['duration_s']} s "
        "(systems round-robin, order rotated each round); figures are medians over the rounds.",
        f"- Upstream: zero-delay nginx, {s['upstream_chunks']} text deltas per streamed answer. "
        f"Added latency = p50(system) - p50(direct) in the same scenario.",
        f"- Settings: bare = {s['bare']}; tollway = {s['tollway']}; LiteLLM = {s['litellm']}.",
        f"- {_long_run_line(s)}",
        "- `other load on its core %`: share of the server core used by other processes during the rounds "
        "(the machine may be shared); above 10% the figures are perturbed.",
        "",
    ]


def _long_run_line(settings: dict[str, Any]) -> str:
    requests = settings.get("long_run_requests", 0)
    if not requests:
        return "RSS growth run: not run (quick mode or --long-run-requests 0)."
    return (
        f"RSS growth run: at least {requests:,} chat requests per system at "
        f"{settings.get('long_run_connections')} connections, RSS sampled every 10 s."
    )


def _systems_table(results: dict[str, Any]) -> list[str]:
    lines = [
        "## Systems",
        "",
        "| system | status | start s | RSS idle MiB | RSS after run MiB | long run: requests | RSS growth MiB |",
        "|---|---|---:|---:|---:|---:|---:|",
    ]
    for name, info in results["systems"].items():
        status = info.get("status", "n/a")
        reason = info.get("reason")
        if reason:
            status += ": " + reason.splitlines()[0].replace("|", "\\|")
        growth = (info.get("long_run") or {}).get("growth") or {}
        lines.append(
            f"| {name} | {status} | {fmt(info.get('start_s'), 1)} | {_mib(info.get('rss_idle_kib'))} "
            f"| {_mib(info.get('rss_after_kib'))} | {fmt(growth.get('requests'), 0)} "
            f"| {_mib(growth.get('growth_kib'))} |"
        )
    return [*lines, ""]


def _ratios_table(results: dict[str, Any]) -> list[str]:
    ratios: dict[str, Any] = results["ratios"]
    lines = ["## Ratios (same run)", ""]
    if not ratios:
        return [*lines, "No pair of systems measured together (needs tollway, bare or LiteLLM).", ""]
    lines += [
        "req/s ratio > 1: the first system is faster; p50 and added-p50 ratios < 1: the first adds less.",
        "",
        "| pair | scenario | req/s ratio | p50 ratio | added-p50 ratio |",
        "|---|---|---:|---:|---:|",
    ]
    for pair, data in ratios.items():
        for scenario_id, r in data["scenarios"].items():
            lines.append(
                f"| {pair} | {scenario_id} | {_ratio(r['rps'])} | {_ratio(r['p50'])} | {_ratio(r['added_p50'])} |"
            )
        g = data["geomean"]
        lines.append(
            f"| **{pair}** | **geomean** | {_ratio(g['rps'])} | {_ratio(g['p50'])} | {_ratio(g['added_p50'])} |"
        )
    return [*lines, ""]


def _scenario_tables(results: dict[str, Any]) -> list[str]:
    lines = ["## Throughput and latency", ""]
    for scenario in results["scenarios"]:
        kind = "streaming" if scenario["stream"] else "non-streaming"
        lines += [
            f"### {scenario['id']}: {_DOORS[scenario['endpoint']]}, {kind}, {scenario['connections']} connections",
            "",
            "| system | req/s | p50 ms | p90 ms | p99 ms | added p50 ms | errors | rounds | server CPU % "
            "| other load on its core % |",
            "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
        ]
        for name, cell in scenario["results"].items():
            m = cell["median"]
            if m is None:
                why = (cell["error"] or "no data").splitlines()[0][:160].replace("|", "\\|")
                lines.append(f"| {name} | {why} ||||||| 0 |||")
                continue
            lines.append(
                f"| {name} | {fmt(m['rps'], 0)} | {fmt(m['p50_ms'])} | {fmt(m['p90_ms'])} | {fmt(m['p99_ms'])} "
                f"| {fmt(cell['added_p50_ms'])} | {fmt(m['errors'], 0)} | {fmt(m['rounds'], 0)} "
                f"| {_cpu(name, m.get('server_cpu_pct'))} | {_cpu(name, m.get('other_cpu_pct'))} |"
            )
        lines.append("")
    return lines


def _probe_table(results: dict[str, Any]) -> list[str]:
    probe: dict[str, Any] = results["stream_probe"]
    lines = ["## Streaming probe (time to first byte, per-chunk delay)", ""]
    if not probe:
        return [*lines, "Not run.", ""]
    if "skipped" in probe:
        return [*lines, f"Skipped: {probe['skipped'].splitlines()[0]}", ""]
    lines += [
        f"Upstream: tollway's mock behind nginx, {probe['chunks']} chunks {probe['delay_ms']} ms apart; "
        f"{probe['requests']} sequential requests per system, interleaved; medians. Added = system - direct.",
        "",
        "| endpoint | system | TTFB p50 ms | added TTFB ms | chunk gap ms | added per chunk ms | events | errors |",
        "|---|---|---:|---:|---:|---:|---:|---:|",
    ]
    for endpoint, per_system in probe.get("results", {}).items():
        for name, st in per_system.items():
            lines.append(
                f"| {endpoint} | {name} | {fmt(st['ttfb_p50_ms'])} | {fmt(st.get('added_ttfb_ms'))} "
                f"| {fmt(st['gap_mean_ms'], 3)} | {fmt(st.get('added_gap_ms'), 3)} | {fmt(st['events'], 0)} "
                f"| {st['errors']} |"
            )
    return [*lines, ""]


def render_markdown(results: dict[str, Any], notes: list[str], chart_name: str | None) -> str:
    """The Markdown report of one run."""
    lines = _header(results)
    lines += _ratios_table(results)
    lines += _scenario_tables(results)
    lines += _probe_table(results)
    lines += _systems_table(results)
    if chart_name is not None:
        lines += [f"![latency percentiles and throughput per system]({chart_name})", ""]
    if notes:
        lines += ["## Notes", "", *[f"- {note.splitlines()[0]}" for note in notes], ""]
    return "\n".join(lines)

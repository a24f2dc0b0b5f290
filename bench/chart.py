"""Draw chart.png from results.json: throughput and latency percentiles per system and scenario.

Runs outside the project environment, with matplotlib from PyPI (see bench/report.py):
``uv run --no-project --with matplotlib==3.11.2 python bench/chart.py results.json chart.png``.
Only the standard library and matplotlib are imported.
"""

from __future__ import annotations

import importlib
import json
import sys
from pathlib import Path
from typing import Any

COLORS = {"direct": "#9e9e9e", "bare": "#4c78a8", "tollway": "#f58518", "litellm": "#54a24b"}


def _series(results: dict[str, Any]) -> tuple[list[str], list[str], dict[str, dict[str, dict[str, float]]]]:
    """Scenario ids, system names (in first-seen order) and scenario → system → median."""
    scenario_ids: list[str] = []
    names: list[str] = []
    medians: dict[str, dict[str, dict[str, float]]] = {}
    for scenario in results["scenarios"]:
        per_system = {n: c["median"] for n, c in scenario["results"].items() if c["median"] is not None}
        if not per_system:
            continue
        scenario_ids.append(scenario["id"])
        medians[scenario["id"]] = per_system
        names += [n for n in per_system if n not in names]
    return scenario_ids, names, medians


def draw(results: dict[str, Any], png_path: Path) -> None:
    matplotlib: Any = importlib.import_module("matplotlib")
    matplotlib.use("Agg")
    plt: Any = importlib.import_module("matplotlib.pyplot")
    scenario_ids, names, medians = _series(results)
    if not scenario_ids:
        raise SystemExit("no measured scenario to draw")
    # direct is nginx alone: tens of thousands of req/s would flatten every proxy's bar, so it is left out
    # of the throughput panel (it stays in the latency panel as the floor).
    proxies = [n for n in names if n != "direct"] or names
    fig, (top, bottom) = plt.subplots(2, 1, figsize=(max(8, 1.1 * len(scenario_ids) + 3), 8), sharex=True)
    for panel, shown in ((top, proxies), (bottom, names)):
        width = 0.8 / len(shown)
        for i, name in enumerate(shown):
            xs = [k + (i - (len(shown) - 1) / 2) * width for k in range(len(scenario_ids))]
            got = [medians[s].get(name) for s in scenario_ids]
            color = COLORS.get(name, f"C{names.index(name)}")
            if panel is top:
                top.bar(xs, [m["rps"] if m else 0 for m in got], width, label=name, color=color)
                continue
            bottom.bar(xs, [m["p50_ms"] if m else 0 for m in got], width, label=f"{name} p50", color=color)
            for x, m in zip(xs, got, strict=True):
                if m:
                    bottom.vlines(x, m["p50_ms"], m["p99_ms"], color="black", linewidth=1)
                    bottom.plot([x], [m["p90_ms"]], marker="_", color="black", markersize=8)
                    bottom.plot([x], [m["p99_ms"]], marker="v", color="black", markersize=4)
    mode = results["meta"]["settings"]["mode"]
    machine = results["meta"]["machine"]
    top.set_title(f"tollway benchmark ({mode}) — {machine['cpu_model']}, server pinned to 1 core")
    top.set_ylabel("requests / s (median; direct omitted)")
    top.legend(ncol=len(proxies), fontsize=8)
    top.grid(axis="y", alpha=0.3)
    bottom.set_ylabel("latency ms: bar p50, tick p90, ▼ p99")
    bottom.legend(ncol=len(names), fontsize=8)
    bottom.set_yscale("log")
    bottom.grid(axis="y", alpha=0.3)
    bottom.set_xticks(range(len(scenario_ids)))
    bottom.set_xticklabels(scenario_ids, rotation=20, ha="right", fontsize=8)
    fig.tight_layout()
    fig.savefig(png_path, dpi=120)


def main() -> None:
    if len(sys.argv) != 3:
        raise SystemExit("usage: chart.py results.json chart.png")
    results = json.loads(Path(sys.argv[1]).read_text())
    draw(results, Path(sys.argv[2]))


if __name__ == "__main__":
    main()

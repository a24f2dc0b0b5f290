"""CPU accounting around a load run: how busy the server core was, and how much of that was not the server.

The machine may be shared (other jobs, other developers' tests). Each measured run records the busy share of
the server core (``/proc/stat``) and the server's own CPU time (``/proc/<pid>/stat`` of its process group);
the difference, ``other_pct``, is load that competed with the server and makes a figure suspect.
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass
from pathlib import Path

from bench.processes import group_pids


def parse_core_jiffies(proc_stat: str, core: int) -> tuple[int, int]:
    """(busy, total) jiffies of ``cpu<core>`` from the text of ``/proc/stat``."""
    label = f"cpu{core}"
    for line in proc_stat.splitlines():
        fields = line.split()
        if fields and fields[0] == label:
            # user nice system idle iowait irq softirq steal (guest time is already inside user/nice)
            values = [int(v) for v in fields[1:9]]
            total = sum(values)
            return total - values[3] - values[4], total
    raise ValueError(f"no {label} line in /proc/stat")


def parse_process_ticks(stat_text: str) -> int:
    """utime + stime (clock ticks) from the text of ``/proc/<pid>/stat``."""
    after_comm = stat_text[stat_text.rindex(")") + 2 :].split()
    # after comm: state(0) ppid pgrp session tty tpgid flags minflt cminflt majflt cmajflt utime(11) stime(12)
    return int(after_comm[11]) + int(after_comm[12])


def _group_ticks(pgid: int) -> int:
    total = 0
    for pid in group_pids(pgid):
        try:
            total += parse_process_ticks(Path(f"/proc/{pid}/stat").read_text())
        except (FileNotFoundError, ProcessLookupError, PermissionError):
            continue
    return total


@dataclass(slots=True)
class CpuMeter:
    """Started before a run, read after it."""

    core: int
    pgid: int | None
    wall: float = 0.0
    busy: int = 0
    total: int = 0
    ticks: int = 0

    def start(self) -> CpuMeter:
        self.wall = time.monotonic()
        self.busy, self.total = parse_core_jiffies(Path("/proc/stat").read_text(), self.core)
        self.ticks = _group_ticks(self.pgid) if self.pgid is not None else 0
        return self

    def stop(self) -> dict[str, float]:
        """``core_busy_pct`` of the server core, ``server_pct`` (of one core), ``other_pct`` (the rest)."""
        busy, total = parse_core_jiffies(Path("/proc/stat").read_text(), self.core)
        ticks = _group_ticks(self.pgid) if self.pgid is not None else self.ticks
        hz = os.sysconf("SC_CLK_TCK")
        wall = max(time.monotonic() - self.wall, 1e-9)
        core_busy = 100.0 * (busy - self.busy) / max(total - self.total, 1)
        server = 100.0 * (ticks - self.ticks) / hz / wall
        return {"core_busy_pct": core_busy, "server_pct": server, "other_pct": max(0.0, core_busy - server)}


def wait_idle(pgid: int, timeout_s: float = 15.0, window_s: float = 0.25, max_pct: float = 5.0) -> float:
    """Wait until process group ``pgid`` uses at most ``max_pct`` of a core over ``window_s``.

    A server keeps working on the requests already accepted when wrk stops (LiteLLM at 64 connections
    has ~0.5 s of them). Waiting for it to go quiet keeps that work out of the next system's run on the
    same core, and keeps in-flight upstream calls from meeting the upstream's next mode. Returns the wait.
    """
    hz = os.sysconf("SC_CLK_TCK")
    began = time.monotonic()
    before = _group_ticks(pgid)
    while time.monotonic() - began < timeout_s:
        time.sleep(window_s)
        after = _group_ticks(pgid)
        if 100.0 * (after - before) / hz / window_s <= max_pct:
            break
        before = after
    return time.monotonic() - began

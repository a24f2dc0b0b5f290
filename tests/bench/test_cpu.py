from __future__ import annotations

import pytest

from bench.cpu import parse_core_jiffies, parse_process_ticks

PROC_STAT = """cpu  500 10 200 9000 50 0 5 0 0 0
cpu0 300 5 100 4000 20 0 3 0 7 0
cpu1 200 5 100 5000 30 0 2 0 0 0
intr 12345
"""


def test_core_jiffies_busy_excludes_idle_and_iowait() -> None:
    busy, total = parse_core_jiffies(PROC_STAT, 0)
    assert total == 300 + 5 + 100 + 4000 + 20 + 0 + 3 + 0
    assert busy == total - 4000 - 20
    busy1, _ = parse_core_jiffies(PROC_STAT, 1)
    assert busy1 == 200 + 5 + 100 + 2


def test_core_jiffies_unknown_core() -> None:
    with pytest.raises(ValueError, match="cpu7"):
        parse_core_jiffies(PROC_STAT, 7)


def test_process_ticks_are_utime_plus_stime() -> None:
    stat = "4242 (my server) S 4200 4210 4210 0 -1 4194560 1234 0 0 0 170 45 0 0 20 0 3 0"
    assert parse_process_ticks(stat) == 215

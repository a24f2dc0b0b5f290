from __future__ import annotations

from bench.plan import FULL, QUICK, make_plan, rotation


def test_full_plan_covers_both_doors_both_modes_three_concurrencies() -> None:
    ids = {s.id for s in FULL.scenarios}
    assert len(ids) == 12
    assert "chat-json-c1" in ids
    assert "responses-stream-c64" in ids
    assert FULL.long_run_requests >= 100_000


def test_quick_plan_is_smaller() -> None:
    assert len(QUICK.scenarios) < len(FULL.scenarios)
    assert QUICK.long_run_requests == 0
    assert QUICK.rounds >= 3  # medians need several rounds


def test_make_plan_overrides() -> None:
    plan = make_plan(quick=True, duration_s=7, rounds=4, long_run_requests=0)
    assert (plan.mode, plan.duration_s, plan.rounds) == ("quick", 7, 4)
    assert make_plan(quick=False, duration_s=0).duration_s == 1
    assert make_plan(quick=False).mode == "full"
    probe = make_plan(quick=True, probe_chunks=100, probe_delay_ms=0)
    assert (probe.probe_chunks, probe.probe_delay_ms) == (100, 0)


def test_rotation_changes_who_goes_first() -> None:
    names = ["direct", "bare", "tollway"]
    assert rotation(names, 0) == ["direct", "bare", "tollway"]
    assert rotation(names, 1) == ["bare", "tollway", "direct"]
    assert rotation(names, 3) == names
    assert rotation(names, -1) == ["tollway", "direct", "bare"]
    assert rotation([], 2) == []

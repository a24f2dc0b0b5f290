from __future__ import annotations

from bench.processes import parse_stat_pgrp, parse_statm_rss_kib, pinned


def test_parse_stat_pgrp_with_spaces_and_parens_in_comm() -> None:
    stat = "4242 (python (uvicorn) x) S 4200 4210 4210 0 -1 4194560 1234 0 0 0 17 5 0 0 20 0 3 0"
    assert parse_stat_pgrp(stat) == 4210


def test_parse_stat_pgrp_plain() -> None:
    assert parse_stat_pgrp("1 (init) S 0 1 1 0 -1") == 1


def test_parse_statm_rss_is_second_field_in_pages() -> None:
    assert parse_statm_rss_kib("120000 22000 3000 100 0 40000 0", page_kib=4) == 88_000


def test_pinned() -> None:
    assert pinned("0") == ["taskset", "-c", "0"]
    assert pinned(None) == []
    assert pinned("") == []

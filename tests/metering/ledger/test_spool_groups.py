"""The spool's grouped layout: one SQLite row per group commit, rows addressed inside it."""

from __future__ import annotations

import asyncio
import contextlib
import sqlite3
from pathlib import Path

import orjson

from tests.metering.ledger.test_spool import opened, row
from tollway.metering.ledger.entries import encode_row
from tollway.metering.ledger.groups import decode_group, split_seq


def group_rows(path: Path) -> list[tuple[int, int, int]]:
    with contextlib.closing(sqlite3.connect(path)) as conn:  # closed: the spool must be able to claim it again
        return [(int(s), int(r), int(q)) for s, r, q in conn.execute(
            "SELECT seq, rows, quarantined FROM spool_groups ORDER BY seq")]


async def test_one_group_per_commit_and_rows_addressed_inside_it(tmp_path: Path) -> None:
    spool = await opened(tmp_path / "spool.db", linger_s=0.05)
    for n in range(30):
        spool.append(row(n))
    await spool.flush()
    batch = await spool.read(100)
    assert [orjson.loads(b.payload)["request_id"] for b in batch] == [f"req_{n}" for n in range(30)]
    groups = {split_seq(b.seq)[0] for b in batch}
    assert len(groups) == 1  # one commit, one SQLite row
    await spool.close()
    assert group_rows(tmp_path / "spool.0.db") == [(next(iter(groups)), 30, 0)]


async def test_partly_shipped_group_resumes_exactly_after_a_clean_restart(tmp_path: Path) -> None:
    spool = await opened(tmp_path / "spool.db", linger_s=0.05)
    for n in range(10):
        spool.append(row(n))
    await spool.flush()
    first = await spool.read(4)
    await spool.delete([b.seq for b in first])
    assert spool.rows == 6
    rest = await spool.read(100)  # the group is read again, the shipped rows are skipped
    assert [orjson.loads(b.payload)["request_id"] for b in rest] == [f"req_{n}" for n in range(4, 10)]
    await spool.close()
    again = await opened(tmp_path / "spool.db")
    try:
        assert again.rows == 6
        left = await again.read(100)
        assert [b.entry_id for b in left] == [b.entry_id for b in rest]  # same ids: re-delivery is idempotent
        await again.delete([b.seq for b in left])
        assert again.rows == 0 and again.oldest is None
    finally:
        await again.close()
    assert group_rows(tmp_path / "spool.0.db") == []


async def test_crash_mid_group_redelivers_the_group_with_the_same_entry_ids(tmp_path: Path) -> None:
    spool = await opened(tmp_path / "spool.db", linger_s=0.05)
    for n in range(5):
        spool.append(row(n))
    await spool.flush()
    everything = await spool.read(100)
    await spool.delete([everything[0].seq])
    spool._done.clear()  # what a SIGKILL loses: the in-memory record of the shipped row
    await spool.close()
    again = await opened(tmp_path / "spool.db")
    try:
        again_rows = await again.read(100)
        assert [b.entry_id for b in again_rows] == [b.entry_id for b in everything]
    finally:
        await again.close()


async def test_quarantine_inside_a_group_keeps_the_others_in_order(tmp_path: Path) -> None:
    spool = await opened(tmp_path / "spool.db", linger_s=0.05)
    for n in range(6):
        spool.append(row(n))
    await spool.flush()
    batch = await spool.read(100)
    await spool.quarantine([batch[2].seq, batch[4].seq])
    assert spool.quarantined == 2 and spool.rows == 6
    left = await spool.read(100)
    assert [b.seq for b in left] == [b.seq for i, b in enumerate(batch) if i not in (2, 4)]
    await spool.delete([b.seq for b in left])
    assert spool.rows == 2  # only the quarantined rows remain, in their own group
    await spool.close()
    assert [(r, q) for _, r, q in group_rows(tmp_path / "spool.0.db")] == [(2, 1)]
    again = await opened(tmp_path / "spool.db")  # the next process retries them
    try:
        retried = await again.read(100)
        assert [b.entry_id for b in retried] == [batch[2].entry_id, batch[4].entry_id]
    finally:
        await again.close()


async def test_a_spool_file_of_the_earlier_layout_is_converted(tmp_path: Path) -> None:
    path = tmp_path / "spool.0.db"
    with contextlib.closing(sqlite3.connect(path)) as conn, conn:
        conn.execute("CREATE TABLE spool (seq INTEGER PRIMARY KEY AUTOINCREMENT, entry_id TEXT NOT NULL, "
                     "created_at REAL NOT NULL, payload BLOB NOT NULL, quarantined INTEGER NOT NULL DEFAULT 0)")
        conn.executemany("INSERT INTO spool (entry_id, created_at, payload, quarantined) VALUES (?, ?, ?, ?)",
                         [(f"{n:032x}", 1.5 + n, encode_row(row(n)), int(n == 1)) for n in range(3)])
    spool = await opened(tmp_path / "spool.db")
    try:
        assert spool.path == path and spool.rows == 3
        got = await spool.read(10)
        assert [(b.entry_id, b.created_at) for b in got] == [(f"{n:032x}", 1.5 + n) for n in range(3)]
        assert [orjson.loads(b.payload)["request_id"] for b in got] == ["req_0", "req_1", "req_2"]
    finally:
        await spool.close()
    with contextlib.closing(sqlite3.connect(path)) as conn:
        tables = {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
    assert "spool" not in tables


def test_a_damaged_line_still_yields_a_row_to_quarantine() -> None:
    rows = decode_group(3, b"a" * 32 + b"\t1.0\t{}\n" + b"garbage without tabs\n\n" + b"b" * 32 + b"\tx\t{}")
    assert [(r.entry_id[:7], r.payload) for r in rows] == [
        ("aaaaaaa", b"{}"), ("damaged", b"garbage without tabs"), ("damaged", b"b" * 32 + b"\tx\t{}")]
    assert [split_seq(r.seq) for r in rows] == [(3, 0), (3, 1), (3, 3)]  # index 2 was a tombstone


async def test_many_groups_are_read_in_order(tmp_path: Path) -> None:
    spool = await opened(tmp_path / "spool.db", linger_s=0.0, max_group=7)
    for n in range(100):
        spool.append(row(n))
        if n % 13 == 0:
            await asyncio.sleep(0)
    await spool.flush()
    seen: list[str] = []
    while batch := await spool.read(9):
        seen += [orjson.loads(b.payload)["request_id"] for b in batch]
        await spool.delete([b.seq for b in batch])
    assert seen == [f"req_{n}" for n in range(100)] and spool.rows == 0
    await spool.close()


async def test_small_drains_keep_free_pages_for_reuse(tmp_path: Path) -> None:
    """Under steady load the spool empties at every ship: its few free pages are reused by the next
    groups, not vacuumed away and re-grown each time."""
    spool = await opened(tmp_path / "spool.db", linger_s=0.0)
    try:
        sizes = []
        for round_ in range(5):
            for n in range(40):
                spool.append(row(round_ * 100 + n, tags={"pad": "z" * 300}))
            await spool.flush()
            while batch := await spool.read(100):
                await spool.delete([b.seq for b in batch])
            free = await spool._call(lambda c: int(c.execute("PRAGMA freelist_count").fetchone()[0]))
            pages = await spool._call(lambda c: int(c.execute("PRAGMA page_count").fetchone()[0]))
            sizes.append(pages)
            assert spool.rows == 0 and free > 0
        assert max(sizes) == min(sizes) or sizes[-1] <= sizes[1]  # the file stops growing: pages are reused
    finally:
        await spool.close()

"""The spool: durable group commits in its own thread, bounded on disk, one owner per file, crash-safe."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import textwrap
import tracemalloc
from pathlib import Path
from typing import Any

import orjson
import pytest

from tests.metering.ledger.conftest import make_record
from tollway.metering.ledger.entries import to_row
from tollway.metering.ledger.spool import (
    Spool,
    SpoolBusyError,
    SpoolError,
    SpoolForeignError,
    slot_path,
    slot_paths,
)

REPO = Path(__file__).resolve().parents[3]


def row(n: int, **extra: Any) -> dict[str, Any]:
    return to_row(make_record(n, **extra))


async def opened(base: Path, **options: Any) -> Spool:
    spool = Spool(base, **options)
    await asyncio.to_thread(spool.open)
    return spool


async def test_append_flush_read_delete(tmp_path: Path) -> None:
    spool = await opened(tmp_path / "spool.db")
    try:
        assert spool.path == tmp_path / "spool.0.db"
        for n in range(10):
            spool.append(row(n))
        await spool.flush()
        assert spool.rows == 10 and spool.appended == 10 and spool.queued == 0
        assert spool.oldest is not None and spool.live_bytes > 0 and spool.disk_bytes() > 0
        batch = await spool.read(4)
        assert [orjson.loads(b.payload)["request_id"] for b in batch] == ["req_0", "req_1", "req_2", "req_3"]
        assert len({b.entry_id for b in batch}) == 4 and all(len(b.entry_id) == 32 for b in batch)
        await spool.delete([b.seq for b in batch])
        assert spool.rows == 6
        rest = await spool.read(100)
        assert [orjson.loads(b.payload)["request_id"] for b in rest] == [f"req_{n}" for n in range(4, 10)]
        await spool.delete([b.seq for b in rest])
        assert spool.rows == 0 and spool.oldest is None
    finally:
        await spool.close()


async def test_group_commit_batches_many_rows_per_fsync(tmp_path: Path) -> None:
    spool = await opened(tmp_path / "spool.db", linger_s=0.005)
    commits = 0

    def on_commit() -> None:
        nonlocal commits
        commits += 1

    spool.set_on_commit(on_commit)
    try:
        for n in range(5000):  # appended from the loop without yielding: no per-row work beyond a queue put
            spool.append(row(n))
        await spool.flush()
        assert spool.rows == 5000
        assert commits <= 50, commits  # groups of many rows (up to max_group), not one fsync per row
    finally:
        await spool.close()


async def test_rows_survive_close_and_reopen(tmp_path: Path) -> None:
    spool = await opened(tmp_path / "spool.db")
    for n in range(3):
        spool.append(row(n))
    await spool.close()
    again = await opened(tmp_path / "spool.db")
    try:
        assert again.path == tmp_path / "spool.0.db" and again.rows == 3
        assert len(await again.read(10)) == 3
    finally:
        await again.close()


async def test_bounded_in_rows_drops_and_reports_full(tmp_path: Path) -> None:
    spool = await opened(tmp_path / "spool.db", max_rows=50)
    try:
        for n in range(80):
            spool.append(row(n))
        await spool.flush()
        assert spool.rows == 50 and spool.dropped == 30
        assert spool.full and not spool.healthy
        batch = await spool.read(10)
        await spool.delete([b.seq for b in batch])
        assert not spool.full and spool.healthy
        spool.append(row(99))
        await spool.flush()
        assert spool.rows == 41 and spool.dropped == 30
    finally:
        await spool.close()


async def test_bounded_in_bytes_on_disk(tmp_path: Path) -> None:
    limit = 2 * 1024 * 1024
    spool = await opened(tmp_path / "spool.db", max_bytes=limit, max_group=50)
    try:
        big = {"pad": "x" * 2000}
        for n in range(1500):
            spool.append(row(n, tags=big))
        await spool.flush()
        assert spool.full and spool.dropped > 0
        assert spool.live_bytes < limit + 50 * 4096  # at most one group past the bound
        assert spool.rows + spool.dropped == 1500
        # Once a backlog has drained, its surplus of free pages is given back (incremental vacuum; up to
        # ~1 MB stays for reuse by the next groups): the file shrinks.
        while batch := await spool.read(200):
            await spool.delete([b.seq for b in batch])
        await spool.close()
        assert os.path.getsize(tmp_path / "spool.0.db") < limit // 2
    finally:
        await spool.close()


async def test_memory_stays_flat_rows_live_on_disk(tmp_path: Path) -> None:
    spool = await opened(tmp_path / "spool.db")
    try:
        rows = [row(n, tags={"pad": "y" * 500}) for n in range(200)]
        tracemalloc.start()
        base, _ = tracemalloc.get_traced_memory()
        for _ in range(100):  # 20,000 rows of ~1 KB: ~20 MB if they were kept in RAM
            for r in rows:
                spool.append(r)
            await spool.flush()
        grown, _ = tracemalloc.get_traced_memory()
        tracemalloc.stop()
        assert spool.rows == 20_000
        assert grown - base < 2 * 1024 * 1024, grown - base
    finally:
        await spool.close()


async def test_one_owner_per_file_slots_and_adoption(tmp_path: Path) -> None:
    base = tmp_path / "spool.db"
    first = await opened(base)
    second = await opened(base)
    try:
        assert (first.path, second.path) == (slot_path(base, 0), slot_path(base, 1))
        other = Spool(base)
        with pytest.raises(SpoolBusyError):
            await asyncio.to_thread(other.adopt, slot_path(base, 0))
        # Another process cannot take it either, and this process's lock survived the failed probe.
        probe = textwrap.dedent(f"""
            from pathlib import Path
            from tollway.metering.ledger.spool import Spool, SpoolBusyError
            try:
                Spool(Path({str(base)!r})).adopt(Path({str(slot_path(base, 0))!r}))
            except SpoolBusyError:
                print("busy")
        """)
        out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, cwd=REPO, timeout=60)
        assert out.stdout.strip() == "busy", out.stderr
        first.append(row(1))
        await first.flush()
        assert first.rows == 1
    finally:
        await first.close()
        await second.close()
    assert slot_paths(base) == [slot_path(base, 0), slot_path(base, 1)]
    adopted = Spool(base)
    await asyncio.to_thread(adopted.adopt, slot_path(base, 0))
    try:
        assert adopted.rows == 1
    finally:
        await adopted.close()


async def test_sigkill_after_commit_loses_nothing(tmp_path: Path) -> None:
    base = tmp_path / "spool.db"
    script = textwrap.dedent(f"""
        import asyncio, sys, time
        from pathlib import Path
        from tests.metering.ledger.conftest import make_record
        from tollway.metering.ledger.entries import to_row
        from tollway.metering.ledger.spool import Spool

        async def main():
            spool = Spool(Path({str(base)!r}))
            spool.open()
            for n in range(500):
                spool.append(to_row(make_record(n)))
            await spool.flush()
            print("flushed", flush=True)
            await asyncio.sleep(60)

        asyncio.run(main())
    """)
    proc = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, cwd=REPO, text=True)
    try:
        assert proc.stdout is not None
        assert proc.stdout.readline().strip() == "flushed"
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(10)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    spool = await opened(base)  # the lock died with the process: slot 0 is free again
    try:
        assert spool.path == slot_path(base, 0) and spool.rows == 500
        ids = {orjson.loads(b.payload)["request_id"] for b in await spool.read(1000)}
        assert ids == {f"req_{n}" for n in range(500)}
    finally:
        await spool.close()


async def test_quarantined_rows_stay_on_disk_and_are_retried_by_the_next_process(tmp_path: Path) -> None:
    spool = await opened(tmp_path / "spool.db")
    for n in range(3):
        spool.append(row(n))
    await spool.flush()
    batch = await spool.read(10)
    await spool.quarantine([batch[0].seq])
    assert spool.quarantined == 1 and spool.rows == 3
    assert [b.seq for b in await spool.read(10)] == [b.seq for b in batch[1:]]
    await spool.close()
    again = await opened(tmp_path / "spool.db")
    try:
        assert again.quarantined == 0 and len(await again.read(10)) == 3
    finally:
        await again.close()


async def test_unusable_directory_is_a_clear_error(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("not a directory")
    with pytest.raises(SpoolError, match="directory"):
        await asyncio.to_thread(Spool(blocker / "spool.db").open)


async def test_damaged_slot_file_is_skipped(tmp_path: Path) -> None:
    (tmp_path / "spool.0.db").write_bytes(b"this is not a sqlite database" * 100)
    spool = await opened(tmp_path / "spool.db")
    try:
        assert spool.path == tmp_path / "spool.1.db"
    finally:
        await spool.close()


async def test_append_after_close_is_counted_not_raised(tmp_path: Path) -> None:
    spool = await opened(tmp_path / "spool.db")
    await spool.close()
    spool.append(row(1))
    assert spool.dropped == 1 and not spool.healthy
    with pytest.raises(SpoolError):
        await spool.read(1)


async def test_unwritable_spool_reports_itself_and_bounds_the_queue(tmp_path: Path) -> None:
    spool = await opened(tmp_path / "spool.db", max_queue=10)
    await spool._call(lambda conn: conn.close())  # every later write fails, like a dead disk
    spool.append(row(0))
    for _ in range(200):
        if spool.error is not None:
            break
        await asyncio.sleep(0.01)
    assert spool.error is not None and "closed" in spool.error and not spool.healthy
    for n in range(1, 31):
        spool.append(row(n))
    assert spool.queued <= 10 and spool.dropped >= 20  # waiting rows stay bounded in RAM
    await spool.close(timeout=10)  # gives up on the unwritable file instead of hanging
    assert spool._thread is not None and not spool._thread.is_alive()


async def test_rows_for_another_database_are_never_claimed(tmp_path: Path) -> None:
    base = tmp_path / "spool.db"
    mine = await opened(base, database="postgresql:prod")
    mine.append(row(1))
    await mine.close()
    other = await opened(base, database="postgresql:staging")  # slot 0 holds prod's row: skipped
    try:
        assert other.path == slot_path(base, 1)
    finally:
        await other.close()
    with pytest.raises(SpoolForeignError):
        await asyncio.to_thread(Spool(base, database="postgresql:staging").adopt, slot_path(base, 0))
    again = await opened(base, database="postgresql:prod")
    try:
        assert again.path == slot_path(base, 0) and again.rows == 1
    finally:
        await again.close()

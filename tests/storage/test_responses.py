"""ResponseStore against real databases: every test taking ``store``/``make_store``/``migrated_url`` runs
on SQLite and on PostgreSQL (see conftest)."""

from __future__ import annotations

import asyncio
import logging
import socket
import sqlite3
import time
import uuid
from collections.abc import Callable
from decimal import Decimal
from pathlib import Path
from typing import Any, cast

import pytest
from sqlalchemy import func, select
from sqlalchemy.engine import make_url

from tollway.core.types import Item
from tollway.storage.engine import create_engine
from tollway.storage.errors import StorageUnavailableError, StoreBacklogFullError
from tollway.storage.models import StoredResponseRow
from tollway.storage.responses import ResponseStore, StoredResponse
from tollway.storage.urls import sqlite_database_path

MakeStore = Callable[..., ResponseStore]


def _rid() -> str:
    return f"resp_{uuid.uuid4().hex}"


def _message(item_id: str, role: str, text: str) -> Item:
    part_type = "input_text" if role == "user" else "output_text"
    part: Item = {"type": part_type, "text": text}
    if role == "assistant":
        part["annotations"] = []
    item: Item = {"id": item_id, "type": "message", "role": role, "content": [part]}
    if role == "assistant":
        item["status"] = "completed"
    return item


def _save_turn(
    store: ResponseStore,
    response_id: str,
    previous: str | None,
    inputs: list[Item],
    outputs: list[Item],
    *,
    status: str = "completed",
    **resource_extra: Any,
) -> None:
    resource = {"id": response_id, "object": "response", "status": status, "output": outputs, **resource_extra}
    store.save(
        response_id,
        created_at=1_760_000_000,
        model="gpt-test",
        status=status,
        previous_response_id=previous,
        input_items=inputs,
        output_items=outputs,
        resource=resource,
    )


async def _started(make_store: MakeStore, url: str | None = None, **options: Any) -> ResponseStore:
    store = make_store(url, **options)
    await store.start()
    return store


async def _count_rows(url: str) -> int:
    engine = create_engine(url)
    try:
        async with engine.connect() as connection:
            count = await connection.scalar(select(func.count()).select_from(StoredResponseRow))
    finally:
        await engine.dispose()
    return int(count or 0)


def _events(caplog: pytest.LogCaptureFixture, event: str) -> list[logging.LogRecord]:
    return [record for record in caplog.records if getattr(record, "event", None) == event]


async def _wait_for(condition: Callable[[], bool], timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError("condition not met in time")
        await asyncio.sleep(0.01)


# ---- save / get ---------------------------------------------------------------------------------------


async def test_save_then_get_before_and_after_flush(store: ResponseStore, make_store: MakeStore) -> None:
    rid = _rid()
    inputs = [_message("msg_in_1", "user", "hi")]
    outputs = [_message("msg_out_1", "assistant", "hello")]
    _save_turn(store, rid, None, inputs, outputs, usage={"input_tokens": 3})
    expected = StoredResponse(
        id=rid,
        created_at=1_760_000_000,
        model="gpt-test",
        status="completed",
        previous_response_id=None,
        input_items=inputs,
        output_items=outputs,
        resource={
            "id": rid,
            "object": "response",
            "status": "completed",
            "output": outputs,
            "usage": {"input_tokens": 3},
        },
    )
    assert store.pending_rows == 1
    assert await store.get(rid) == expected  # readable at once, from the pending map
    await store.flush(timeout=10)
    assert store.pending_rows == 0
    assert await store.get(rid) == expected  # from the database
    other = await _started(make_store)  # a different process would see it too
    assert await other.get(rid) == expected


async def test_saved_values_are_snapshots(store: ResponseStore) -> None:
    rid = _rid()
    inputs = [_message("msg_1", "user", "original")]
    _save_turn(store, rid, None, inputs, [])
    inputs[0]["content"][0]["text"] = "mutated by the caller"
    inputs.append(_message("msg_2", "user", "appended"))
    got = await store.get(rid)
    assert got is not None
    assert [item["content"][0]["text"] for item in got.input_items] == ["original"]
    got.input_items.clear()  # readers get their own copies too
    again = await store.get(rid)
    assert again is not None and len(again.input_items) == 1
    await store.flush(timeout=10)
    persisted = await store.get(rid)
    assert persisted is not None and persisted.input_items[0]["content"][0]["text"] == "original"


async def test_decimal_values_are_stored_exactly_as_strings(store: ResponseStore) -> None:
    rid = _rid()
    _save_turn(store, rid, None, [], [], tollway={"cost_usd": Decimal("0.000123450")})
    pending = await store.get(rid)
    await store.flush(timeout=10)
    persisted = await store.get(rid)
    assert pending is not None and persisted is not None
    assert pending.resource["tollway"] == persisted.resource["tollway"] == {"cost_usd": "0.000123450"}


async def test_unserialisable_value_is_rejected_at_save(store: ResponseStore) -> None:
    with pytest.raises(TypeError):
        _save_turn(store, _rid(), None, [{"id": "x", "type": "message", "blob": object()}], [])
    assert store.pending_rows == 0


async def test_resaving_an_id_replaces_it(store: ResponseStore, make_store: MakeStore, migrated_url: str) -> None:
    rid = _rid()
    _save_turn(store, rid, None, [_message("m1", "user", "q")], [], status="in_progress")
    await store.flush(timeout=10)
    _save_turn(store, rid, None, [_message("m1", "user", "q")], [_message("o1", "assistant", "a")])
    first = await store.get(rid)
    await store.flush(timeout=10)
    other = await _started(make_store)
    for got in (first, await store.get(rid), await other.get(rid)):
        assert got is not None
        assert got.status == "completed" and len(got.output_items) == 1
    assert await _count_rows(migrated_url) == 1


async def test_many_rows_are_written_in_batches(make_store: MakeStore, migrated_url: str) -> None:
    store = await _started(make_store, batch_size=64)
    ids = [_rid() for _ in range(500)]
    for index, rid in enumerate(ids):
        _save_turn(store, rid, None, [_message(f"m{index}", "user", f"question {index}")], [])
    await store.flush(timeout=30)
    assert store.pending_rows == 0
    assert await _count_rows(migrated_url) == 500
    sample = await store.get(ids[321])
    assert sample is not None and sample.input_items[0]["content"][0]["text"] == "question 321"


# ---- conversation chains --------------------------------------------------------------------------


async def _chain(store: ResponseStore, flush_after_turns: set[int]) -> tuple[list[str], list[str]]:
    """Save 3 turns (flushing after the listed ones); return (response ids, expected item ids)."""
    ids = [_rid() for _ in range(3)]
    expected: list[str] = []
    previous: str | None = None
    for turn, rid in enumerate(ids, start=1):
        inputs = [_message(f"t{turn}_in_{k}", "user", f"turn {turn} input {k}") for k in (1, 2)]
        outputs = [
            {"id": f"t{turn}_fc", "type": "function_call", "call_id": f"call_{turn}", "name": "f", "arguments": "{}"},
            _message(f"t{turn}_out", "assistant", f"turn {turn} answer"),
        ]
        _save_turn(store, rid, previous, inputs, outputs)
        expected += [item["id"] for item in inputs + outputs]
        previous = rid
        if turn in flush_after_turns:
            await store.flush(timeout=10)
    return ids, expected


@pytest.mark.parametrize(
    "flush_after_turns", [set(), {1}, {1, 2}, {1, 2, 3}], ids=["pending", "mixed1", "mixed2", "persisted"]
)
async def test_conversation_items_of_three_turns(
    store: ResponseStore, make_store: MakeStore, flush_after_turns: set[int]
) -> None:
    ids, expected = await _chain(store, flush_after_turns)
    items = await store.conversation_items(ids[2])
    assert items is not None
    assert [item["id"] for item in items] == expected
    assert items[0]["content"][0]["text"] == "turn 1 input 1"
    assert items[-1]["content"][0]["text"] == "turn 3 answer"
    # Earlier links see only their own prefix of the conversation.
    second = await store.conversation_items(ids[1])
    assert second is not None and [item["id"] for item in second] == expected[:8]
    first = await store.conversation_items(ids[0])
    assert first is not None and [item["id"] for item in first] == expected[:4]
    await store.flush(timeout=10)
    other = await _started(make_store)
    persisted = await other.conversation_items(ids[2])
    assert persisted == items


async def test_conversation_items_with_unknown_link_is_none(store: ResponseStore) -> None:
    rid = _rid()
    _save_turn(store, rid, "resp_never_stored", [_message("m", "user", "q")], [])
    assert await store.conversation_items(rid) is None
    await store.flush(timeout=10)
    assert await store.conversation_items(rid) is None


# ---- delete -------------------------------------------------------------------------------------------


async def test_delete_persisted_response(store: ResponseStore, make_store: MakeStore) -> None:
    rid = _rid()
    _save_turn(store, rid, None, [_message("m", "user", "q")], [])
    await store.flush(timeout=10)
    assert await store.delete(rid) is True
    assert await store.get(rid) is None
    assert await store.delete(rid) is False
    other = await _started(make_store)
    assert await other.get(rid) is None


async def test_delete_pending_response_is_never_written(store: ResponseStore, make_store: MakeStore) -> None:
    rid, kept = _rid(), _rid()
    _save_turn(store, rid, None, [_message("m", "user", "q")], [])
    _save_turn(store, kept, None, [_message("m", "user", "q")], [])
    assert await store.delete(rid) is True
    assert await store.get(rid) is None
    await store.flush(timeout=10)
    other = await _started(make_store)
    assert await other.get(rid) is None
    assert await other.get(kept) is not None


async def test_deleting_a_middle_turn_breaks_the_chain(store: ResponseStore) -> None:
    ids, _ = await _chain(store, {1, 2, 3})
    assert await store.delete(ids[1]) is True
    assert await store.conversation_items(ids[2]) is None
    assert await store.get(ids[2]) is not None
    first = await store.conversation_items(ids[0])
    assert first is not None and len(first) == 4


# ---- input items paging -------------------------------------------------------------------------------


async def _ids(store: ResponseStore, rid: str, **query: Any) -> tuple[list[str], bool]:
    items, has_more = await store.input_items(rid, **query)
    return [item["id"] for item in items], has_more


async def test_input_items_paging(store: ResponseStore) -> None:
    rid = _rid()
    _save_turn(store, rid, None, [_message(f"in_{k}", "user", str(k)) for k in range(1, 6)], [])
    for phase in ("pending", "persisted"):
        if phase == "persisted":
            await store.flush(timeout=10)
        assert await _ids(store, rid) == (["in_5", "in_4", "in_3", "in_2", "in_1"], False), phase
        assert await _ids(store, rid, limit=2) == (["in_5", "in_4"], True)
        assert await _ids(store, rid, limit=2, after="in_4") == (["in_3", "in_2"], True)
        assert await _ids(store, rid, limit=2, after="in_2") == (["in_1"], False)
        assert await _ids(store, rid, limit=2, order="asc") == (["in_1", "in_2"], True)
        assert await _ids(store, rid, limit=2, order="asc", after="in_2") == (["in_3", "in_4"], True)
        assert await _ids(store, rid, limit=2, order="asc", after="in_4") == (["in_5"], False)
        assert await _ids(store, rid, limit=5, order="asc") == (["in_1", "in_2", "in_3", "in_4", "in_5"], False)
        assert await _ids(store, rid, limit=4, order="asc") == (["in_1", "in_2", "in_3", "in_4"], True)
        assert await _ids(store, rid, order="asc", after="in_5") == ([], False)
        assert await _ids(store, rid, after="in_1") == ([], False)
        assert await _ids(store, rid, after="no_such_item") == ([], False)
    for bad in ({"limit": 0}, {"limit": 101}, {"order": "sideways"}):
        with pytest.raises(ValueError):
            await store.input_items(rid, **bad)


async def test_input_items_are_only_this_turns(store: ResponseStore) -> None:
    ids, _ = await _chain(store, {1})
    assert await _ids(store, ids[1], order="asc") == (["t2_in_1", "t2_in_2"], False)


# ---- unknown ids --------------------------------------------------------------------------------------


async def test_unknown_ids(store: ResponseStore) -> None:
    _save_turn(store, _rid(), None, [_message("m", "user", "q")], [])
    for phase in ("pending", "persisted"):
        if phase == "persisted":
            await store.flush(timeout=10)
        assert await store.get("resp_unknown") is None
        assert await store.conversation_items("resp_unknown") is None
        assert await store.input_items("resp_unknown") == ([], False)
        assert await store.delete("resp_unknown") is False


# ---- readiness ----------------------------------------------------------------------------------------


async def test_ping_true_on_live_database(store: ResponseStore) -> None:
    assert await store.ping() is True


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


async def _silent_server() -> tuple[asyncio.Server, int]:
    """Accepts TCP connections and never says a word (a hung database)."""
    held: list[asyncio.StreamWriter] = []

    async def hold(_reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        held.append(writer)

    server = await asyncio.start_server(hold, "127.0.0.1", 0)
    return server, int(server.sockets[0].getsockname()[1])


@pytest.mark.parametrize("dead", ["closed_port", "silent_server", "sqlite_bad_path"])
async def test_ping_false_quickly_on_dead_database(dead: str, tmp_path: Path) -> None:
    server: asyncio.Server | None = None
    if dead == "closed_port":
        url = f"postgresql://postgres@127.0.0.1:{_free_port()}/test"
    elif dead == "silent_server":
        server, port = await _silent_server()
        url = f"postgresql://postgres@127.0.0.1:{port}/test"
    else:
        blocker = tmp_path / "not_a_dir"
        blocker.write_text("x")
        url = f"sqlite:///{blocker}/tollway.db"
    store = ResponseStore(url)
    await store.start()
    try:
        started = time.monotonic()
        assert await store.ping() is False
        assert time.monotonic() - started <= 2.5
    finally:
        await store.close(timeout=0.5)
        if server is not None:
            server.close()


async def test_reads_on_dead_database_raise_storage_unavailable(caplog: pytest.LogCaptureFixture) -> None:
    store = ResponseStore(f"postgresql://postgres@127.0.0.1:{_free_port()}/test")
    await store.start()
    try:
        for operation in (
            store.get("resp_x"),
            store.delete("resp_x"),
            store.conversation_items("resp_x"),
            store.input_items("resp_x"),
        ):
            with pytest.raises(StorageUnavailableError) as raised:
                await operation
            assert raised.value.status == 503 and raised.value.code == "storage_unavailable"
        operations = [getattr(r, "operation") for r in _events(caplog, "storage.operation_failed")]  # noqa: B009
        assert operations == ["get", "delete", "conversation", "input_items"]
        # Pending rows are still served while the database is down.
        _save_turn(store, "resp_pending", None, [_message("m", "user", "q")], [])
        assert await store.get("resp_pending") is not None
        assert await store.conversation_items("resp_pending") is not None
    finally:
        await store.close(timeout=0.2)


async def test_ping_false_before_start() -> None:
    assert await ResponseStore("sqlite:///unused.db").ping() is False


# ---- failures -----------------------------------------------------------------------------------------


class _TcpProxy:
    """Forwards 127.0.0.1:<listen_port> to a target, once started: the database 'comes back'."""

    def __init__(self, listen_port: int, target_host: str, target_port: int) -> None:
        self.listen_port = listen_port
        self.target = (target_host, target_port)
        self._server: asyncio.Server | None = None
        self._writers: list[asyncio.StreamWriter] = []

    async def start(self) -> None:
        self._server = await asyncio.start_server(self._handle, "127.0.0.1", self.listen_port)

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        up_reader, up_writer = await asyncio.open_connection(*self.target)
        self._writers += [writer, up_writer]
        await asyncio.gather(self._pipe(reader, up_writer), self._pipe(up_reader, writer))

    @staticmethod
    async def _pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while data := await reader.read(65536):
                writer.write(data)
                await writer.drain()
        except OSError:
            pass
        finally:
            writer.close()

    async def close(self) -> None:
        for writer in self._writers:
            writer.close()
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()


async def test_writer_retries_while_database_is_unavailable(
    migrated_url: str, make_store: MakeStore, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="tollway.storage")
    ids = [_rid() for _ in range(3)]
    if migrated_url.startswith("sqlite"):
        # Another process holds an exclusive lock: every write fails with "database is locked".
        path = sqlite_database_path("sqlite+aiosqlite" + migrated_url.removeprefix("sqlite"))
        assert path is not None
        locker = sqlite3.connect(path, isolation_level=None)
        locker.execute("BEGIN EXCLUSIVE")
        store = await _started(make_store, sqlite_busy_timeout_s=0.05)

        async def recover() -> None:
            locker.execute("COMMIT")
            locker.close()
    else:
        # The database is unreachable (nothing listens on the port) until a proxy to it starts.
        real = make_url(migrated_url)
        port = _free_port()
        proxy = _TcpProxy(port, real.host or "127.0.0.1", real.port or 5432)
        store = await _started(make_store, real.set(port=port).render_as_string(hide_password=False))

        async def recover() -> None:
            await proxy.start()

    for index, rid in enumerate(ids):
        _save_turn(store, rid, None, [_message(f"m{index}", "user", "q")], [])
    await _wait_for(lambda: len(_events(caplog, "storage.write_retry")) >= 2)
    assert store.pending_rows == 3
    got = await store.get(ids[0])  # still readable while the database is down
    assert got is not None and got.id == ids[0]
    with pytest.raises(TimeoutError):
        await store.flush(timeout=0.2)
    retry = _events(caplog, "storage.write_retry")[0]
    assert retry.levelno == logging.WARNING
    assert cast(int, getattr(retry, "attempt")) == 1 and getattr(retry, "rows") == 3  # noqa: B009
    await recover()
    await store.flush(timeout=15)
    assert store.pending_rows == 0
    assert _events(caplog, "storage.write_recovered")
    other = await _started(make_store)
    for rid in ids:
        assert await other.get(rid) is not None
    await store.close(timeout=2)
    if not migrated_url.startswith("sqlite"):
        await proxy.close()


async def test_row_the_database_rejects_is_quarantined(
    store: ResponseStore, make_store: MakeStore, migrated_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    good_1, bad, good_2 = _rid(), _rid(), _rid()
    _save_turn(store, good_1, None, [], [])
    store.save(  # NOT NULL violation on every backend
        bad,
        created_at=1,
        model=cast(str, None),
        status="completed",
        previous_response_id=None,
        input_items=[],
        output_items=[],
        resource={},
    )
    _save_turn(store, good_2, None, [], [])
    await store.flush(timeout=10)  # the bad row does not block the queue
    assert await _count_rows(migrated_url) == 2
    other = await _started(make_store)
    assert await other.get(good_1) is not None and await other.get(good_2) is not None
    assert await other.get(bad) is None
    kept = await store.get(bad)  # still served from memory by this process
    assert kept is not None and kept.id == bad
    [record] = _events(caplog, "storage.row_quarantined")
    assert record.levelno == logging.ERROR and getattr(record, "key") == bad  # noqa: B009
    # Saving the id again with valid values writes it.
    _save_turn(store, bad, None, [], [])
    await store.flush(timeout=10)
    assert await other.get(bad) is not None


async def test_nul_character_is_stored_or_quarantined_never_blocks(
    store: ResponseStore, make_store: MakeStore, migrated_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    """PostgreSQL JSONB rejects \\u0000 (the row is quarantined: served from memory only); SQLite stores
    it. Either way the queue keeps moving."""
    rid, after = _rid(), _rid()
    _save_turn(store, rid, None, [_message("m", "user", "nul \x00 byte")], [])
    _save_turn(store, after, None, [], [])
    await store.flush(timeout=10)
    got = await store.get(rid)
    assert got is not None and got.input_items[0]["content"][0]["text"] == "nul \x00 byte"
    other = await _started(make_store)
    assert await other.get(after) is not None
    persisted = await other.get(rid)
    if migrated_url.startswith("sqlite"):
        assert persisted == got
    else:
        assert persisted is None
        assert _events(caplog, "storage.row_quarantined")


async def test_backlog_bound(caplog: pytest.LogCaptureFixture) -> None:
    store = ResponseStore(
        f"postgresql://postgres@127.0.0.1:{_free_port()}/test",
        max_pending_rows=2,
        max_pending_bytes=4096,
        retry_initial_s=0.05,
        retry_max_s=0.1,
    )
    await store.start()
    try:
        first, second = _rid(), _rid()
        _save_turn(store, first, None, [], [])
        _save_turn(store, second, None, [], [])
        assert store.has_capacity() is False
        with pytest.raises(StoreBacklogFullError) as raised:
            _save_turn(store, _rid(), None, [], [])
        assert raised.value.status == 503 and raised.value.code == "storage_backlog_full"
        assert _events(caplog, "storage.backlog_full")
        _save_turn(store, second, None, [_message("m", "user", "update")], [])  # replacing is allowed
        with pytest.raises(StoreBacklogFullError):  # ...unless it would exceed the byte bound
            _save_turn(store, second, None, [_message("m", "user", "x" * 5000)], [])
        assert store.pending_rows == 2
    finally:
        started = time.monotonic()
        await store.close(timeout=0.3)
        assert time.monotonic() - started < 2
    assert _events(caplog, "storage.unwritten_at_close")


def test_the_upsert_statement_is_cacheable() -> None:
    """The dialects' insert().on_conflict_* constructs have no cache key (compiled again for every batch);
    the store's upsert must have one."""
    from tollway.storage.responses import _UPSERT

    assert _UPSERT._generate_cache_key() is not None

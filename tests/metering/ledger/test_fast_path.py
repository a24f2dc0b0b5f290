"""The shipper's fast path (driver SQL, rows in column order) against the SQLAlchemy path it replaced: the same
sanitised values, the same stored bytes on SQLite, the same values read back on both backends, exactly once."""

from __future__ import annotations

import datetime as dt
import math
from collections.abc import AsyncIterator
from decimal import Decimal
from pathlib import Path
from typing import Any

import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from sqlalchemy import insert, select, text
from sqlalchemy.dialects import sqlite
from sqlalchemy.ext.asyncio import AsyncEngine

from tests.metering.ledger.conftest import PRINCIPAL, make_record
from tollway.metering.ledger import query, rollups
from tollway.metering.ledger.entries import (
    LEDGER_COLUMNS,
    db_values,
    decimal_text,
    encode_row,
    postgresql_params,
    sqlite_params,
    to_row,
    utc_datetime,
)
from tollway.metering.ledger.rollups import LEDGER
from tollway.metering.ledger.shipper import (
    _DECODE_ERRORS,
    MAX_BATCH,
    Shipper,
    insert_rows,
    sqlite_statement_rows,
)
from tollway.metering.ledger.spool import SpooledRow
from tollway.metering.ledger.tables import MONEY_COLUMNS, TOKEN_COLUMNS
from tollway.storage import jsoncodec
from tollway.storage.engine import create_engine
from tollway.storage.migrate import upgrade_async

# ---- the previous db_values, kept as the reference the fast decoders must match -------------------------

_WIDTHS = {"request_id": 128, "door": 32, "status": 32, "org_id": 64, "team_id": 64, "project_id": 64,
           "key_id": 64, "end_user_id": 64, "end_user_external_id": 255, "model": 255, "provider": 64,
           "upstream_model": 255, "error_code": 64, "cost_status": 32, "price_table_version": 64}


def _ref_text(value: Any, width: int) -> str | None:
    if value is None:
        return None
    return (value if isinstance(value, str) else str(value)).replace("\x00", "")[:width]


def _ref_count(value: Any, high: int = 2**62) -> int:
    if not isinstance(value, int) or isinstance(value, bool):
        return 0
    return min(max(value, 0), high)


def reference_values(entry_id: str, payload: bytes, *, money_as_text: bool) -> dict[str, Any]:
    row = orjson.loads(payload)
    if not isinstance(row, dict):
        raise TypeError("not an object")
    created = dt.datetime.fromtimestamp(float(row["created_at"]), dt.UTC).replace(tzinfo=None)
    tags: dict[str, str] = {}
    if isinstance(row.get("tags"), dict):
        for k, v in list(row["tags"].items())[:64]:
            tags[_ref_text(k, 255) or ""] = _ref_text(v, 255) or ""
    values: dict[str, Any] = {
        "id": entry_id, "created_at": created, "day": created.date(), "streaming": bool(row.get("streaming")),
        "http_status": _ref_count(row.get("http_status"), 999), "tags": tags,
        "latency_ms": float(row.get("latency_ms") or 0.0), "overhead_ms": float(row.get("overhead_ms") or 0.0),
    }
    for name, width in _WIDTHS.items():
        values[name] = _ref_text(row.get(name), width)
    for name in ("request_id", "door", "status"):
        values[name] = values[name] or ""
    for name in TOKEN_COLUMNS:
        values[name] = _ref_count(row.get(name))
    for name in MONEY_COLUMNS:
        raw = row.get(name)
        if raw is None:
            values[name] = None
            continue
        amount = Decimal(str(raw))
        if not amount.is_finite():
            raise ValueError(name)
        values[name] = format(amount, "f") if money_as_text else amount
    return values


_SQLITE = sqlite.dialect()
_BIND_DATETIME = sqlite.DATETIME().bind_processor(_SQLITE)
_BIND_DATE = sqlite.DATE().bind_processor(_SQLITE)


def sqlite_reference(entry_id: str, payload: bytes) -> list[Any]:
    """What SQLAlchemy's SQLite column types bound for the reference values."""
    assert _BIND_DATETIME is not None and _BIND_DATE is not None
    v = reference_values(entry_id, payload, money_as_text=True)
    v["created_at"] = _BIND_DATETIME(v["created_at"])
    v["day"] = _BIND_DATE(v["day"])
    v["streaming"] = int(v["streaming"])
    v["tags"] = jsoncodec.dumps(v["tags"])
    return [v[name] for name in LEDGER_COLUMNS]


# ---- decoding ---------------------------------------------------------------------------------------------

_texts = st.one_of(st.none(), st.text(max_size=300), st.text(alphabet="a\x00é\\\"", max_size=300),
                   st.integers(-(2**63), 2**64 - 1), st.booleans())
_counts = st.one_of(st.none(), st.integers(min_value=-(2**63), max_value=2**64 - 1), st.booleans(),
                    st.floats(allow_nan=False), st.text(max_size=3))
_amounts = st.one_of(
    st.none(),
    st.decimals(allow_nan=False, allow_infinity=False).map(decimal_text),
    st.decimals(allow_nan=False, allow_infinity=False).map(str),
    st.from_regex(r"-?0*[0-9]{1,30}(\.[0-9]{0,30})?", fullmatch=True),
    st.integers(-(2**63), 2**64 - 1), st.floats(allow_nan=False, allow_infinity=False),
)


@st.composite
def payloads(draw: st.DrawFn) -> bytes:
    row: dict[str, Any] = {name: draw(_texts) for name in _WIDTHS}
    row.update({name: draw(_counts) for name in (*TOKEN_COLUMNS, "http_status")})
    row.update({name: draw(_amounts) for name in MONEY_COLUMNS})
    row["created_at"] = draw(st.floats(min_value=-5e10, max_value=2.5e11))
    row["streaming"] = draw(st.one_of(st.booleans(), st.none(), st.integers(0, 2)))
    row["latency_ms"] = draw(st.one_of(st.none(), st.floats(allow_nan=False, allow_infinity=False),
                                         st.integers(-(2**53), 2**53)))
    row["overhead_ms"] = draw(st.floats(allow_nan=False, allow_infinity=False))
    row["tags"] = draw(st.one_of(st.dictionaries(st.text(max_size=300), st.one_of(st.text(max_size=300), st.none(),
                                                                                  st.integers(0, 9)), max_size=70),
                                 st.none(), st.lists(st.text(max_size=3), max_size=2)))
    for name in draw(st.lists(st.sampled_from(sorted(row)), max_size=3)):
        row.pop(name, None)  # absent keys read as None (a missing created_at: KeyError)
    return orjson.dumps(row)


def _outcome(fn: Any, *args: Any, **kw: Any) -> Any:
    try:
        return fn(*args, **kw)
    except _DECODE_ERRORS as exc:
        return ("refused", type(exc).__name__ if isinstance(exc, KeyError) else "error")


@settings(max_examples=400, deadline=None)
@given(payloads())
def test_decoders_match_the_previous_db_values(payload: bytes) -> None:
    """Same values (or a refusal the shipper quarantines) for every payload, well-formed or hostile."""
    for money_as_text in (True, False):
        assert _outcome(db_values, "e", payload, money_as_text=money_as_text) == _outcome(
            reference_values, "e", payload, money_as_text=money_as_text)
    assert _outcome(sqlite_params, "e", payload) == _outcome(sqlite_reference, "e", payload)
    expected = _outcome(reference_values, "e", payload, money_as_text=True)  # the JSON the PostgreSQL INSERT takes
    got = _outcome(postgresql_params, "e", payload)
    if isinstance(expected, dict):
        expected = [expected[name] for name in LEDGER_COLUMNS]
    assert got == expected


@settings(max_examples=2000, deadline=None)
@given(st.one_of(st.floats(min_value=-1e11, max_value=3e11), st.floats(min_value=1.6e9, max_value=2e9),
                 st.integers(0, 2**33).map(lambda n: n / 1_000_000)))
def test_utc_datetime_equals_fromtimestamp(epoch: float) -> None:
    try:
        expected = dt.datetime.fromtimestamp(epoch, dt.UTC).replace(tzinfo=None)
    except (OverflowError, ValueError, OSError):
        with pytest.raises((OverflowError, ValueError)):  # both refused: the shipper quarantines the row
            utc_datetime(epoch)
        return
    assert utc_datetime(epoch) == expected


@pytest.mark.parametrize("created_at", [math.inf, -math.inf, 1e300, -1e300, "soon", None, [1]])
def test_impossible_timestamps_are_refused_not_crashed(created_at: Any) -> None:
    row = to_row(make_record(1))
    payload = orjson.dumps({**row, "created_at": created_at}, default=str)
    for decode in (sqlite_params, postgresql_params):
        with pytest.raises(_DECODE_ERRORS):
            decode("e", payload)


def test_hostile_values_are_cut_stripped_and_clamped() -> None:
    row = to_row(make_record(1, model="m\x00" + "x" * 400, request_id="r" * 500, tags={"k\x00": "v" * 1000}))
    row.update(input_tokens=2**63 - 1, output_tokens=-5, http_status=10_000, org_id="o" * 100, door=7)
    values = sqlite_params("e", encode_row(row))
    by_name = dict(zip(LEDGER_COLUMNS, values, strict=True))
    assert by_name["model"] == "m" + "x" * 254 and by_name["request_id"] == "r" * 128
    assert by_name["org_id"] == "o" * 64 and by_name["door"] == "7"
    assert (by_name["input_tokens"], by_name["output_tokens"], by_name["http_status"]) == (2**62, 0, 999)
    assert by_name["tags"] == orjson.dumps({"k": "v" * 255}).decode()


def test_statement_sizes_are_few_and_within_the_parameter_limit() -> None:
    sizes = {sqlite_statement_rows(n) for n in range(1, MAX_BATCH + 1)}
    assert len(sizes) <= 24 and sqlite_statement_rows(500) == 500
    assert all(sqlite_statement_rows(n) >= n for n in range(1, MAX_BATCH + 1))
    assert max(sizes) * len(LEDGER_COLUMNS) <= 32_766
    assert set(LEDGER_COLUMNS) == {c.name for c in LEDGER.columns}


# ---- against the database ------------------------------------------------------------------------------

@pytest.fixture
async def engine(db_url: str) -> AsyncIterator[AsyncEngine]:
    eng = create_engine(db_url)
    yield eng
    await eng.dispose()


def sample_payloads() -> list[bytes]:
    records = [
        make_record(0, created_at=1_700_000_000.0, streaming=True),  # whole second: .000000 kept
        make_record(1, principal=None, status="error", cost=None, tags={}),
        make_record(2, cost=Decimal("1.23E-9"), created_at=1_700_000_123.456789,
                    tags={"team": "a\"b", "ü": "✓", "n\x00ul": "x\x00" + "y" * 300}),
        make_record(3, model="m\x00" + "x" * 400, end_user_id="eu\x00", end_user_external_id="u" * 300,
                    request_id="r" * 200, created_at=86_399.9999996),
        make_record(4, principal=PRINCIPAL, cost=Decimal("123456789012345678.000000000001")),
    ]
    payloads = [encode_row(to_row(r)) for r in records]
    huge = to_row(make_record(5))
    huge.update(input_tokens=2**64 - 1, cached_tokens=-1, http_status=-3, latency_ms=None, error_code=12)
    payloads.append(encode_row(huge))
    return payloads


async def _insert_old_and_new(engine: AsyncEngine, payloads: list[bytes]) -> None:
    """Each payload twice: through SQLAlchemy's INSERT (the previous path) and through the fast path."""
    pg = engine.dialect.name == "postgresql"
    async with engine.begin() as conn:
        for i, payload in enumerate(payloads):
            await conn.execute(insert(LEDGER).values(**db_values(f"old{i}", payload, money_as_text=not pg)))
        params = postgresql_params if pg else sqlite_params
        inserted = await insert_rows(conn, [params(f"new{i}", payload) for i, payload in enumerate(payloads)])
    assert len(inserted) == len(payloads)


async def test_sqlite_stores_exactly_what_sqlalchemy_stored(tmp_path: Path) -> None:
    url = f"sqlite+aiosqlite:///{tmp_path}/t.db"
    await upgrade_async(url)
    engine = create_engine(url)
    try:
        await _insert_old_and_new(engine, sample_payloads())
        columns = ", ".join(f"{c}, typeof({c})" for c in LEDGER_COLUMNS if c != "id")
        async with engine.connect() as conn:
            old = (await conn.exec_driver_sql(f"SELECT {columns} FROM usage_ledger WHERE id LIKE 'old%' ORDER BY id"))
            new = (await conn.exec_driver_sql(f"SELECT {columns} FROM usage_ledger WHERE id LIKE 'new%' ORDER BY id"))
            old_rows, new_rows = old.all(), new.all()
        assert old_rows == new_rows and len(new_rows) == 6
        first = dict(zip([c for c in LEDGER_COLUMNS if c != "id"], new_rows[0][::2], strict=True))
        assert first["created_at"] == "2023-11-14 22:13:20.000000" and first["day"] == "2023-11-14"
        assert first["streaming"] == 1 and first["total_usd"] == "0.000123"
    finally:
        await engine.dispose()


async def test_rows_read_back_as_the_sqlalchemy_path_wrote_them(engine: AsyncEngine) -> None:
    """Both backends: through SQLAlchemy and through the query module (datetimes, days, exact amounts, tags
    as a dict — jsonb on PostgreSQL — and booleans)."""
    payloads = sample_payloads()
    await _insert_old_and_new(engine, payloads)
    async with engine.connect() as conn:
        rows = {r["id"]: dict(r) for r in (await conn.execute(select(LEDGER))).mappings()}
        if engine.dialect.name == "postgresql":
            kinds = (await conn.execute(text("SELECT DISTINCT jsonb_typeof(tags) FROM usage_ledger"))).scalars()
            assert list(kinds) == ["object"]
    for i in range(len(payloads)):
        old, new = rows[f"old{i}"], rows[f"new{i}"]
        assert {**old, "id": None} == {**new, "id": None}
    new2 = rows["new2"]
    assert new2["tags"] == {"team": 'a"b', "ü": "✓", "nul": "x" + "y" * 254}
    assert new2["created_at"] == dt.datetime(2023, 11, 14, 22, 15, 23, 456789)
    assert rollups.to_decimal(new2["input_usd"]) == Decimal("1.23E-9")
    assert rows["new0"]["streaming"] is True and rows["new1"]["streaming"] is False
    assert rows["new3"]["created_at"] == dt.datetime(1970, 1, 2) and rows["new3"]["day"] == dt.date(1970, 1, 2)
    assert rows["new5"]["input_tokens"] == 2**62 and rows["new5"]["http_status"] == 0
    for i in range(len(payloads)):
        entries = await query.entries(engine, request_id=rows[f"new{i}"]["request_id"], limit=10)
        by_id = {e["id"]: e for e in entries}
        assert {**by_id[f"old{i}"], "id": None} == {**by_id[f"new{i}"], "id": None}
    high = await query.entries(engine, request_id=rows["new4"]["request_id"], limit=10)
    assert {e["total_usd"] for e in high} == {Decimal("123456789012345678.000000000001")}


async def test_floats_and_big_amounts_round_trip_exactly(engine: AsyncEngine) -> None:
    """Latencies are bound natively on SQLite and travel as orjson's shortest round-trip text to PostgreSQL
    (float8 input is correctly rounded): the same doubles come back either way."""
    import random

    rng = random.Random(11)
    floats = [rng.uniform(0, 10_000) for _ in range(300)]
    floats += [rng.random() * 10 ** rng.randint(-12, 12) for _ in range(300)]
    floats += [0.1, 1 / 3, 2.0**-1074, 1.7976931348623157e308, 5e-324, 123456789.123456789]
    params = postgresql_params if engine.dialect.name == "postgresql" else sqlite_params
    rows = []
    for n, value in enumerate(floats):
        row = to_row(make_record(n, cost=Decimal(f"{n}.{'0' * 20}{n}")))
        row.update(latency_ms=value, overhead_ms=-value)
        rows.append(params(f"f{n:04d}", encode_row(row)))
    async with engine.begin() as conn:
        await insert_rows(conn, rows)
    async with engine.connect() as conn:
        got = (await conn.execute(select(LEDGER.c.id, LEDGER.c.latency_ms, LEDGER.c.overhead_ms, LEDGER.c.total_usd)
                                  .order_by(LEDGER.c.id))).all()
    assert [(r[1], r[2]) for r in got] == [(v, -v) for v in floats]
    assert [rollups.to_decimal(r[3]) for r in got] == [Decimal(f"{n}.{'0' * 20}{n}") for n in range(len(floats))]


async def test_exactly_once_with_padding_duplicates_and_redelivery(engine: AsyncEngine) -> None:
    pg = engine.dialect.name == "postgresql"
    params = postgresql_params if pg else sqlite_params

    def rows(ids: range | list[int]) -> list[list[Any]]:
        return [params(f"e{n:04d}", encode_row(to_row(make_record(n, model=f"m{n % 3}")))) for n in ids]

    async with engine.begin() as conn:
        first = await insert_rows(conn, rows(range(37)))  # SQLite pads 37 rows to a 50-row statement
    assert [r[0] for r in first] == [f"e{n:04d}" for n in range(37)]
    async with engine.begin() as conn:  # re-delivered rows, a new row twice, a new row once
        again = await insert_rows(conn, rows([*range(30, 37), 40, 40, 41]))
    assert [r[0] for r in again] == ["e0040", "e0041"]
    async with engine.begin() as conn:
        assert await insert_rows(conn, rows([*range(37), 40, 41])) == []
        assert await insert_rows(conn, []) == []
    async with engine.begin() as conn:  # more than one statement's worth
        big = await insert_rows(conn, rows(range(100, 100 + MAX_BATCH + 20)))
    assert len(big) == MAX_BATCH + 20
    async with engine.connect() as conn:
        count = (await conn.execute(text("SELECT count(*) FROM usage_ledger"))).scalar_one()
        stored = await rollups.stored(conn)
        assert stored == await rollups.from_rows(conn)
    assert count == 39 + MAX_BATCH + 20 == sum(t.requests for t in stored.values())


async def test_a_failed_transaction_keeps_nothing(engine: AsyncEngine) -> None:
    """The fast path runs inside the caller's transaction (on SQLite: on the driver connection under it)."""
    params = postgresql_params if engine.dialect.name == "postgresql" else sqlite_params
    rows = [params(f"e{n}", encode_row(to_row(make_record(n)))) for n in range(5)]
    with pytest.raises(RuntimeError):
        async with engine.begin() as conn:
            assert len(await insert_rows(conn, rows)) == 5
            raise RuntimeError("rolled back after the ledger insert and the rollups")
    async with engine.connect() as conn:
        assert (await conn.execute(text("SELECT count(*) FROM usage_ledger"))).scalar_one() == 0
        assert await rollups.stored(conn) == {}
    async with engine.begin() as conn:
        assert len(await insert_rows(conn, rows)) == 5


async def test_a_refused_row_raises_sqlalchemys_error(engine: AsyncEngine) -> None:
    """A constraint violation surfaces as SQLAlchemy's IntegrityError, which the shipper isolates and quarantines."""
    from sqlalchemy.exc import IntegrityError

    from tollway.storage.writer import is_row_error

    params = postgresql_params if engine.dialect.name == "postgresql" else sqlite_params
    async with engine.begin() as conn:
        if engine.dialect.name == "postgresql":
            await conn.execute(text("ALTER TABLE usage_ledger ADD CONSTRAINT poison CHECK (model <> 'poison')"))
        else:
            await conn.execute(text("CREATE TRIGGER poison BEFORE INSERT ON usage_ledger WHEN NEW.model = 'poison' "
                                    "BEGIN SELECT RAISE(ABORT, 'poison'); END"))
    with pytest.raises(IntegrityError) as caught:
        async with engine.begin() as conn:
            await insert_rows(conn, [params("e1", encode_row(to_row(make_record(1, model="poison"))))])
    assert is_row_error(caught.value)


async def test_a_closed_sqlite_connection_is_not_the_rows_fault(tmp_path: Path) -> None:
    """aiosqlite says ValueError for a closed connection: raised as OperationalError, so the shipper retries
    instead of quarantining every row."""
    from sqlalchemy.exc import OperationalError

    from tollway.storage.writer import is_row_error

    engine = create_engine(f"sqlite+aiosqlite:///{tmp_path}/t.db")
    try:
        async with engine.connect() as conn:
            await (await conn.get_raw_connection()).driver_connection.close()
            with pytest.raises(OperationalError) as caught:
                await rollups.sqlite_driver_sql(conn, "SELECT 1", ())
            assert not is_row_error(caught.value)
            await conn.invalidate()
    finally:
        await engine.dispose()


async def test_sqlite_rollup_lookup_searches_the_unique_index(tmp_path: Path) -> None:
    url = f"sqlite+aiosqlite:///{tmp_path}/t.db"
    await upgrade_async(url)
    engine = create_engine(url)
    try:
        async with engine.connect() as conn:
            sql = rollups._sqlite_current(3)
            key = ("2025-01-01", "o", "", "", "", "", "p", "m")
            plan = await conn.exec_driver_sql(f"EXPLAIN QUERY PLAN {sql}", key * 3)
            details = [row[-1] for row in plan]
        assert any("SEARCH d USING INDEX uq_usage_daily_key" in d for d in details), details
        assert not any(d.startswith("SCAN d") or d == "SCAN usage_daily" for d in details), details
    finally:
        await engine.dispose()


async def test_fold_rows_equals_fold_of_named_values(engine: AsyncEngine) -> None:
    pg = engine.dialect.name == "postgresql"
    params = postgresql_params if pg else sqlite_params
    records = [make_record(n, principal=None if n % 4 else PRINCIPAL, status=["completed", "error", "failed"][n % 3],
                           cost=None if n % 5 == 0 else Decimal("0.0000015"), created_at=1_700_000_000 + n * 7000,
                           end_user_id="" if n % 2 else None) for n in range(60)]
    payloads = [encode_row(to_row(r)) for r in records]
    named = [db_values(f"e{i}", p, money_as_text=not pg) for i, p in enumerate(payloads)]
    assert rollups.fold_rows([params(f"e{i}", p) for i, p in enumerate(payloads)]) == rollups.fold(named)


class RecordingSpool:
    """What the shipper calls on a spool, recorded (the payload bytes are handed to ship() directly)."""

    def __init__(self) -> None:
        self.path = Path("recording-spool.db")
        self.rows = 0
        self.deleted: list[int] = []
        self.quarantined: list[int] = []

    async def delete(self, seqs: list[int]) -> None:
        self.deleted += seqs

    async def quarantine(self, seqs: list[int]) -> None:
        self.quarantined += seqs


async def test_undecodable_payloads_are_quarantined(engine: AsyncEngine) -> None:
    good = to_row(make_record(1))
    payloads = [encode_row(good), b"[1]", b"{}", encode_row({**good, "total_usd": "NaN"}),
                encode_row({**good, "created_at": 1e300}), encode_row({**good, "created_at": "soon"}),
                encode_row({**good, "input_usd": "12abc"}), b"\xff", b'{"created_at": 1, "tags": 5, "model": [1]}']
    spool = RecordingSpool()
    shipper = Shipper(spool, engine)  # type: ignore[arg-type]
    assert await shipper.ship([SpooledRow(n, f"e{n}", 0.0, p) for n, p in enumerate(payloads)])
    assert spool.quarantined == [1, 2, 3, 4, 5, 6, 7] and spool.deleted == [0, 8]
    assert (shipper.shipped, shipper.quarantined) == (2, 7)
    async with engine.connect() as conn:
        odd = (await conn.execute(select(LEDGER).where(LEDGER.c.id == "e8"))).mappings().one()
    assert (odd["model"], odd["tags"], odd["request_id"]) == ("[1]", {}, "")

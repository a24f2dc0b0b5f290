"""ExchangeRecord -> spooled row -> database values: exact money, attribution, sanitised strings."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal
from typing import Any

import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tests.metering.ledger.conftest import PRINCIPAL, make_record
from tollway.core.context import Principal
from tollway.metering.ledger.entries import db_values, encode_row, row_sqlite_params, sqlite_params, to_row
from tollway.metering.ledger.recorder import LedgerRecorder


class FakeSpool:
    def __init__(self) -> None:
        self.rows: list[dict[str, object]] = []

    def append(self, row: dict[str, object]) -> None:
        self.rows.append(row)


def test_round_trip_keeps_every_digit() -> None:
    record = make_record(7, cost=Decimal("1.23E-7"), created_at=86400.5)
    values = db_values("e1", encode_row(to_row(record)), money_as_text=False)
    assert values["total_usd"] == Decimal("0.000000123") and values["input_usd"] == Decimal("1.23E-7")
    assert values["cached_input_usd"] == Decimal(0)
    text = db_values("e1", encode_row(to_row(record)), money_as_text=True)
    assert text["total_usd"] == "0.000000123"
    assert values["created_at"] == dt.datetime(1970, 1, 2, 0, 0, 0, 500000)
    assert values["day"] == dt.date(1970, 1, 2)
    assert values["id"] == "e1" and values["request_id"] == "req_7"
    assert (values["org_id"], values["team_id"], values["project_id"], values["key_id"]) == (
        "org_1", "team_1", "proj_1", "key_1")
    assert (values["input_tokens"], values["cached_tokens"], values["output_tokens"], values["reasoning_tokens"]) == (
        17, 2, 5, 1)
    assert values["cost_status"] == "priced" and values["price_table_version"] == "2025-01"
    assert values["tags"] == {"n": "7"} and values["status"] == "completed" and values["http_status"] == 200


def test_error_without_cost_and_open_mode() -> None:
    record = make_record(1, principal=None, status="error", cost=None)
    values = db_values("e", encode_row(to_row(record)), money_as_text=False)
    assert values["org_id"] is None and values["key_id"] is None
    assert values["total_usd"] is None and values["cost_status"] is None
    assert values["error_code"] == "server_error" and values["http_status"] == 500


def test_end_user_from_a_key_bound_to_one() -> None:
    bound = Principal(key_id="k", key_name="n", org_id="o", org_name="O", end_user_id="eu_1",
                      end_user_external_id="alice")
    row = to_row(make_record(1, principal=bound))
    assert (row["end_user_id"], row["end_user_external_id"]) == ("eu_1", "alice")
    row = to_row(make_record(1, principal=bound, end_user_id="eu_2", end_user_external_id="bob"))
    assert (row["end_user_id"], row["end_user_external_id"]) == ("eu_2", "bob")


def test_client_values_are_cut_and_stripped_never_refused() -> None:
    record = make_record(1, model="m\x00" + "x" * 400, tags={"k\x00": "v" * 1000},
                         request_id="r" * 128, end_user_external_id="u" * 300)
    values = db_values("e", encode_row(to_row(record)), money_as_text=True)
    assert values["model"] == "m" + "x" * 254
    assert values["tags"] == {"k": "v" * 255}
    assert len(values["end_user_external_id"]) == 255 and len(values["request_id"]) == 128


def test_bad_payloads_raise() -> None:
    with pytest.raises(orjson.JSONDecodeError):
        db_values("e", b"not json", money_as_text=True)
    with pytest.raises(TypeError):
        db_values("e", b"[1]", money_as_text=True)
    bad = to_row(make_record(1))
    bad["total_usd"] = "NaN"
    with pytest.raises(ValueError):
        db_values("e", encode_row(bad), money_as_text=True)


def test_recorder_hands_a_row_to_the_spool() -> None:
    spool = FakeSpool()
    recorder = LedgerRecorder(spool)  # type: ignore[arg-type]
    recorder.record(make_record(3, principal=PRINCIPAL))
    assert len(spool.rows) == 1 and spool.rows[0]["request_id"] == "req_3"
    assert spool.rows[0]["total_usd"] == Decimal("0.000123")


_TEXT = st.one_of(st.none(), st.text(max_size=300), st.text(alphabet="ab\x00", max_size=80))
_COUNT = st.one_of(st.integers(min_value=-(2**63), max_value=2**63 - 1), st.booleans(), st.none())
_MONEY = st.one_of(st.none(), st.decimals(allow_nan=False, allow_infinity=False, places=12),
                   st.decimals(allow_nan=False, allow_infinity=False), st.integers(-10, 10))
_FLOAT = st.one_of(st.floats(), st.integers(-5, 5), st.none())
_ROW = st.fixed_dictionaries({
    "request_id": _TEXT, "created_at": st.floats(min_value=0, max_value=4e9), "org_id": _TEXT, "team_id": _TEXT,
    "project_id": _TEXT, "key_id": _TEXT, "end_user_id": _TEXT, "end_user_external_id": _TEXT, "door": _TEXT,
    "model": _TEXT, "provider": _TEXT, "upstream_model": _TEXT, "streaming": st.booleans(), "status": _TEXT,
    "http_status": _COUNT, "error_code": _TEXT, "input_tokens": _COUNT, "cached_tokens": _COUNT,
    "cache_write_tokens": _COUNT, "output_tokens": _COUNT, "reasoning_tokens": _COUNT, "cost_status": _TEXT,
    "price_table_version": _TEXT, "input_usd": _MONEY, "cached_input_usd": _MONEY, "cache_write_usd": _MONEY,
    "output_usd": _MONEY, "total_usd": _MONEY, "latency_ms": _FLOAT, "overhead_ms": _FLOAT,
    "tags": st.dictionaries(st.text(max_size=300), st.text(max_size=300), max_size=70),
})


@settings(max_examples=300, deadline=None)
@given(_ROW)
def test_params_from_the_dict_equal_params_from_its_json(row: dict[str, Any]) -> None:
    """The direct writer's row_sqlite_params and the shipper's sqlite_params write the same values."""
    try:
        payload = encode_row(row)
    except (TypeError, ValueError):
        return  # a row the spool would not take (e.g. a lone surrogate); not a ledger row
    try:
        expected: Any = sqlite_params("e1", payload)
    except (TypeError, ValueError, KeyError, ArithmeticError) as exc:
        expected = type(exc)
    try:
        got: Any = row_sqlite_params("e1", row)
    except (TypeError, ValueError, KeyError, ArithmeticError) as exc:
        got = type(exc)
    assert got == expected


def test_params_from_a_real_record_equal_params_from_its_json() -> None:
    row = to_row(make_record(3, end_user_external_id="x\x00y" * 200, latency_ms=float("nan")))
    assert row_sqlite_params("e9", row) == sqlite_params("e9", encode_row(row))

"""Pure parts of the limits: money on the wire, calendar periods in a time zone, rule validation and
matching, worst-case tokens and cost, header formatting, and the --workers start-up check."""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from tollway.cli import main
from tollway.core.context import Principal
from tollway.core.types import CanonicalRequest, FunctionTool
from tollway.limits import money
from tollway.limits.backend import RateSlot
from tollway.limits.budgets import worst_case_cost
from tollway.limits.periods import PeriodClock, period_window, resets_at
from tollway.limits.ratelimit import duration, headers
from tollway.limits.rules import (
    BudgetRule,
    RateRule,
    RuleBook,
    RuleError,
    budget_targets,
    parse_budget,
    parse_rate,
    update_budget,
    update_rate,
)
from tollway.limits.tokens import TokenCounter, collect, load_encoding, output_tokens, tokenizer_for
from tollway.limits.workers import check_workers
from tollway.metering.pricing import ModelPrice, PriceTable
from tollway.settings import Settings

D = Decimal
TZ = ZoneInfo("Europe/Paris")


def at(text: str, tz: ZoneInfo = TZ) -> float:
    return datetime.fromisoformat(text).replace(tzinfo=tz).timestamp()


# ---- money -----------------------------------------------------------------------------------------


def test_wire_amounts_are_exact_and_round_up() -> None:
    assert money.to_wire(D("1.5")) == "1.500000000000000000"
    assert money.to_wire(D("0.000000123456789012")) == "0.000000123456789012"
    assert money.to_wire(D("1E-19")) == "0.000000000000000001"  # rounded up, never down
    assert money.to_wire(D("123456789012345.25")) == "123456789012345.250000000000000000"
    for bad in (D(-1), D("NaN"), D("Infinity"), money.MAX_USD):
        with pytest.raises(ValueError):
            money.to_wire(bad)
    assert money.from_wire(b"0.120000000000000000") == D("0.12") and money.from_wire(None) == 0


def test_amounts_read_well() -> None:
    assert [money.usd(D(x)) for x in ("1", "0.5", "0.000123", "12.3456", "-2")] == [
        "$1.00", "$0.50", "$0.000123", "$12.3456", "$0.00"]
    assert [money.plain(D(x)) for x in ("1.500", "0E-18", "10", "0.000001000")] == ["1.5", "0", "10", "0.000001"]


# ---- periods ---------------------------------------------------------------------------------------


def test_calendar_periods_in_a_time_zone() -> None:
    now = at("2026-03-29T12:00:00")  # a Sunday, the day Paris springs forward (23 hours long)
    day = period_window("daily", now, TZ)
    assert (day.start, day.end) == (at("2026-03-29T00:00:00"), at("2026-03-30T00:00:00"))
    assert day.end is not None and day.end - day.start == 23 * 3600
    week = period_window("weekly", now, TZ)
    assert (week.start, week.end) == (at("2026-03-23T00:00:00"), at("2026-03-30T00:00:00"))
    month = period_window("monthly", at("2026-12-31T23:59:59"), TZ)
    assert (month.start, month.end) == (at("2026-12-01T00:00:00"), at("2027-01-01T00:00:00"))
    assert resets_at(month, TZ) == "2027-01-01T00:00:00+01:00"
    total = period_window("total", now, TZ)
    assert total.end is None and resets_at(total, TZ) is None and total.expire_at_ms == 0
    clock = PeriodClock(TZ)
    assert clock.window("daily", now) == day and clock.window("daily", now + 1) is clock.window("daily", now)
    assert clock.window("daily", at("2026-03-30T00:00:00")).start == at("2026-03-30T00:00:00")


# ---- rules -----------------------------------------------------------------------------------------


def test_rule_validation() -> None:
    rule = parse_budget({"scope": "team", "scope_id": " team_1 ", "limit_usd": 0.1})
    assert (rule.scope_id, rule.limit_usd, rule.period, rule.alert_threshold) == ("team_1", D("0.1"), "monthly",
                                                                                  D("0.8"))
    assert update_budget(rule, {"period": "total", "alert_threshold": "1"}).alert_threshold == D(1)
    assert parse_budget({"scope": "org", "scope_id": "o", "limit_usd": "0"}).limit_usd == 0  # a frozen budget
    with pytest.raises(RuleError) as info:
        parse_budget({"scope": "org", "scope_id": "o", "limit_usd": "1e20"})
    assert info.value.field == "limit_usd"
    rate = parse_rate({"scope": "model", "scope_id": "gpt-4o", "tpm": 1000})
    assert (rate.rpm, rate.tpm, rate.max_concurrent) == (None, 1000, None)
    with pytest.raises(RuleError) as info:
        update_rate(rate, {"tpm": None})
    assert info.value.field == "rpm"
    assert update_rate(rate, {"rpm": 5}).rpm == 5


def test_rulebook_matches_the_request_chain() -> None:
    p = Principal(key_id="key_1", key_name="ci", org_id="org_1", org_name="Acme", team_id="team_1",
                  team_name="Search", project_id="proj_1", project_name="Rerank")
    budgets = [BudgetRule("b1", "org", "org_1", D(1), "daily"), BudgetRule("b2", "key", "*", D(1), "daily"),
               BudgetRule("b3", "end_user", "eu_1", D(1), "daily"), BudgetRule("b4", "org", "org_2", D(1), "daily")]
    rates = [RateRule("r1", "project", "proj_1", rpm=1), RateRule("r2", "model", "openai/gpt-4o", rpm=1),
             RateRule("r3", "model", "gpt-4o", rpm=1), RateRule("r4", "end_user", "*", rpm=1)]
    book = RuleBook.build(3, budgets, rates)
    targets = list(budget_targets(p, "eu_1", "alice"))
    assert [t.scope for t in targets] == ["org", "team", "project", "key", "end_user"]
    matched = book.budgets_for(iter(targets))
    assert [(r.id, t.entity_id, t.name) for r, t in matched] == [
        ("b1", "org_1", "Acme"), ("b2", "key_1", "ci"), ("b3", "eu_1", "alice")]
    found = book.rates_for(targets, ("gpt-4o", "openai/gpt-4o", "gpt-4o"))
    assert [(r.id, t.entity_id) for r, t in found] == [("r1", "proj_1"), ("r4", "eu_1"), ("r3", "gpt-4o"),
                                                       ("r2", "openai/gpt-4o")]
    assert book.rates_for(list(budget_targets(None, None, None)), ("mock", "mock/mock", "mock")) == []
    assert RuleBook().empty and not RuleBook().loaded


# ---- tokens and cost -------------------------------------------------------------------------------


def test_shipped_encodings_tokenize_like_openai() -> None:
    o200k = load_encoding("o200k_base")
    assert o200k.encode_ordinary("hello world") == [24912, 2375]
    cl100k = load_encoding("cl100k_base")
    assert cl100k.encode_ordinary("hello world") == [15339, 1917]
    assert o200k.n_vocab == 200019 and cl100k.n_vocab == 100277


def test_tokenizer_choice() -> None:
    assert tokenizer_for("gpt-4o-mini") == ("o200k_base", 1.0)
    assert tokenizer_for("openai/gpt-5") == ("o200k_base", 1.0)
    assert tokenizer_for("ft:gpt-4o-mini:acme::abc") == ("o200k_base", 1.0)
    assert tokenizer_for("gpt-4-turbo") == ("cl100k_base", 1.0)
    assert tokenizer_for("gpt-3.5-turbo") == ("cl100k_base", 1.0)
    assert tokenizer_for("o3-mini")[0] == "o200k_base"
    assert tokenizer_for("claude-sonnet-4-5") == ("o200k_base", 1.35)
    assert tokenizer_for("us.anthropic.claude-3-haiku") == ("o200k_base", 1.35)
    assert tokenizer_for("gemini-2.5-flash") == ("o200k_base", 1.25)


async def test_input_tokens() -> None:
    counter = TokenCounter()
    req = CanonicalRequest(model="gpt-4o", instructions="Be brief.", input=[
        {"type": "message", "role": "user", "content": [
            {"type": "input_text", "text": "hello world"},
            {"type": "input_image", "image_url": "https://x/y.png", "detail": "low"},
            {"type": "input_image", "image_url": "https://x/z.png"}]},
        {"type": "function_call", "call_id": "c1", "name": "lookup", "arguments": "{\"q\": 1}"},
        {"type": "function_call_output", "call_id": "c1", "output": "42"},
        {"type": "reasoning", "summary": [{"type": "summary_text", "text": "thinking"}],
         "encrypted_content": "x" * 400}],
        tools=[FunctionTool(name="lookup", description="Look up", parameters={"type": "object"})])
    texts, fixed = collect(req, "gpt-4o")
    assert fixed == 3 + 4 * 4 + 4 + 85 + 2500 + 100 + 8
    assert "hello world" in texts and "{\"q\": 1}" in texts and "42" in texts and "thinking" in texts
    enc = load_encoding("o200k_base")
    expected = sum(len(enc.encode_ordinary(t)) for t in texts) + fixed
    assert await counter.input_tokens(req, "gpt-4o") == expected
    plain = CanonicalRequest(model="x", input=[{"type": "message", "role": "user", "content": "hello world"}])
    assert await counter.input_tokens(plain, "gpt-4o") == 2 + 3 + 4
    assert await counter.input_tokens(plain, "claude-x") == 3 + 3 + 4  # ceil(2 x 1.35)
    mini = CanonicalRequest(model="gpt-4o-mini", input=[{"type": "message", "role": "user", "content": [
        {"type": "input_image", "image_url": "data:image/png;base64,AAAA"}]}])
    assert collect(mini, "gpt-4o-mini")[1] == 3 + 4 + 48_169
    big_file = CanonicalRequest(model="x", input=[{"type": "message", "role": "user", "content": [
        {"type": "input_file", "file_data": "data:application/pdf;base64," + "QUFB" * 10_000}]}])
    assert collect(big_file, "x")[1] == 3 + 4 + 7_500  # 30,000 bytes / 4


def test_output_tokens() -> None:
    price = ModelPrice(input=D(1), output=D(2), max_output_tokens=16_384)
    assert output_tokens(CanonicalRequest(model="m", input=[], max_output_tokens=50), "openai_responses", price) == 50
    assert output_tokens(CanonicalRequest(model="m", input=[]), "openai_responses", price) == 16_384
    assert output_tokens(CanonicalRequest(model="m", input=[]), "openai_chat", None) == 16_384
    assert output_tokens(CanonicalRequest(model="m", input=[]), "anthropic", price) == 4096
    thinking = CanonicalRequest(model="m", input=[], reasoning_effort="high")
    assert output_tokens(thinking, "anthropic", price) == 16_384 + 4096


def test_worst_case_cost_takes_the_dearest_rates() -> None:
    table = PriceTable.load()
    sonnet = table.lookup("anthropic", "claude-sonnet-4-5")
    assert sonnet is not None and sonnet.cache_write is not None and sonnet.cache_write > sonnet.input
    # every input token written to the cache (dearer than plain input), every output token at the output rate
    assert worst_case_cost(sonnet, 1_000_000, 1_000_000) == sonnet.cache_write + sonnet.output
    cheap = ModelPrice(input=D(1), output=D(2), reasoning=D(8))
    assert worst_case_cost(cheap, 1_000_000, 1_000_000) == D(9)


# ---- headers ---------------------------------------------------------------------------------------


def test_durations_and_headers() -> None:
    assert [duration(x) for x in (0, 20, 999, 1000, 1500, 59_999, 60_000, 61_500, 360_000)] == [
        "0ms", "20ms", "999ms", "1s", "1.5s", "59.999s", "1m0s", "1m1.5s", "6m0s"]
    slots = [RateSlot("a", "r", 100, 1), RateSlot("b", "r", 10, 1), RateSlot("c", "t", 1000, 50),
             RateSlot("d", "c", 2, 1)]
    assert dict(headers(slots, [50, 4, 200, 1], True)) == {
        b"x-ratelimit-limit-requests": b"10", b"x-ratelimit-remaining-requests": b"6",
        b"x-ratelimit-reset-requests": b"1m0s", b"x-ratelimit-limit-tokens": b"1000",
        b"x-ratelimit-remaining-tokens": b"800", b"x-ratelimit-reset-tokens": b"1m0s"}


# ---- start-up ----------------------------------------------------------------------------------------


def test_workers_without_redis(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                               monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("REDIS_URL", raising=False)
    monkeypatch.setattr("tollway.cli.configure_logging", lambda level: None)  # keep pytest's log handlers
    assert check_workers(Settings(workers=1)) is None
    assert check_workers(Settings(workers=4, redis_url="redis://127.0.0.1:6379/0")) is None
    refusal = check_workers(Settings(workers=4))
    assert refusal is not None and "--workers 4 without REDIS_URL" in refusal
    assert check_workers(Settings.model_validate({"workers": 4, "limits": {"per_worker_fallback": True}})) is None
    config = tmp_path / "c.yaml"
    config.write_text(f"database_url: sqlite+aiosqlite:///{tmp_path}/x.db\n")
    assert main(["serve", "--config", str(config), "--workers", "3"]) == 2
    assert "without REDIS_URL" in capsys.readouterr().err

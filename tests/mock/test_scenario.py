from __future__ import annotations

import orjson
import pytest
from hypothesis import given
from hypothesis import strategies as st

from tollway.mock.scenario import (
    Ask,
    Controls,
    MockDefaults,
    RequestInvalid,
    count_words,
    make_script,
    make_state,
    parse_controls,
    split_pieces,
    state_valid,
    strip_directives,
)

DEFAULTS = MockDefaults()


def test_split_pieces_one_per_word_keeps_text() -> None:
    assert split_pieces("echo: hello  big world ") == ["echo: ", "hello  ", "big ", "world "]
    assert split_pieces("") == []
    assert split_pieces("   ") == ["   "]


def test_split_pieces_groups_into_exactly_n() -> None:
    text = "one two three four five six seven"
    pieces = split_pieces(text, 3)
    assert len(pieces) == 3
    assert "".join(pieces) == text
    assert split_pieces("a b", 5) == ["a ", "b"]


@given(
    st.text(alphabet=st.sampled_from("ab \n\t\u00a0\u3000é"), max_size=60),
    st.integers(min_value=1, max_value=30),
)
def test_split_pieces_properties(text: str, n: int) -> None:
    pieces = split_pieces(text, n)
    assert "".join(pieces) == text
    words = count_words(text)
    if words:
        assert len(pieces) == min(n, words)
        assert all(p.strip() for p in pieces)


def test_parse_controls_and_errors() -> None:
    c = Controls()
    parse_controls("chunks=100, delay_ms=5;fault=429 param=tools", c)
    assert (c.chunks, c.delay_ms, c.fault, c.param) == (100, 5.0, "429", "tools")
    for bad in ("chunks=0", "chunks=x", "fault=teapot", "colour=red", "chunks", "delay_ms=-1"):
        with pytest.raises(RequestInvalid) as info:
            parse_controls(bad, Controls())
        assert info.value.param == "x-mock-scenario"


def test_strip_directives() -> None:
    c = Controls()
    assert strip_directives("hello [mock:chunks=7] world [mock:delay_ms=2]", c) == "hello  world"
    assert (c.chunks, c.delay_ms) == (7, 2.0)
    same = "no directive here"
    assert strip_directives(same, Controls()) is same


def test_state_round_trip_and_tampering() -> None:
    state = make_state("enc_", "thinking about: x")
    assert state_valid("enc_", state)
    assert not state_valid("sig_", state)
    assert not state_valid("enc_", state[:-1] + ("0" if state[-1] != "0" else "1"))
    assert not state_valid("enc_", state + "0")
    assert not state_valid("enc_", None)
    assert not state_valid("enc_", "gAAAAAB" + "x" * 40)


def test_echo_and_token_counts() -> None:
    ask = Ask(model="m", user_text="hello big world", input_words=5)
    s = make_script(ask, None, DEFAULTS)
    assert s.text == "echo: hello big world"
    assert s.text_pieces == []  # only streams are split into deltas
    streamed = make_script(Ask(model="m", user_text="hello big world", stream=True), None, DEFAULTS)
    assert streamed.text_pieces == ["echo: ", "hello ", "big ", "world"]
    assert (s.input_tokens, s.output_tokens, s.cached_tokens, s.reasoning_tokens) == (5, 4, 0, 0)
    assert not s.incomplete and s.tool_calls == []


def test_empty_input_and_cache() -> None:
    s = make_script(Ask(model="m", cache=True, input_words=0), None, DEFAULTS)
    assert s.text == "echo: "
    assert s.input_tokens == 1 and s.cached_tokens == 0
    s = make_script(Ask(model="m", user_text="a b c d e", input_words=9, cache=True), None, DEFAULTS)
    assert s.cached_tokens == 4


def test_directive_removed_from_text_and_token_count() -> None:
    ask = Ask(model="m", user_text="[mock:chunks=2, delay_ms=0] hi there", input_words=6)
    s = make_script(ask, None, DEFAULTS)
    assert s.user_text == "hi there"
    assert s.input_tokens == 4  # the directive's two words are not counted
    assert s.text == "echo: hi there"  # not streamed: never padded


def test_stream_padding_to_exact_chunks() -> None:
    ask = Ask(model="m", user_text="hi", input_words=1, stream=True)
    s = make_script(ask, "chunks=6", DEFAULTS)
    assert s.text == "echo: hi lorem lorem lorem lorem"
    assert len(s.text_pieces) == 6
    assert s.output_tokens == 6
    s = make_script(Ask(model="m", user_text=" ".join(["w"] * 50), stream=True), None, MockDefaults(chunks=8))
    assert len(s.text_pieces) == 8


def test_json_output_padding_stays_valid_json() -> None:
    ask = Ask(model="m", user_text="hi", json_output=True, stream=True)
    s = make_script(ask, "chunks=5", DEFAULTS)
    assert s.text is not None
    assert orjson.loads(s.text) == {"echo": "hi lorem lorem lorem lorem"}
    assert len(s.text_pieces) == 5
    plain = make_script(Ask(model="m", user_text="hi", json_output=True), None, DEFAULTS)
    assert plain.text == '{"echo":"hi"}'


def test_tool_calls_single_parallel_and_result() -> None:
    ask = Ask(model="m", user_text="do it in parallel", tools=["a", "b", "c"])
    s = make_script(ask, None, DEFAULTS)
    assert [c.name for c in s.tool_calls] == ["a", "b"]
    assert s.tool_calls[0].arguments == '{"input":"do it in parallel"}'
    assert s.tool_calls[0].digest != s.tool_calls[1].digest
    assert s.text is None
    assert s.output_tokens == 2 * count_words('{"input":"do it in parallel"}')
    again = make_script(ask, None, DEFAULTS)
    assert again.tool_calls[0].digest == s.tool_calls[0].digest  # deterministic
    serial = make_script(
        Ask(model="m", user_text="parallel", tools=["a", "b"], parallel=False), None, DEFAULTS
    )
    assert [c.name for c in serial.tool_calls] == ["a"]
    answered = make_script(
        Ask(model="m", user_text="q", tools=["a"], tool_outputs=["1", "2"]), None, DEFAULTS
    )
    assert answered.tool_calls == [] and answered.text == "tool said: 1; 2"


def test_reasoning_counts_in_output() -> None:
    s = make_script(Ask(model="m", user_text="why so", reasoning=True), None, DEFAULTS)
    assert s.reasoning == "thinking about: why so"
    assert s.reasoning_tokens == 4
    assert s.output_tokens == 4 + 3


def test_truncation_text_then_reasoning() -> None:
    s = make_script(Ask(model="m", user_text="one two three four", max_tokens=3), None, DEFAULTS)
    assert s.incomplete and s.text == "echo: one two" and s.output_tokens == 3
    s = make_script(Ask(model="m", user_text="one two", reasoning=True, max_tokens=2), None, DEFAULTS)
    assert s.incomplete and s.reasoning == "thinking about:" and s.text is None and s.output_tokens == 2
    s = make_script(Ask(model="m", user_text="x", max_tokens=2), None, DEFAULTS)
    assert not s.incomplete and s.text == "echo: x"


def test_fault_and_timing_controls() -> None:
    s = make_script(Ask(model="m", user_text="[mock:fault=slow_first_byte,delay_ms=250] x"), None, DEFAULTS)
    assert (s.fault, s.first_byte, s.delay) == ("slow_first_byte", 0.25, 0.0)
    s = make_script(Ask(model="m", user_text="x"), "fault=slow_first_byte", MockDefaults(delay_ms=3))
    assert s.first_byte == 1.0 and s.delay == 0.0
    s = make_script(Ask(model="m", user_text="x [mock:delay_ms=7]"), "delay_ms=3,chunks=2", DEFAULTS)
    assert s.delay == 0.007  # the directive in the text wins over the header

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from tollway.providers.framing import NDJSONDecoder, SSEDecoder

STREAM = (b"event: a\ndata: {\"x\":1}\n\n: comment\n\nid: 7\ndata: line1\ndata: line2\n\n"
          b"data: [DONE]\n\n")
EXPECTED = [("a", b'{"x":1}'), (None, b"line1\nline2"), (None, b"[DONE]")]


def run(decoder: SSEDecoder | NDJSONDecoder, chunks: list[bytes]) -> list[tuple[str | None, bytes]]:
    out = []
    for c in chunks:
        out += decoder.feed(c)
    return out + decoder.end()


def split(data: bytes, cuts: list[int]) -> list[bytes]:
    points = sorted({c % (len(data) + 1) for c in cuts})
    pieces, last = [], 0
    for p in points:
        pieces.append(data[last:p])
        last = p
    return [*pieces, data[last:]]


@given(st.lists(st.integers(min_value=0, max_value=10_000), max_size=12))
def test_sse_any_chunking(cuts: list[int]) -> None:
    assert run(SSEDecoder(), split(STREAM, cuts)) == EXPECTED


@given(st.lists(st.integers(min_value=0, max_value=10_000), max_size=12))
def test_sse_crlf_any_chunking(cuts: list[int]) -> None:
    assert run(SSEDecoder(), split(STREAM.replace(b"\n", b"\r\n"), cuts)) == EXPECTED


def test_sse_unterminated_last_event_is_flushed_at_end() -> None:
    assert run(SSEDecoder(), [b"data: tail"]) == [(None, b"tail")]


@given(st.lists(st.integers(min_value=0, max_value=10_000), max_size=8))
def test_ndjson_any_chunking(cuts: list[int]) -> None:
    body = b'{"a":1}\n\n{"b":2}\r\n{"c":3}'
    assert run(NDJSONDecoder(), split(body, cuts)) == [(None, b'{"a":1}'), (None, b'{"b":2}'), (None, b'{"c":3}')]

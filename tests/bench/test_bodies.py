from __future__ import annotations

import orjson

from bench import bodies


def _events(sse: bytes) -> list[bytes]:
    return [block for block in sse.split(b"\n\n") if block]


def _data(block: bytes) -> bytes:
    return next(line[len(b"data: ") :] for line in block.split(b"\n") if line.startswith(b"data: "))


def test_request_bodies() -> None:
    chat = orjson.loads(bodies.request_body("chat", "openai-chat/gpt-4o-mini", stream=True))
    assert chat["model"] == "openai-chat/gpt-4o-mini"
    assert chat["stream"] is True
    assert chat["messages"][0]["role"] == "user"
    responses = orjson.loads(bodies.request_body("responses", "gpt-4o-mini", stream=False))
    assert "stream" not in responses
    assert isinstance(responses["input"], str)


def test_chat_sse_has_one_delta_per_chunk_and_done() -> None:
    events = _events(bodies.chat_sse(7))
    assert _data(events[-1]) == b"[DONE]"
    payloads = [orjson.loads(_data(e)) for e in events[:-1]]
    deltas = [p for p in payloads if p["choices"] and p["choices"][0]["delta"].get("content")]
    assert len(deltas) == 7
    assert payloads[-1]["usage"]["completion_tokens"] == 7


def test_responses_sse_is_ordered_and_complete() -> None:
    events = _events(bodies.responses_sse(5))
    payloads = [orjson.loads(_data(e)) for e in events]
    assert [p["sequence_number"] for p in payloads] == list(range(len(payloads)))
    assert payloads[0]["type"] == "response.created"
    assert payloads[-1]["type"] == "response.completed"
    deltas = "".join(p["delta"] for p in payloads if p["type"] == "response.output_text.delta")
    assert payloads[-1]["response"]["output"][0]["content"][0]["text"] == deltas
    for block, payload in zip(events, payloads, strict=True):
        assert block.startswith(b"event: " + payload["type"].encode() + b"\n")


def test_anthropic_sse_text_matches_json() -> None:
    payloads = [orjson.loads(_data(e)) for e in _events(bodies.anthropic_sse(4))]
    text = "".join(p["delta"]["text"] for p in payloads if p["type"] == "content_block_delta")
    assert orjson.loads(bodies.anthropic_json(4))["content"][0]["text"] == text
    assert payloads[-1]["type"] == "message_stop"


def test_upstream_files_per_mode() -> None:
    files = bodies.upstream_files(3)
    assert set(files["json"]) == {"chat.json", "responses.json", "messages.json"}
    assert set(files["sse"]) == {"chat.sse", "responses.sse", "messages.sse"}
    for content in files["json"].values():
        orjson.loads(content)

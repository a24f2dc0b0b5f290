"""Tests for the ConverseStream parser (tollway.providers.bedrock_stream): every recorded binary event stream
in ../shared/specs/providers/bedrock/wire, decoded by botocore as the shared client does, parses to the expected
items and usage; exceptions, truncation and odd block sequences."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import orjson
import pytest
from botocore.eventstream import EventStreamBuffer

from tollway.core import reasoning_state
from tollway.core.assembler import OutputAssembler
from tollway.core.types import CanonicalRequest, Delta, ItemDone, StreamError, Usage
from tollway.providers.bedrock import BedrockAdapter
from tollway.providers.bedrock_stream import BedrockStreamParser

ROOT = Path(__file__).resolve().parents[2]
WIRE = ROOT / ".." / "shared" / "specs" / "providers" / "bedrock" / "wire"
REQ = CanonicalRequest(model="m", input=[], stream=True)


def frames_of(raw: bytes) -> list[tuple[str | None, bytes]]:
    """What tollway.providers.client yields for an event stream body."""
    buffer = EventStreamBuffer()
    buffer.add_data(raw)
    out: list[tuple[str | None, bytes]] = []
    for message in buffer:
        headers = message.headers
        if headers.get(":message-type") == "exception":
            out.append((f"exception:{headers[':exception-type']}", message.payload))
        else:
            out.append((headers.get(":event-type"), message.payload))
    return out


def run(frames: list[tuple[str | None, bytes]]) -> tuple[list[Delta], OutputAssembler]:
    parser = BedrockAdapter().stream_parser(REQ)
    deltas: list[Delta] = []
    for event, data in frames:
        deltas += parser.feed(event, data)
    deltas += parser.close()
    assembler = OutputAssembler()
    done: set[Any] = set()
    for d in deltas:
        key = getattr(d, "key", None)
        assert key is None or key not in done, f"delta for {key} after its ItemDone: {d}"
        if isinstance(d, ItemDone):
            done.add(d.key)
        assembler.apply(d)
    return deltas, assembler


def recorded(name: str) -> tuple[list[Delta], OutputAssembler]:
    return run(frames_of((WIRE / f"{name}.response.eventstream.bin").read_bytes()))


def strip_ids(items: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [{k: v for k, v in it.items() if k != "id"} for it in items]


def text_item(text: str) -> dict[str, Any]:
    return {
        "type": "message",
        "status": "completed",
        "role": "assistant",
        "content": [{"type": "output_text", "text": text, "annotations": []}],
    }


def test_recorded_frames_match_the_decoded_events() -> None:
    for path in WIRE.glob("*.eventstream.bin"):
        events = orjson.loads(path.with_name(path.name.replace(".eventstream.bin", ".events.json")).read_bytes())
        frames = frames_of(path.read_bytes())
        assert [e for e, _ in frames] == [e["headers"][":event-type"] for e in events]
        assert [orjson.loads(d) for _, d in frames] == [e["payload"] for e in events]


def test_text_stream() -> None:
    _, a = recorded("test_bedrock_model_stream.00")
    result = a.result()
    (item,) = result.output
    assert item["content"][0]["text"].startswith("The capital of France is Paris. Paris is not only the capital city")
    assert result.status == "completed" and result.incomplete_reason is None
    events = orjson.loads((WIRE / "test_bedrock_model_stream.00.response.events.json").read_bytes())
    usage = events[-1]["payload"]["usage"]
    assert result.usage == Usage(input_tokens=usage["inputTokens"], output_tokens=usage["outputTokens"])


def test_text_then_streamed_tool_arguments() -> None:
    deltas, a = recorded("test_bedrock_model_iter_stream.00")
    result = a.result()
    message, call = strip_ids(result.output)
    assert message["content"][0]["text"].startswith("<thinking> To find the temperature of the capital of France")
    assert call == {
        "type": "function_call",
        "status": "completed",
        "call_id": "tooluse_lAG_zP8QRHmSYOwZzzaCqA",
        "name": "get_temperature",
        "arguments": '{"city":"Paris"}',
    }
    assert result.status == "completed"
    assert result.usage == Usage(input_tokens=471, output_tokens=91)
    # the text message is done before the tool call starts
    kinds = [type(d).__name__ for d in deltas]
    assert kinds.index("ItemDone") < kinds.index("ToolCallStart")


def test_answer_after_tool_result() -> None:
    _, a = recorded("test_bedrock_model_iter_stream.01")
    result = a.result()
    assert strip_ids(result.output) == [text_item("The current temperature in Paris, the capital of France, is 30°C.")]
    assert result.usage == Usage(input_tokens=577, output_tokens=18)


def test_reasoning_with_signature() -> None:
    _, a = recorded("test_bedrock_model_thinking_part_stream.00")
    result = a.result()
    reasoning, message = strip_ids(result.output)
    events = orjson.loads((WIRE / "test_bedrock_model_thinking_part_stream.00.response.events.json").read_bytes())
    signature = next(
        e["payload"]["delta"]["reasoningContent"]["signature"]
        for e in events
        if "signature" in e["payload"].get("delta", {}).get("reasoningContent", {})
    )
    assert reasoning["content"][0]["text"].startswith('The user has greeted me with a simple "Hello".')
    assert reasoning_state.unwrap(reasoning["encrypted_content"]) == ("bedrock", {"signature": signature})
    assert message == text_item("Hello! It's nice to meet you. How can I help you today?")
    assert result.usage == Usage(input_tokens=36, output_tokens=73)


def test_redacted_reasoning_blocks() -> None:
    _, a = recorded("test_bedrock_model_thinking_part_redacted_stream.00")
    result = a.result()
    first, second, message = strip_ids(result.output)
    events = orjson.loads(
        (WIRE / "test_bedrock_model_thinking_part_redacted_stream.00.response.events.json").read_bytes()
    )
    redacted = [e["payload"]["delta"]["reasoningContent"]["redactedContent"] for e in events[1:4:2]]
    for item, data in zip((first, second), redacted, strict=True):
        assert item["type"] == "reasoning" and item["content"] == []
        assert reasoning_state.unwrap(item["encrypted_content"]) == ("bedrock", {"redacted": data})
    assert message["content"][0]["text"].startswith("I notice you've sent what appears to be some")
    assert result.usage == Usage(input_tokens=92, output_tokens=253)


def test_empty_text_block_and_reasoning_without_signature() -> None:
    """gpt-oss: an empty text block, reasoning text without a signature (no opaque state), then the answer."""
    _, a = recorded("test_bedrock_model_stream_empty_text_delta.00")
    result = a.result()
    reasoning, message = strip_ids(result.output)
    assert reasoning["content"][0]["text"].startswith('The user just says "Hi".')
    assert "encrypted_content" not in reasoning
    assert message == text_item("Hello! How can I help you today?")
    assert result.usage == Usage(input_tokens=70, output_tokens=43)


# --------------------------------------------------------------------------------------------------
# synthetic sequences
# --------------------------------------------------------------------------------------------------


def ev(kind: str, **payload: Any) -> tuple[str, bytes]:
    return kind, orjson.dumps({**payload, "p": "abc"})


def delta(index: int, **value: Any) -> tuple[str, bytes]:
    return ev("contentBlockDelta", contentBlockIndex=index, delta=value)


START = ev("messageStart", role="assistant")


def stop(index: int) -> tuple[str, bytes]:
    return ev("contentBlockStop", contentBlockIndex=index)


def message_stop(reason: str) -> tuple[str, bytes]:
    return ev("messageStop", stopReason=reason)


def test_consecutive_text_blocks_form_one_message_and_parallel_tools() -> None:
    _, a = run(
        [
            START,
            delta(0, text="Hello "),
            stop(0),
            delta(1, text="world"),
            stop(1),
            ev("contentBlockStart", contentBlockIndex=2, start={"toolUse": {"toolUseId": "t1", "name": "a"}}),
            stop(2),
            ev("contentBlockStart", contentBlockIndex=3, start={"toolUse": {"toolUseId": "t2", "name": "b"}}),
            delta(3, toolUse={"input": '{"x":'}),
            delta(3, toolUse={"input": "1}"}),
            stop(3),
            message_stop("tool_use"),
            ev(
                "metadata",
                usage={
                    "inputTokens": 10,
                    "outputTokens": 4,
                    "totalTokens": 19,
                    "cacheReadInputTokens": 3,
                    "cacheWriteInputTokens": 2,
                },
                metrics={"latencyMs": 5},
            ),
        ]
    )
    result = a.result()
    assert strip_ids(result.output) == [
        text_item("Hello world"),
        {"type": "function_call", "status": "completed", "call_id": "t1", "name": "a", "arguments": "{}"},
        {"type": "function_call", "status": "completed", "call_id": "t2", "name": "b", "arguments": '{"x":1}'},
    ]
    assert result.usage == Usage(input_tokens=15, output_tokens=4, cached_tokens=3, cache_write_tokens=2)


@pytest.mark.parametrize(
    ("reason", "status", "why"),
    [
        ("max_tokens", "incomplete", "max_output_tokens"),
        ("guardrail_intervened", "incomplete", "content_filter"),
        ("content_filtered", "incomplete", "content_filter"),
        ("end_turn", "completed", None),
    ],
)
def test_stop_reasons(reason: str, status: str, why: str | None) -> None:
    _, a = run([START, delta(0, text="partial"), stop(0), message_stop(reason)])
    result = a.result()
    assert (result.status, result.incomplete_reason) == (status, why)
    assert result.usage is None


@pytest.mark.parametrize(
    ("kind", "envelope"),
    [
        ("throttlingException", "rate_limit_error"),
        ("serviceUnavailableException", "overloaded_error"),
        ("modelStreamErrorException", "server_error"),
        ("validationException", "invalid_request_error"),
        ("somethingNewException", "server_error"),
    ],
)
def test_exceptions_end_the_stream(kind: str, envelope: str) -> None:
    deltas, _ = run([START, delta(0, text="Hi"), (f"exception:{kind}", b'{"message":"went wrong"}')])
    assert deltas[-1] == StreamError("went wrong", code=kind, type=envelope)


def test_exception_without_message() -> None:
    deltas, _ = run([(f"exception:{'internalServerException'}", b"oops")])
    assert deltas[-1] == StreamError(
        "Bedrock stream failed (internalServerException)", code="internalServerException", type="server_error"
    )


def test_truncated_and_malformed_streams() -> None:
    deltas, a = run([START, delta(0, text="Hi")])
    assert deltas[-1] == StreamError("stream ended before messageStop", code="upstream_stream_truncated")
    assert a.result().output[0]["status"] == "incomplete"
    parser = BedrockStreamParser()
    assert parser.feed("contentBlockDelta", b'{"contentBlockIndex": 0, "delta": ') == [
        StreamError("malformed stream event", code="upstream_bad_event")
    ]
    assert parser.close() == []


def test_unknown_events_and_blocks_are_ignored() -> None:
    _, a = run(
        [
            START,
            ev("somethingNew", x=1),
            ev("contentBlockStart", contentBlockIndex=0, start={"image": {"format": "png"}}),
            delta(0, image={"source": {"bytes": "aGk="}}),
            stop(0),
            delta(1, citation={"title": "t"}),
            stop(1),
            delta(2, text="ok"),
            stop(2),
            stop(2),
            message_stop("end_turn"),
        ]
    )
    assert strip_ids(a.result().output) == [text_item("ok")]

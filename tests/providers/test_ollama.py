"""Tests for the response half of the Ollama adapter: documented and constructed native answers and NDJSON
streams (../shared/specs/providers/ollama), call ids, done reasons, usage and errors. The recorded cassettes
went through Ollama's OpenAI-compatible endpoint; they are checked against the OpenAI-compatible adapter."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import orjson
import pytest

from tests.providers.test_ollama_request import api_md_chat_examples
from tollway.core.assembler import OutputAssembler
from tollway.core.errors import GatewayError
from tollway.core.types import (
    CanonicalRequest,
    Delta,
    Finish,
    Item,
    ItemDone,
    ReasoningDelta,
    StreamError,
    TextDelta,
    ToolCallArgsDelta,
    ToolCallStart,
    UsageUpdate,
)
from tollway.mock import ollama as mock_wire
from tollway.mock.scenario import Ask, MockDefaults, make_script
from tollway.providers.ollama import DONE_REASONS, OllamaAdapter, call_id, map_done_reason
from tollway.providers.openai_chat import OpenAIChatAdapter

ROOT = Path(__file__).resolve().parents[2]
OLLAMA = ROOT / ".." / "shared" / "specs" / "providers" / "ollama"
WIRE = OLLAMA / "wire"
DOCS = OLLAMA / "wire-docs"
CONSTRUCTED = OLLAMA / "wire-constructed"

ADAPTER = OllamaAdapter()
JSONDict = dict[str, Any]


def run_stream(raw: bytes) -> list[Delta]:
    parser = ADAPTER.stream_parser(CanonicalRequest(model="m", input=[]))
    deltas: list[Delta] = []
    for line in raw.splitlines():
        if line.strip():
            deltas.extend(parser.feed(None, line.strip()))
    deltas.extend(parser.close())
    return deltas


def assemble(deltas: list[Delta]) -> tuple[list[Item], OutputAssembler]:
    """The output a stream yields, checking the delta protocol: no delta for an item after its ItemDone, and
    every item finished exactly once (but the one cut short by the token limit)."""
    assembler = OutputAssembler()
    finished: set[Any] = set()
    keys: set[Any] = set()
    for d in deltas:
        key = getattr(d, "key", None)
        if isinstance(d, ItemDone):
            assert d.key in keys and d.key not in finished
            finished.add(d.key)
        elif key is not None:
            assert key not in finished, f"delta for finished item {key}"
            keys.add(key)
        assembler.apply(d)
    if assembler.status == "incomplete":  # the item cut short stays open
        assert len(keys - finished) <= 1
    else:
        assert finished == keys
    items = assembler.result().output
    for item in items:
        item.pop("id")
    return items, assembler


def strip_ids(items: list[Item]) -> list[Item]:
    return [{k: v for k, v in item.items() if k not in ("id", "call_id")} for item in items]


def text_of(items: list[Item]) -> str:
    return "".join(p["text"] for it in items if it["type"] == "message" for p in it["content"])


# --------------------------------------------------------------------------------------------------
# documented answers (docs/api.md, the OpenAPI example)
# --------------------------------------------------------------------------------------------------

# section title -> (text, [(tool, arguments)], (input, output) usage, status)
EXPECTED: dict[str, tuple[str, list[tuple[str, JSONDict]], tuple[int, int] | None, str]] = {
    "Chat request (No streaming)": ("Hello! How are you today?", [], (26, 298), "completed"),
    "Chat request (No streaming, with tools)": ("", [("get_weather", {"city": "Tokyo"})], (169, 18), "completed"),
    "Chat request (Structured outputs)": ('{"age": 22, "available": false}', [], (34, 12), "completed"),
    "Chat request (With history, with tools)": ("The current temperature in Toronto is 11°C.", [], (94, 11),
                                                "completed"),
    "Chat request (with images)": (" The image features a cute, little pig with an angry facial expression. It's "
                                   "wearing a heart on its shirt and is waving in the air. This scene appears to be "
                                   "part of a drawing or sketching project.", [], (26, 83), "completed"),
    "Chat request (Reproducible outputs)": ("Hello! How are you today?", [], (26, 298), "completed"),
    "Chat request (with tools)": ("", [("get_current_weather", {"format": "celsius", "location": "Paris, FR"})],
                                  (122, 33), "completed"),
    "Load a model": ("", [], None, "completed"),
    "Unload a model": ("", [], None, "completed"),
}
SINGLE = {t: resp[0] for t, (_, resp) in api_md_chat_examples().items() if len(resp) == 1}


def test_every_single_answer_example_is_expected() -> None:
    assert set(SINGLE) == set(EXPECTED)


@pytest.mark.parametrize("title", sorted(EXPECTED))
def test_api_md_answers_parse(title: str) -> None:
    text, calls, usage, status = EXPECTED[title]
    body = SINGLE[title]
    resp = ADAPTER.parse_response(orjson.dumps(body))
    assert resp.status == status and resp.incomplete_reason is None
    assert text_of(resp.output) == text
    got_calls = [(it["name"], orjson.loads(it["arguments"])) for it in resp.output if it["type"] == "function_call"]
    assert got_calls == calls
    assert [it["type"] for it in resp.output] == (["message"] if text else []) + ["function_call"] * len(calls)
    if usage is None:
        assert resp.usage is None
    else:
        assert resp.usage is not None
        assert (resp.usage.input_tokens, resp.usage.output_tokens, resp.usage.cached_tokens) == (*usage, 0)
    assert resp.upstream_model == body["model"] and resp.upstream_id is None


def test_openapi_example_answer() -> None:
    import yaml

    doc = yaml.load((OLLAMA / "ollama" / "docs" / "openapi.yaml").read_text(), Loader=yaml.CSafeLoader)
    example = doc["paths"]["/api/chat"]["post"]["responses"]["200"]["content"]["application/json"]["example"]
    resp = ADAPTER.parse_response(orjson.dumps(example))
    assert resp.output == [{"type": "message", "role": "assistant", "status": "completed", "content": [
        {"type": "output_text", "text": "Hello! How can I help you today?", "annotations": []}]}]
    assert resp.usage is not None and (resp.usage.input_tokens, resp.usage.output_tokens) == (11, 18)


def test_thinking_tool_calls_and_compact_arguments() -> None:
    body = {"model": "qwen3", "created_at": "2026-01-01T00:00:00.1Z", "message": {
        "role": "assistant", "content": "Let me check.", "thinking": "Need the weather.",
        "tool_calls": [{"function": {"name": "get_weather", "arguments": {"city": "Tokyo", "days": [1, 2]}}},
                       {"function": {"name": "get_time", "arguments": {}}},
                       {"function": {"arguments": {"x": 1}}}]},  # no name: not a call
        "done_reason": "stop", "done": True, "prompt_eval_count": 10, "eval_count": 20}
    resp = ADAPTER.parse_response(orjson.dumps(body))
    reasoning, message, first, second = resp.output
    assert reasoning == {"type": "reasoning", "summary": [],
                         "content": [{"type": "reasoning_text", "text": "Need the weather."}]}
    assert "encrypted_content" not in reasoning  # Ollama has no opaque reasoning state
    assert message["content"][0]["text"] == "Let me check."
    assert first["arguments"] == '{"city":"Tokyo","days":[1,2]}' and second["arguments"] == "{}"
    assert first["call_id"] == call_id("2026-01-01T00:00:00.1Z", 0, "get_weather", first["arguments"])
    assert second["call_id"] == call_id("2026-01-01T00:00:00.1Z", 1, "get_time", "{}")
    assert first["call_id"].startswith("call_") and len(first["call_id"]) == 29
    again = ADAPTER.parse_response(orjson.dumps(body))
    assert [it.get("call_id") for it in again.output] == [it.get("call_id") for it in resp.output]  # deterministic
    other = ADAPTER.parse_response(orjson.dumps({**body, "created_at": "2026-01-01T00:00:01Z"}))
    assert other.output[2]["call_id"] != first["call_id"]  # the same call in a later answer gets a new id


def test_upstream_call_ids_are_kept_and_string_arguments_passed() -> None:
    body = {"model": "m", "created_at": "t", "message": {"role": "assistant", "content": "", "tool_calls": [
        {"id": "call_k3n9x2ab", "function": {"index": 0, "name": "f", "arguments": '{"a":1}'}}]},
        "done": True, "done_reason": "stop"}
    (call,) = ADAPTER.parse_response(orjson.dumps(body)).output
    assert call["call_id"] == "call_k3n9x2ab" and call["arguments"] == '{"a":1}'


@pytest.mark.parametrize(("reason", "status", "incomplete"), [
    ("stop", "completed", None), ("length", "incomplete", "max_output_tokens"), ("load", "completed", None),
    ("unload", "completed", None), (None, "completed", None), ("something_new", "completed", None),
])
def test_done_reasons(reason: str | None, status: str, incomplete: str | None) -> None:
    assert map_done_reason(reason) == (status, incomplete)
    body: JSONDict = {"model": "m", "message": {"role": "assistant", "content": "cut sh"}, "done": True,
                      "eval_count": 2}
    if reason is not None:
        body["done_reason"] = reason
    resp = ADAPTER.parse_response(orjson.dumps(body))
    assert (resp.status, resp.incomplete_reason) == (status, incomplete)
    assert resp.output[0]["status"] == ("incomplete" if status == "incomplete" else "completed")


def test_done_reason_table_has_no_content_filter() -> None:
    assert all(reason != "content_filter" for _, reason in DONE_REASONS.values())


def test_usage_with_cached_count_and_missing_prompt_count() -> None:
    body = {"model": "m", "message": {"role": "assistant", "content": "x"}, "done": True,
            "prompt_eval_count": 100, "prompt_eval_cached_count": 60, "eval_count": 7}
    usage = ADAPTER.parse_response(orjson.dumps(body)).usage
    assert usage is not None
    assert (usage.input_tokens, usage.cached_tokens, usage.output_tokens, usage.reasoning_tokens) == (100, 60, 7, 0)
    del body["prompt_eval_count"]  # old servers omit it when the whole prompt came from the cache
    usage = ADAPTER.parse_response(orjson.dumps(body)).usage
    assert usage is not None and (usage.input_tokens, usage.cached_tokens, usage.output_tokens) == (0, 0, 7)


@pytest.mark.parametrize(("body", "code", "message"), [
    (b"not json", "upstream_bad_response", "malformed"),
    (b"[1]", "upstream_bad_response", "malformed"),
    (b'{"model":"m","done":true}', "upstream_bad_response", "no message"),
    (b'{"error":"model runner has unexpectedly stopped"}', "upstream_error",
     "ollama: model runner has unexpectedly stopped"),
])
def test_bad_answers_are_502(body: bytes, code: str, message: str) -> None:
    with pytest.raises(GatewayError) as exc:
        ADAPTER.parse_response(body)
    assert exc.value.status == 502 and exc.value.code == code and message in exc.value.message


# --------------------------------------------------------------------------------------------------
# errors
# --------------------------------------------------------------------------------------------------


def test_error_messages() -> None:
    documented = (DOCS / "error.body.from-errors.mdx.json").read_bytes()
    assert ADAPTER.error_message(documented) == ("the model failed to generate a response", None)
    assert ADAPTER.error_message(b'{"error":"model \'x\' not found"}') == ("model 'x' not found", None)
    assert ADAPTER.error_message(b'{"error":{"message":"bad key","type":"auth"}}') == ("bad key", "auth")
    assert ADAPTER.error_message(b"<html>502 Bad Gateway</html>") == ("<html>502 Bad Gateway</html>", None)
    assert ADAPTER.error_message(b"") == ("empty error body", None)
    assert ADAPTER.error_message(b'{"detail":"x"}') == ('{"detail":"x"}', None)


# --------------------------------------------------------------------------------------------------
# streams
# --------------------------------------------------------------------------------------------------


def test_documented_text_stream() -> None:
    deltas = run_stream((DOCS / "api.chat.stream.from-api.md.ndjson").read_bytes())
    assert deltas == [
        TextDelta(0, "The"), ItemDone(0),
        UsageUpdate(input_tokens=26, output_tokens=282, cached_tokens=0),
        Finish("completed", None, upstream_model="llama3.2"),
    ]


def test_documented_tool_stream() -> None:
    deltas = run_stream((DOCS / "api.chat.stream-with-tools.from-api.md.ndjson").read_bytes())
    items, assembler = assemble(deltas)
    assert strip_ids(items) == [{"type": "function_call", "status": "completed", "name": "get_weather",
                                 "arguments": '{"city":"Tokyo"}'}]
    assert items[0]["call_id"] == call_id("2025-07-07T20:22:19.184789Z", 0, "get_weather", '{"city":"Tokyo"}')
    assert assembler.status == "completed"
    assert (assembler.usage.input_tokens, assembler.usage.output_tokens) == (169, 15)


def test_constructed_thinking_then_tool_call_stream() -> None:
    raw = (CONSTRUCTED / "api.chat.stream.thinking-then-tool-call.CONSTRUCTED.ndjson").read_bytes()
    deltas = run_stream(raw)
    assert deltas[:5] == [
        ReasoningDelta(0, "The user asks for the weather in Tokyo;"),
        ReasoningDelta(0, " I should call get_weather."),
        ItemDone(0),
        ToolCallStart(1, "call_k3n9x2ab", "get_weather"),
        ToolCallArgsDelta(1, '{"city":"Tokyo"}'),
    ]
    items, assembler = assemble(deltas)
    assert [it["type"] for it in items] == ["reasoning", "function_call"]
    assert items[0]["content"][0]["text"] == "The user asks for the weather in Tokyo; I should call get_weather."
    assert assembler.upstream_model == "qwen3:8b"
    assert (assembler.usage.input_tokens, assembler.usage.output_tokens) == (169, 42)


def test_documented_midstream_error() -> None:
    deltas = run_stream((DOCS / "api.generate.stream.midstream-error.from-errors.mdx.ndjson").read_bytes())
    assert deltas == [StreamError("an error was encountered while running the model", code=None)]


def test_truncated_and_malformed_streams() -> None:
    lines = (DOCS / "api.chat.stream.from-api.md.ndjson").read_bytes().splitlines()
    deltas = run_stream(lines[0])
    assert deltas[-1] == StreamError("stream ended before its final (done) line", code="upstream_stream_truncated")
    deltas = run_stream(lines[0] + b'\n{"model":"m","message":{"content":\n' + lines[1])
    assert isinstance(deltas[-1], StreamError) and deltas[-1].code == "upstream_bad_chunk"
    assert not any(isinstance(d, Finish) for d in deltas)


def test_interleaved_kinds_get_fresh_items() -> None:
    lines: list[JSONDict] = [
        {"message": {"role": "assistant", "content": "", "thinking": "a"}},
        {"message": {"role": "assistant", "content": "b", "thinking": ""}},
        {"message": {"role": "assistant", "content": "", "thinking": "c"}},
        {"message": {"role": "assistant", "content": "d",
                     "tool_calls": [{"function": {"name": "f", "arguments": {}}},
                                    {"function": {"name": "g", "arguments": {"k": "v"}}}]}},
        {"message": {"role": "assistant", "content": "e"}, "done": True, "done_reason": "length",
         "prompt_eval_count": 3, "eval_count": 9},
    ]
    raw = b"\n".join(orjson.dumps({"model": "m", "created_at": "t", **line, "done": line.get("done", False)})
                     for line in lines)
    items, assembler = assemble(run_stream(raw))
    assert [(it["type"], it.get("name")) for it in items] == [
        ("reasoning", None), ("message", None), ("reasoning", None), ("message", None),
        ("function_call", "f"), ("function_call", "g"), ("message", None)]
    assert text_of(items) == "bde"
    assert assembler.status == "incomplete" and assembler.incomplete_reason == "max_output_tokens"
    assert len({it["call_id"] for it in items if it["type"] == "function_call"}) == 2


def test_lines_after_done_are_ignored() -> None:
    raw = (DOCS / "api.chat.stream.from-api.md.ndjson").read_bytes() + b'\n{"error":"late"}\n'
    assert not any(isinstance(d, StreamError) for d in run_stream(raw))


ASKS = [
    Ask(model="llama3.2", user_text="hello there world", stream=True),
    Ask(model="qwen3", user_text="why is the sky blue", reasoning=True, stream=True),
    Ask(model="qwen3", user_text="weather parallel", tools=["get_weather", "get_time"], reasoning=True,
        stream=True),
    Ask(model="m", user_text="cut this answer short please", max_tokens=4, stream=True),
    Ask(model="m", user_text="x", tool_outputs=["sunny", "noon"], stream=True),
    Ask(model="m", user_text="as json", json_output=True, stream=True),
]


@pytest.mark.parametrize("ask", ASKS)
def test_stream_and_json_answers_agree(ask: Ask) -> None:
    """What the mock streams assembles to what it answers in one body (call ids aside: they depend on the
    answer's timestamp)."""
    script = make_script(ask, None, MockDefaults())
    body = mock_wire.render_json(script, {})
    plan = mock_wire.render_stream(script, {})
    resp = ADAPTER.parse_response(body)
    items, assembler = assemble(run_stream(b"".join(plan.frames)))
    assert strip_ids(items) == strip_ids(resp.output)
    assert assembler.status == resp.status and assembler.incomplete_reason == resp.incomplete_reason
    assert resp.usage is not None and assembler.usage == resp.usage
    assert resp.usage.output_tokens == script.output_tokens


# --------------------------------------------------------------------------------------------------
# the recorded cassettes (Ollama's OpenAI-compatible /v1/chat/completions, served by the openai_chat adapter
# when configured with kind: openai_chat)
# --------------------------------------------------------------------------------------------------

SHIM_ANSWERS = {
    "test_ollama_cloud_prompted_output.00": ('{"name":"Loki","animal":"cat","age":3}', None, (172, 88)),
    "test_ollama_cloud_tool_output.00": ("Paris.", None, (134, 122)),
    "test_ollama_cloud_tool_output.01": ("", ("final_result", '{"city":"Paris","country":"France"}'), (206, 194)),
    "test_ollama_local_native_output_uses_json_schema.00": ('{ "city": "Paris", "country": "France" }', None,
                                                            (136, 15)),
}


@pytest.mark.parametrize("name", sorted(SHIM_ANSWERS))
def test_recorded_shim_answers(name: str) -> None:
    text, call, usage = SHIM_ANSWERS[name]
    raw = (WIRE / f"{name}.response.json").read_bytes()
    resp = OpenAIChatAdapter().parse_response(raw)
    assert resp.output[0]["type"] == "reasoning"
    assert resp.output[0]["content"][0]["text"] == orjson.loads(raw)["choices"][0]["message"]["reasoning"]
    assert text_of(resp.output) == text
    calls = [(it["name"], it["arguments"]) for it in resp.output if it["type"] == "function_call"]
    assert calls == ([call] if call else [])
    assert resp.usage is not None and (resp.usage.input_tokens, resp.usage.output_tokens) == usage


def test_every_recorded_answer_is_checked() -> None:
    assert {p.name.removesuffix(".response.json") for p in WIRE.glob("*.response.json")} == set(SHIM_ANSWERS)

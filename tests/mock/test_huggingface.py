"""The mock's Hugging Face wire (``/hf/v1/chat/completions``): shapes against the recorded router answers,
the three flavours, ``<think>`` verification, and the faults in HF/TGI error shapes."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import orjson
import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient

from tests.mock.sse import frames
from tollway.core.types import CanonicalRequest, ReasoningDelta, TextDelta, ToolCallStart, UsageUpdate
from tollway.providers.huggingface import HuggingFaceAdapter
from tollway.providers.huggingface_stream import synth_call_id

Client = TestClient[web.Request, web.Application]
PATH = "/hf/v1/chat/completions"
WIRE = Path(__file__).resolve().parents[2] / ".." / "shared" / "specs" / "providers" / "huggingface" / "wire"
ADAPTER = HuggingFaceAdapter()
TOOLS = [
    {"type": "function", "function": {"name": "lookup", "parameters": {"type": "object"}}},
    {"type": "function", "function": {"name": "search", "parameters": {"type": "object"}}},
]


def body(text: str, model: str = "org/model", **extra: Any) -> dict[str, Any]:
    return {"model": model, "messages": [{"role": "user", "content": text}], **extra}


async def post(client: Client, data: dict[str, Any], status: int = 200) -> dict[str, Any]:
    resp = await client.post(PATH, json=data)
    assert resp.status == status, await resp.text()
    out: dict[str, Any] = orjson.loads(await resp.read())
    return out


async def stream(client: Client, data: dict[str, Any]) -> list[dict[str, Any]]:
    resp = await client.post(PATH, json={**data, "stream": True})
    assert resp.status == 200
    assert resp.headers["content-type"].startswith("text/event-stream")
    parsed = frames(await resp.read())
    assert parsed[-1] == (None, "[DONE]")
    assert all(event is None for event, _ in parsed)
    return [orjson.loads(d) for _, d in parsed[:-1]]


def _keys(obj: dict[str, Any]) -> set[str]:
    return set(obj)


# -- router flavour: the recorded shapes ------------------------------------------------------------------------


async def test_router_json_matches_recorded_shape(client: Client) -> None:
    recorded = json.loads((WIRE / "test_tool_choice_matrix[none-huggingface].00.response.json").read_bytes())
    data = await post(client, body("hello there"))
    assert _keys(data) == _keys(recorded) - {"metadata"}
    assert _keys(data["choices"][0]) == _keys(recorded["choices"][0])
    assert _keys(data["choices"][0]["message"]) == _keys(recorded["choices"][0]["message"])
    assert _keys(data["usage"]) == {"prompt_tokens", "completion_tokens", "total_tokens", "cached_tokens"}
    message = data["choices"][0]["message"]
    assert message == {"role": "assistant", "content": "echo: hello there", "tool_calls": [], "reasoning": None}
    assert data["choices"][0]["finish_reason"] == "stop"


async def test_router_reasoning_as_think_tags(client: Client) -> None:
    data = await post(client, body("why", reasoning_effort="low"))
    content = data["choices"][0]["message"]["content"]
    assert content == "<think>\nthinking about: why\n</think>\n\necho: why"
    parsed = ADAPTER.parse_response(orjson.dumps(data))
    assert [i["type"] for i in parsed.output] == ["reasoning", "message"]


async def test_router_tool_calls_match_recorded_shape(client: Client) -> None:
    recorded = json.loads((WIRE / "test_request_structured_response.00.response.json").read_bytes())
    data = await post(client, body("find it", tools=TOOLS, tool_choice={"function": {"name": "search"}}))
    call = data["choices"][0]["message"]["tool_calls"]
    assert len(call) == 1 and _keys(call[0]) == _keys(recorded["choices"][0]["message"]["tool_calls"][0])
    assert call[0]["function"] == {"name": "search", "arguments": '{"input":"find it"}'}
    assert data["choices"][0]["finish_reason"] == "tool_calls"


async def test_router_stream_matches_recorded_chunks(client: Client) -> None:
    raw = (WIRE / "test_hf_model_thinking_part_iter.00.response.sse").read_bytes()
    first = orjson.loads(raw.split(b"\n\n")[0][len(b"data: ") :])
    chunks = await stream(client, body("[mock:chunks=3] think now", reasoning_effort="high"))
    assert _keys(chunks[0]) == _keys(first)
    assert _keys(chunks[0]["choices"][0]) == _keys(first["choices"][0])
    assert _keys(chunks[0]["choices"][0]["delta"]) == _keys(first["choices"][0]["delta"])
    contents = [c["choices"][0]["delta"]["content"] for c in chunks]
    assert contents[:2] == ["<th", "ink>\nthinking "]
    assert any(c.endswith("\n</th") for c in contents) and any(c.startswith("ink>\n\n") for c in contents)
    assert "".join(contents).startswith("<think>\nthinking about: think now\n</think>\n\necho: think now")
    # usage on the finishing chunk even without stream_options (as recorded), null before
    assert [c["usage"] is not None for c in chunks] == [False] * (len(chunks) - 1) + [True]
    assert chunks[-1]["choices"][0]["finish_reason"] == "stop" and chunks[-1]["usage"]["cached_tokens"] == 0


# -- tgi and vllm flavours ----------------------------------------------------------------------------------------


async def test_tgi_json_tool_calls_object_arguments_without_ids(client: Client) -> None:
    data = await post(client, body("run parallel", "org/model:tgi", tools=TOOLS))
    assert data["id"] == "" and data["system_fingerprint"]
    choice = data["choices"][0]
    assert choice["finish_reason"] == "eos_token"
    assert choice["message"] == {
        "role": "assistant",
        "tool_calls": [
            {"function": {"name": "lookup", "arguments": {"input": "run parallel"}, "description": None}},
            {"function": {"name": "search", "arguments": {"input": "run parallel"}, "description": None}},
        ],
    }
    parsed = ADAPTER.parse_response(orjson.dumps(data))
    assert [(c["call_id"], c["arguments"]) for c in parsed.output] == [
        (synth_call_id(None, 0, "lookup"), '{"input":"run parallel"}'),
        (synth_call_id(None, 1, "search"), '{"input":"run parallel"}'),
    ]


async def test_tgi_stream_usage_only_when_asked(client: Client) -> None:
    plain = await stream(client, body("hi there", "m:tgi"))
    assert all("usage" not in c for c in plain)
    asked = await stream(client, body("hi there", "m:tgi", stream_options={"include_usage": True}))
    assert asked[-1]["choices"] == [] and asked[-1]["usage"]["prompt_tokens"] == 2
    assert all(c["usage"] is None for c in asked[:-1])
    assert asked[-2]["choices"][0]["finish_reason"] == "eos_token"


async def test_tgi_stream_tool_fragments_without_ids(client: Client) -> None:
    chunks = await stream(client, body("go", "m:tgi", tools=TOOLS[:1]))
    calls = [tc for c in chunks for tc in c["choices"][0]["delta"].get("tool_calls") or ()]
    assert calls[0] == {"index": 0, "function": {"name": "lookup", "arguments": '{"input":"go"}'}}
    assert all("id" not in tc and "type" not in tc for tc in calls)


async def test_vllm_reasoning_field_and_usage_details(client: Client) -> None:
    data = await post(client, body("q", "m:vllm", reasoning_effort="low"))
    message = data["choices"][0]["message"]
    assert message["reasoning_content"] == "thinking about: q" and message["content"] == "echo: q"
    assert data["usage"]["completion_tokens_details"] == {"reasoning_tokens": 3}
    chunks = await stream(client, body("q", "m:vllm", reasoning_effort="low", stream_options={"include_usage": True}))
    reasoning = "".join(c["choices"][0]["delta"].get("reasoning_content") or "" for c in chunks if c["choices"])
    assert reasoning == "thinking about: q"
    assert chunks[-1]["usage"]["prompt_tokens_details"] == {"cached_tokens": 0}


# -- request quirks -----------------------------------------------------------------------------------------------


async def test_max_tokens_honoured_max_completion_tokens_ignored(client: Client) -> None:
    long = "a b c d e f g h"
    cut = await post(client, body(long, max_tokens=3))
    assert cut["choices"][0]["finish_reason"] == "length" and cut["usage"]["completion_tokens"] == 3
    ignored = await post(client, body(long, max_completion_tokens=3))
    assert ignored["choices"][0]["finish_reason"] == "stop"
    assert ignored["choices"][0]["message"]["content"] == "echo: " + long


async def test_length_cut_inside_reasoning_leaves_think_open(client: Client) -> None:
    data = await post(client, body("one two three", reasoning_effort="low", max_tokens=2))
    assert data["choices"][0]["message"]["content"] == "<think>\nthinking about:"
    assert data["choices"][0]["finish_reason"] == "length"


@pytest.mark.parametrize(
    "fmt",
    [
        {"type": "json_schema", "json_schema": {"name": "o", "schema": {"type": "object"}}},
        {"type": "json", "value": {"type": "object"}},
        {"type": "json_object"},
    ],
)
async def test_json_formats(client: Client, fmt: dict[str, Any]) -> None:
    data = await post(client, body("hi", response_format=fmt))
    assert orjson.loads(data["choices"][0]["message"]["content"]) == {"echo": "hi"}


async def test_continuation_reports_cached_prefix(client: Client) -> None:
    convo = [
        {"role": "user", "content": "one two three four"},
        {"role": "assistant", "content": "echo: x"},
        {"role": "user", "content": "five six"},
    ]
    data = await post(client, {"model": "m", "messages": convo})
    assert data["usage"]["cached_tokens"] == data["usage"]["prompt_tokens"] // 2 > 0
    fresh = await post(client, body("one two"))
    assert fresh["usage"]["cached_tokens"] == 0


# -- <think> verification -----------------------------------------------------------------------------------------


def _followup(assistant: str, first: str = "[mock:chunks=2] plan it") -> dict[str, Any]:
    return {
        "model": "m",
        "messages": [
            {"role": "user", "content": first},
            {"role": "assistant", "content": assistant},
            {"role": "user", "content": "next"},
        ],
    }


async def test_intact_think_block_is_accepted(client: Client) -> None:
    data = await post(client, _followup("<think>\nthinking about: plan it\n</think>\n\necho: plan it"))
    assert data["choices"][0]["message"]["content"] == "echo: next"
    await post(client, _followup("<think>thinking about:</think>"))  # cut short by max_tokens: still ours


@pytest.mark.parametrize(
    "assistant",
    [
        "<think>\nthinking about: something else\n</think>\nok",
        "<think>\nthinking about: plan it",
        "echo first <think>thinking about: plan it</think>",
        "<think>\n</think>\nempty",
    ],
)
async def test_altered_or_malformed_think_block_is_400(client: Client, assistant: str) -> None:
    data = await post(client, _followup(assistant), status=400)
    assert data["error_type"] == "validation" and data["error"].startswith("messages[1].content: ")


# -- faults in HF error shapes ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("fault", "status", "shape"),
    [
        ("400", 400, {"error", "error_type"}),
        ("401", 401, {"error"}),
        ("403", 403, {"error"}),
        ("404", 404, {"object", "message", "type", "param", "code"}),
        ("429", 429, {"error"}),
        ("500", 500, {"error", "error_type"}),
        ("529", 503, {"error", "estimated_time"}),
    ],
)
@pytest.mark.parametrize("streaming", [False, True])
async def test_http_faults(client: Client, fault: str, status: int, shape: set[str], streaming: bool) -> None:
    resp = await client.post(PATH, json=body(f"[mock:fault={fault}] hi", stream=streaming))
    assert resp.status == status
    data = orjson.loads(await resp.read())
    assert set(data) == shape
    message, _ = ADAPTER.error_message(orjson.dumps(data))
    assert message and not message.startswith("{")  # the message itself, not the raw body
    if fault == "403":
        assert set(data["error"]) == {"message", "type", "code"}
    if fault == "429":
        assert resp.headers["retry-after"] == "2"
    if fault == "529":
        assert message.endswith("(estimated time 20s)")


async def test_stream_error_and_malformed(client: Client) -> None:
    resp = await client.post(PATH, json=body("[mock:fault=stream_error,chunks=4] a b c d", stream=True))
    parsed = frames(await resp.read())
    last = orjson.loads(parsed[-1][1])
    assert last == {
        "error": "Request failed during generation: Server error: CUDA out of memory (mock)",
        "error_type": "generation",
    }
    resp = await client.post(PATH, json=body("[mock:fault=malformed] x"))
    with pytest.raises(orjson.JSONDecodeError):
        orjson.loads(await resp.read())


async def test_streams_parse_back_through_the_adapter(client: Client) -> None:
    for model in ("m", "m:tgi", "m:vllm"):
        resp = await client.post(
            PATH,
            json=body(
                "[mock:chunks=3] say it",
                model,
                reasoning_effort="low",
                stream=True,
                stream_options={"include_usage": True},
            ),
        )
        parser = ADAPTER.stream_parser(CanonicalRequest(model, [], stream=True))
        deltas = []
        for _, data in frames(await resp.read()):
            deltas.extend(parser.feed(None, data.encode()))
        deltas.extend(parser.close())
        assert "".join(d.text for d in deltas if isinstance(d, ReasoningDelta)) == "thinking about: say it", model
        assert [d.text for d in deltas if isinstance(d, TextDelta)] == ["echo: ", "say ", "it"], model
        assert any(isinstance(d, UsageUpdate) for d in deltas) and not any(isinstance(d, ToolCallStart) for d in deltas)

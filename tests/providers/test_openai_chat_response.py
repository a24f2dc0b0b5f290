"""OpenAIChatAdapter.parse_response against recorded chat completion bodies."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import orjson
import pytest

from tollway.core.errors import GatewayError
from tollway.core.types import (
    CanonicalRequest,
    Finish,
    Item,
    Usage,
)
from tollway.providers.openai_chat import OpenAIChatAdapter

PROVIDERS = Path(__file__).resolve().parents[2] / ".." / "shared" / "specs" / "providers"
OPENAI_WIRE = PROVIDERS / "openai" / "wire"

ADAPTER = OpenAIChatAdapter()


def _wire(provider: str, base: str, suffix: str) -> Path:
    return PROVIDERS / provider / "wire" / f"{base}.{suffix}"


def _chat_entries() -> list[dict[str, Any]]:
    index = json.loads((OPENAI_WIRE / "INDEX.json").read_bytes())
    return [e for e in index if e["uri"].endswith("/chat/completions")]


# --------------------------------------------------------------------------------------------------
# Non-streaming responses
# --------------------------------------------------------------------------------------------------


def _message(text: str, status: str = "completed") -> Item:
    return {
        "type": "message",
        "role": "assistant",
        "status": status,
        "content": [{"type": "output_text", "text": text, "annotations": []}],
    }


def _fc(call_id: str, name: str, arguments: str) -> Item:
    return {
        "type": "function_call",
        "call_id": call_id,
        "name": name,
        "arguments": arguments,
        "status": "completed",
    }


# base -> (expected output (text prefix for long texts), usage, upstream model, upstream id)
RESPONSES: dict[str, tuple[list[Item] | str, Usage, str, str]] = {
    "test_multiple_agent_tool_calls.02": (
        [_fc("call_SkEQ3ZGSJC8m6AvaIGNuuKdm", "get_capital", '{"country":"England"}')],
        Usage(104, 16),
        "gpt-4o-mini-2024-07-18",
        "chatcmpl-BEhL3fZWgTz2Z57jXexYbQPsOBUm3",
    ),
    "test_multiple_agent_tool_calls.03": (
        [_message("The capital of England is London.")],
        Usage(129, 9),
        "gpt-4o-mini-2024-07-18",
        "chatcmpl-BEhL4jHN01U9VPVVYzgKrwORTJ0Pw",
    ),
    "test_reasoning_model_with_temperature.00": (
        "The capital of Mexico is Mexico City.",
        Usage(13, 238, reasoning_tokens=192),
        "o3-mini-2025-01-31",
        "chatcmpl-BgzadlOEkRTXYim8s2TzQfnSpaZ4u",
    ),
    "test_max_completion_tokens[o3-mini].00": (
        [_message("Hello there! How can I help you today?")],
        Usage(7, 87, reasoning_tokens=64),
        "o3-mini-2025-01-31",
        "chatcmpl-Dr3KNfXKBS1oDOrhqYDuLYdjX9PM4",
    ),
    "test_user_id.00": (
        [_message("Hello! How can I assist you today?")],
        Usage(8, 10),
        "gpt-4o-2024-08-06",
        "chatcmpl-BFfJeRdAVFPUVWxV3OYH1tSR5KvrI",
    ),
    "test_openai_chat_prompt_cache_e2e.00": (
        [_message("OK")],
        Usage(4020, 4, cached_tokens=0, cache_write_tokens=4012),
        "gpt-5.6-sol",
        "chatcmpl-E1mBLGr3Ql1FsH8cdc76XdGw3PleH",
    ),
    "test_openai_chat_prompt_cache_e2e.01": (
        [_message("OK")],
        Usage(4020, 4, cached_tokens=4012, cache_write_tokens=0),
        "gpt-5.6-sol",
        "chatcmpl-E1mBQt42vYTsKNd5wnyJlT0db7v9S",
    ),
    "test_openai_model_thinking_part.01": (
        "When it comes to crossing a river safely",
        Usage(577, 2320, reasoning_tokens=1792),
        "o3-mini-2025-01-31",
        "chatcmpl-CENUmtwDD0HdvTUYL6lUeijDtxrZL",
    ),
    "test_tool_choice_matrix[auto-openai].00": (
        [_fc("call_aDdJTteHrpMdhdkEkyxjxEHH", "get_weather", '{"city":"Paris"}')],
        Usage(132, 23),
        "gpt-5-mini-2025-08-07",
        "chatcmpl-D3Sqix10hJ5DCDejQOQklpm4k7cj8",
    ),
    "test_tool_choice_matrix[auto-openai].01": (
        "It's sunny in Paris right now, about 22°C",
        Usage(167, 171, reasoning_tokens=128),
        "gpt-5-mini-2025-08-07",
        "chatcmpl-D3SqlRfqaB3DqdqMMzCTcq2Ghx9NY",
    ),
    "test_tool_choice_matrix[required-openai].00": (
        [_fc("call_injwxidE5XUzmiKVfOH3rxf2", "get_weather", '{"city":"Paris"}')],
        Usage(130, 87, reasoning_tokens=64),
        "gpt-5-mini-2025-08-07",
        "chatcmpl-D3TgtH4c8lJGywQHXUeoU4NOoaPUh",
    ),
    "test_tool_choice_matrix[none-openai].00": (
        "I can't fetch live weather data right now.",
        Usage(132, 589, reasoning_tokens=384),
        "gpt-5-mini-2025-08-07",
        "chatcmpl-D3Tgi0mMz0WAeprUYyPAJhIT3aTnQ",
    ),
    "test_tool_choice_matrix[list_single-openai].00": (
        [_fc("call_ZRDY1xLOEab4YUsDuuJMA1tF", "get_weather", '{"city":"Paris"}')],
        Usage(150, 23),
        "gpt-5-mini-2025-08-07",
        "chatcmpl-D3TgwdUycWrhUffnXVr0eUCw4bc2y",
    ),
}


def test_every_recorded_chat_response_is_covered() -> None:
    ok = {
        e["file_base"].removeprefix("wire/")
        for e in _chat_entries()
        if e["status"] == 200 and e["content_type"].startswith("application/json")
    }
    assert ok == set(RESPONSES)


@pytest.mark.parametrize("base", sorted(RESPONSES))
def test_recorded_openai_response(base: str) -> None:
    expected, usage, model, upstream_id = RESPONSES[base]
    parsed = ADAPTER.parse_response(_wire("openai", base, "response.json").read_bytes())
    if isinstance(expected, str):
        assert len(parsed.output) == 1
        item = parsed.output[0]
        assert item["type"] == "message" and item["status"] == "completed"
        assert item["content"][0]["text"].startswith(expected)
    else:
        assert parsed.output == expected
    assert parsed.status == "completed" and parsed.incomplete_reason is None
    assert parsed.usage == usage
    assert parsed.upstream_model == model
    assert parsed.upstream_id == upstream_id


def test_compatible_responses_huggingface_and_mistral() -> None:
    hf = ADAPTER.parse_response(_wire("huggingface", "test_max_completion_tokens.00", "response.json").read_bytes())
    assert hf.status == "incomplete" and hf.incomplete_reason == "max_output_tokens"
    assert hf.output[0]["status"] == "incomplete"
    assert hf.output[0]["content"][0]["text"].startswith("<think>\nHmm, the user just said")
    assert hf.usage == Usage(4, 100)

    base = "test_tool_choice_matrix[required-huggingface].00"
    hf = ADAPTER.parse_response(_wire("huggingface", base, "response.json").read_bytes())
    assert hf.output == [_fc("call_fd883226aed04dee83ca77e0", "get_weather", '{"city": "Paris"}')]
    assert hf.usage == Usage(608, 30)

    base = "test_tool_choice_matrix[auto-mistral].00"
    mistral = ADAPTER.parse_response(_wire("mistral", base, "response.json").read_bytes())
    assert mistral.output == [_fc("KikbB849t", "get_weather", '{"city": "Paris"}')]
    assert mistral.upstream_id == "1ecfb2eb89144df48968ae279308e0ee"
    mistral = ADAPTER.parse_response(
        _wire("mistral", "test_mistral_history_uses_prompt_cache.01", "response.json").read_bytes()
    )
    assert mistral.output == [_message("cache probe two.")]
    assert mistral.usage == Usage(268, 5, cached_tokens=224)


def _chat_body(message: dict[str, Any], finish_reason: str | None = "stop", **extra: Any) -> bytes:
    choice = {"index": 0, "message": {"role": "assistant", **message}, "finish_reason": finish_reason}
    return orjson.dumps({"id": "x", "model": "m", "choices": [choice], **extra})


@pytest.mark.parametrize("field", ["reasoning_content", "reasoning"])
def test_reasoning_content_parsing(field: str) -> None:
    parsed = ADAPTER.parse_response(_chat_body({field: "Let me think.", "content": "42"}))
    assert parsed.output == [
        {
            "type": "reasoning",
            "summary": [],
            "content": [{"type": "reasoning_text", "text": "Let me think."}],
        },
        _message("42"),
    ]
    assert parsed.usage is None


def test_reasoning_sent_in_both_fields_is_one_item() -> None:
    parsed = ADAPTER.parse_response(_chat_body({"reasoning_content": "hm", "reasoning": "hm", "content": None}))
    assert parsed.output == [
        {"type": "reasoning", "summary": [], "content": [{"type": "reasoning_text", "text": "hm"}]}
    ]


def test_refusal_annotations_logprobs_and_odd_tool_calls() -> None:
    body = _chat_body(
        {
            "content": "See docs.",
            "refusal": "Not that part.",
            "annotations": [
                {
                    "type": "url_citation",
                    "url_citation": {"start_index": 4, "end_index": 8, "url": "https://d", "title": "D"},
                }
            ],
            "tool_calls": [{"function": {"name": "f", "arguments": {"a": 1}}}],
        },
        logprobs=None,
    )
    choice_logprobs = {"content": [{"token": "See", "logprob": -0.1, "bytes": None, "top_logprobs": []}]}
    data = orjson.loads(body)
    data["choices"][0]["logprobs"] = choice_logprobs
    parsed = ADAPTER.parse_response(orjson.dumps(data))
    message, call = parsed.output
    assert message["content"] == [
        {
            "type": "output_text",
            "text": "See docs.",
            "annotations": [
                {"type": "url_citation", "start_index": 4, "end_index": 8, "url": "https://d", "title": "D"}
            ],
            "logprobs": [{"token": "See", "logprob": -0.1, "bytes": [], "top_logprobs": []}],
        },
        {"type": "refusal", "refusal": "Not that part."},
    ]
    assert call["arguments"] == '{"a":1}' and call["call_id"].startswith("call_") and call["name"] == "f"


@pytest.mark.parametrize(
    ("finish_reason", "status", "reason"),
    [
        ("stop", "completed", None),
        ("tool_calls", "completed", None),
        ("function_call", "completed", None),
        ("length", "incomplete", "max_output_tokens"),
        ("content_filter", "incomplete", "content_filter"),
        ("error", "failed", None),
        (None, "completed", None),
        ("eos", "completed", None),
    ],
)
def test_finish_reason_mapping(finish_reason: str | None, status: str, reason: str | None) -> None:
    parsed = ADAPTER.parse_response(_chat_body({"content": "x"}, finish_reason))
    assert (parsed.status, parsed.incomplete_reason) == (status, reason)
    chunk = {"choices": [{"index": 0, "delta": {"content": "x"}, "finish_reason": finish_reason}]}
    parser = ADAPTER.stream_parser(CanonicalRequest("m", [], stream=True))
    finish = [*parser.feed(None, orjson.dumps(chunk)), *parser.feed(None, b"[DONE]")][-1]
    assert isinstance(finish, Finish) and (finish.status, finish.incomplete_reason) == (status, reason)


def test_bad_bodies_raise_gateway_errors() -> None:
    with pytest.raises(GatewayError) as info:
        ADAPTER.parse_response(b"<html>")
    assert info.value.status == 502 and info.value.code == "upstream_bad_response"
    with pytest.raises(GatewayError) as info:
        ADAPTER.parse_response(b'{"error": {"message": "overloaded", "type": "server_error"}}')
    assert info.value.message == "overloaded" and info.value.code == "server_error"
    assert ADAPTER.parse_response(b'{"choices": []}').output == []

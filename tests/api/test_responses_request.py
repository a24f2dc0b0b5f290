from __future__ import annotations

from typing import Any

import pytest

from tollway.api.responses_request import parse_responses_request
from tollway.core.errors import GatewayError


def parse(**body: Any) -> Any:
    return parse_responses_request({"model": "m", **body})


def test_lenient_input_forms() -> None:
    r = parse(input=[
        {"role": "user", "content": "plain"},
        {"role": "assistant", "content": "said"},
        {"role": "user", "content": [{"type": "text", "text": "t"},
                                     {"type": "image_url", "image_url": {"url": "http://i/x.png", "detail": "low"}}]},
        {"type": "function_call", "call_id": "c", "name": "f", "arguments": "{}"},
        {"type": "function_call_output", "call_id": "c", "output": [{"type": "input_text", "text": "ok"}]},
    ])
    assert r.input[0]["content"] == [{"type": "input_text", "text": "plain"}]
    assert r.input[1]["content"] == [{"type": "output_text", "text": "said", "annotations": []}]
    assert r.input[2]["content"][1] == {"type": "input_image", "image_url": "http://i/x.png", "detail": "low"}
    assert r.input[4]["output"] == "ok"


def test_string_input_and_defaults() -> None:
    r = parse(input="hi")
    assert r.input == [{"type": "message", "role": "user", "content": [{"type": "input_text", "text": "hi"}]}]
    assert r.store is True and r.stream is False and r.tool_choice.mode == "auto"


def test_tool_choice_forms() -> None:
    tools = [{"type": "function", "name": "a"}, {"type": "function", "name": "b"}]
    r = parse(input="x", tools=tools, tool_choice={"type": "function", "name": "b"})
    assert (r.tool_choice.mode, r.tool_choice.allowed) == ("required", ["b"])
    r = parse(input="x", tools=tools, tool_choice={"type": "allowed_tools", "mode": "auto",
                                                   "tools": [{"type": "function", "name": "a"}]})
    assert (r.tool_choice.mode, r.tool_choice.allowed) == ("auto", ["a"])
    with pytest.raises(GatewayError) as exc:
        parse(input="x", tools=tools, tool_choice={"type": "allowed_tools", "tools": [{"name": "zz"}]})
    assert exc.value.param == "tool_choice.tools[0].name"


@pytest.mark.parametrize(("body", "param"), [
    ({"input": "x", "metadata": {"k": 1}}, "metadata.k"),
    ({"input": "x", "metadata": {f"k{i}": "v" for i in range(17)}}, "metadata"),
    ({"input": "x", "include": ["nope"]}, "include[0]"),
    ({"input": "x", "reasoning": {"effort": "max"}}, "reasoning.effort"),
    ({"input": "x", "truncation": "sometimes"}, "truncation"),
    ({"input": "x", "background": True}, "background"),
    ({"input": "x", "tools": [{"type": "web_search"}]}, "tools[0].type"),
    ({"input": "x", "tools": [{"type": "function", "name": "a"}, {"type": "function", "name": "a"}]},
     "tools[1].name"),
    ({"input": [{"type": "item_reference", "id": "x"}]}, "input[0].type"),
    ({"input": "x", "stream_options": {}}, "stream_options"),
    ({"input": "x", "top_p": 1.5}, "top_p"),
])
def test_bad_fields(body: dict[str, Any], param: str) -> None:
    with pytest.raises(GatewayError) as exc:
        parse(**body)
    assert exc.value.status == 400 and exc.value.param == param


def test_not_an_object() -> None:
    with pytest.raises(GatewayError) as exc:
        parse_responses_request([1])
    assert exc.value.code == "invalid_json"

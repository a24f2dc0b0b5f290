"""Tests for the request half of the Ollama adapter: every documented native ``/api/chat`` request
(../shared/specs/providers/ollama: ``docs/api.md`` and the OpenAPI code samples) reproduced from an equivalent
canonical request, the recorded OpenAI-shim requests carried over field by field, and the mapping rules."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import orjson
import pytest
import yaml
from hypothesis import given
from hypothesis import strategies as st

from tollway.core import reasoning_state
from tollway.core.errors import GatewayError
from tollway.core.types import CanonicalRequest, Fidelity, FunctionTool, Item, TextFormat, ToolChoice
from tollway.providers.base import ProviderSettings
from tollway.providers.ollama import OllamaAdapter
from tollway.providers.ollama_request import build_body

ROOT = Path(__file__).resolve().parents[2]
OLLAMA = ROOT / ".." / "shared" / "specs" / "providers" / "ollama"
API_MD = OLLAMA / "ollama" / "docs" / "api.md"
OPENAPI = OLLAMA / "ollama" / "docs" / "openapi.yaml"
WIRE = OLLAMA / "wire"

ADAPTER = OllamaAdapter()
SETTINGS = ProviderSettings(name="ollama", kind="ollama", base_url="http://127.0.0.1:11434")
PNG = "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mP8z8BQDwAEhQGAhKmMIQAAAABJRU5ErkJggg=="
JSONDict = dict[str, Any]


def build(req: CanonicalRequest, model: str = "llama3.2") -> tuple[JSONDict, Fidelity]:
    fidelity = Fidelity()
    for name in req.extra:  # what the pipeline does before building
        fidelity.dropped.append(name)
    body = build_body(req, model, fidelity)
    return body, fidelity


def user(text: str) -> Item:
    return {"type": "message", "role": "user", "content": [{"type": "input_text", "text": text}]}


# --------------------------------------------------------------------------------------------------
# documented requests: docs/api.md "Generate a chat completion" and the OpenAPI code samples
# --------------------------------------------------------------------------------------------------


def _curl_body(block: str) -> JSONDict:
    """The JSON of ``curl ... -d '{...}'`` (the docs annotate some bodies with ``//`` comment lines)."""
    start = block.index("-d '") + 4
    end = block.rindex("'")
    text = "\n".join(line for line in block[start:end].splitlines() if not line.strip().startswith("//"))
    body: JSONDict = orjson.loads(text)
    return body


def api_md_chat_examples() -> dict[str, tuple[list[JSONDict], list[JSONDict]]]:
    """``{section title: ([request bodies], [response objects])}`` for the ``/api/chat`` section."""
    text = API_MD.read_text()
    start = text.index("## Generate a chat completion")
    section = text[start : text.index("\n## ", start + 10)]
    out: dict[str, tuple[list[JSONDict], list[JSONDict]]] = {}
    for chunk in re.split(r"\n#### ", section)[1:]:
        title = chunk.split("\n", 1)[0].strip()
        requests = [_curl_body(b) for b in re.findall(r"```shell\n(.*?)```", chunk, re.S)]
        responses = [orjson.loads(b) for b in re.findall(r"```json\n(.*?)```", chunk, re.S)]
        out[title] = (requests, responses)
    return out


def openapi_chat_samples() -> dict[str, JSONDict]:
    doc = yaml.load(OPENAPI.read_text(), Loader=yaml.CSafeLoader)
    samples = doc["paths"]["/api/chat"]["post"]["x-codeSamples"]
    return {s["label"]: _curl_body(s["source"]) for s in samples}


def canonical_for(body: JSONDict) -> CanonicalRequest:
    """The canonical request a client would send to get ``body`` upstream (as the doors would parse it)."""
    items: list[Item] = []
    pending: dict[str, list[str]] = {}  # tool name -> call ids not yet answered
    for n, message in enumerate(body["messages"]):
        role = message["role"]
        if role == "tool":
            call = pending[message["tool_name"]].pop(0)
            items.append({"type": "function_call_output", "call_id": call, "output": message["content"]})
        elif role == "assistant":
            if message.get("content"):
                items.append({"type": "message", "role": "assistant",
                              "content": [{"type": "output_text", "text": message["content"]}]})
            for k, call in enumerate(message.get("tool_calls") or ()):
                fn = call["function"]
                cid = f"call_{n}_{k}"
                pending.setdefault(fn["name"], []).append(cid)
                items.append({"type": "function_call", "call_id": cid, "name": fn["name"],
                              "arguments": orjson.dumps(fn["arguments"]).decode()})
        else:
            content: list[JSONDict] = [{"type": "input_text", "text": message["content"]}]
            for image in message.get("images") or ():
                content.append({"type": "input_image", "image_url": f"data:image/png;base64,{image}",
                                "detail": "auto"})
            items.append({"type": "message", "role": role, "content": content})
    tools = [FunctionTool(t["function"]["name"], t["function"].get("description"), t["function"]["parameters"])
             for t in body.get("tools") or ()]
    fmt = body.get("format")
    text_format = TextFormat("json_object") if fmt == "json" else (
        TextFormat("json_schema", "out", fmt) if isinstance(fmt, dict) else TextFormat())
    options = body.get("options") or {}
    think = body.get("think")
    return CanonicalRequest(
        model=body["model"],
        input=items,
        tools=tools,
        text_format=text_format,
        reasoning_effort=think if isinstance(think, str) else None,
        temperature=options.get("temperature"),
        seed=options.get("seed"),
        stream=body.get("stream", True),
    )


def _with_stream(body: JSONDict) -> JSONDict:
    """tollway always states ``stream`` (Ollama's default is true)."""
    return {**body, "stream": body.get("stream", True)}


DOC_REQUESTS = [(title, reqs[0]) for title, (reqs, _) in api_md_chat_examples().items()
                if reqs and reqs[0]["messages"]]


@pytest.mark.parametrize(("title", "recorded"), DOC_REQUESTS, ids=[t for t, _ in DOC_REQUESTS])
def test_api_md_requests_reproduced(title: str, recorded: JSONDict) -> None:
    body, fidelity = build(canonical_for(recorded), recorded["model"])
    assert body == _with_stream(recorded)
    assert fidelity.dropped == [] and fidelity.approximated == []


def test_api_md_examples_are_all_covered() -> None:
    examples = api_md_chat_examples()
    assert len(DOC_REQUESTS) == 10
    # the two left out load / unload a model (empty messages): not a chat turn, the gateway never sends one
    skipped = {t for t, (reqs, _) in examples.items() if not reqs or not reqs[0]["messages"]}
    assert skipped == {"Load a model", "Unload a model"}


SAMPLES = sorted(openapi_chat_samples().items())


@pytest.mark.parametrize(("label", "recorded"), SAMPLES, ids=[label for label, _ in SAMPLES])
def test_openapi_code_samples_reproduced(label: str, recorded: JSONDict) -> None:
    body, fidelity = build(canonical_for(recorded), recorded["model"])
    assert body == _with_stream(recorded)
    assert fidelity.dropped == [] and fidelity.approximated == []
    if label == "Thinking":
        assert body["think"] == "low"  # gpt-oss takes a level


# --------------------------------------------------------------------------------------------------
# the recorded requests: pydantic-ai against Ollama's OpenAI-compatible endpoint. The same conversation
# sent natively must carry every meaningful field (model, messages, reasoning, tools, format, stream).
# --------------------------------------------------------------------------------------------------


def _native_from_shim(recorded: JSONDict) -> JSONDict:
    messages = []
    for m in recorded["messages"]:
        message = {"role": m["role"], "content": m["content"]}
        if "reasoning" in m:
            message["thinking"] = m["reasoning"]
        messages.append(message)
    native: JSONDict = {"model": recorded["model"], "messages": messages}
    if recorded.get("tools"):
        native["tools"] = recorded["tools"]
    fmt = recorded.get("response_format")
    if fmt is not None:
        native["format"] = fmt["json_schema"]["schema"] if fmt["type"] == "json_schema" else "json"
    native["stream"] = recorded["stream"]
    return native


def _shim_canonical(recorded: JSONDict) -> CanonicalRequest:
    items: list[Item] = []
    for m in recorded["messages"]:
        if m["role"] == "assistant":
            if "reasoning" in m:
                items.append({"type": "reasoning", "summary": [],
                              "content": [{"type": "reasoning_text", "text": m["reasoning"]}]})
            items.append({"type": "message", "role": "assistant",
                          "content": [{"type": "output_text", "text": m["content"]}]})
        else:
            items.append({"type": "message", "role": m["role"],
                          "content": [{"type": "input_text", "text": m["content"]}]})
    tools = [FunctionTool(t["function"]["name"], t["function"]["description"], t["function"]["parameters"])
             for t in recorded.get("tools") or ()]
    fmt = recorded.get("response_format")
    text_format = TextFormat()
    if fmt is not None and fmt["type"] == "json_schema":
        text_format = TextFormat("json_schema", fmt["json_schema"]["name"], fmt["json_schema"]["schema"])
    elif fmt is not None:
        text_format = TextFormat("json_object")
    choice = recorded.get("tool_choice", "auto")
    return CanonicalRequest(model=recorded["model"], input=items, tools=tools, text_format=text_format,
                            tool_choice=ToolChoice(mode=choice, raw=choice), stream=recorded["stream"])


SHIM = sorted(p.name for p in WIRE.glob("*.request.json"))


@pytest.mark.parametrize("name", SHIM)
def test_recorded_shim_requests_carried_natively(name: str) -> None:
    recorded = orjson.loads((WIRE / name).read_bytes())
    body, fidelity = build(_shim_canonical(recorded), recorded["model"])
    assert body == _native_from_shim(recorded)
    assert fidelity.dropped == [] and fidelity.approximated == []


def test_recorded_shim_requests_all_found() -> None:
    assert len(SHIM) == 4


# --------------------------------------------------------------------------------------------------
# transport
# --------------------------------------------------------------------------------------------------


def test_url_headers_and_no_key_by_default() -> None:
    req = CanonicalRequest(model="llama3.2", input=[user("hi")], stream=True)
    up = ADAPTER.build_request(req, "llama3.2", SETTINGS, Fidelity())
    assert up.method == "POST" and up.url == "http://127.0.0.1:11434/api/chat"
    assert up.stream is True and up.stream_format == "ndjson"
    assert "authorization" not in up.headers
    assert up.headers["accept"] == "application/x-ndjson"
    assert orjson.loads(up.body)["stream"] is True

    keyed = ProviderSettings(name="ollama", kind="ollama", base_url="https://ollama.com/", api_key="k1",
                             headers={"x-extra": "1"})
    up = ADAPTER.build_request(CanonicalRequest(model="m", input=[user("hi")]), "gpt-oss:120b", keyed, Fidelity())
    assert up.url == "https://ollama.com/api/chat"
    assert up.headers["authorization"] == "Bearer k1" and up.headers["x-extra"] == "1"
    assert "accept" not in up.headers
    body = orjson.loads(up.body)
    assert body["stream"] is False and body["model"] == "gpt-oss:120b"


# --------------------------------------------------------------------------------------------------
# messages
# --------------------------------------------------------------------------------------------------


def test_instructions_system_and_developer() -> None:
    req = CanonicalRequest(model="m", instructions="Be brief.", input=[
        {"type": "message", "role": "developer", "content": [{"type": "input_text", "text": "dev"}]},
        {"type": "message", "role": "system", "content": "sys"},
        user("hi"),
    ])
    body, fidelity = build(req)
    assert body["messages"] == [
        {"role": "system", "content": "Be brief."},
        {"role": "system", "content": "dev"},
        {"role": "system", "content": "sys"},
        {"role": "user", "content": "hi"},
    ]
    assert fidelity.dropped == []


def test_images() -> None:
    req = CanonicalRequest(model="m", input=[{"type": "message", "role": "user", "content": [
        {"type": "input_text", "text": "look"},
        {"type": "input_image", "image_url": f"data:image/png;base64,{PNG}", "detail": "auto"},
        {"type": "input_image", "image_url": {"url": f"data:image/jpeg;base64,{PNG}"}, "detail": "high"},
        {"type": "input_image", "image_url": "https://example.com/cat.png"},
        {"type": "input_text", "text": "here"},
        {"type": "input_file", "file_data": "data:application/pdf;base64,AAAA"},
    ]}])
    body, fidelity = build(req)
    assert body["messages"] == [{"role": "user", "content": "look\nhere", "images": [PNG, PNG]}]
    assert fidelity.dropped == [
        "input[0].content[2].detail",
        "input[0].content[3] (image URL: Ollama only accepts inline base64 images)",
        "input[0].content[5] (input_file)",
    ]


@pytest.mark.parametrize("url", ["data:image/png,raw", "data:image/png;base64,@@@", "ftp://x/y.png"])
def test_bad_images_are_client_errors(url: str) -> None:
    req = CanonicalRequest(model="m", input=[{"type": "message", "role": "user", "content": [
        {"type": "input_image", "image_url": url}]}])
    with pytest.raises(GatewayError) as exc:
        build(req)
    assert exc.value.status == 400 and exc.value.param == "input[0].content[0].image_url"


def test_assistant_turn_merges_reasoning_text_and_calls() -> None:
    req = CanonicalRequest(model="m", input=[
        user("weather?"),
        {"type": "reasoning", "summary": [], "content": [{"type": "reasoning_text", "text": "I should look."}]},
        {"type": "message", "role": "assistant", "content": [{"type": "output_text", "text": "Checking."}]},
        {"type": "function_call", "call_id": "c1", "name": "get_weather", "arguments": '{"city":"Paris"}'},
        {"type": "function_call", "call_id": "c2", "name": "get_time", "arguments": ""},
        {"type": "function_call_output", "call_id": "c1", "output": "sunny"},
        {"type": "function_call_output", "call_id": "c2", "output": [{"type": "input_text", "text": "noon"}]},
    ])
    body, fidelity = build(req)
    assert body["messages"][1:] == [
        {"role": "assistant", "content": "Checking.", "thinking": "I should look.", "tool_calls": [
            {"function": {"name": "get_weather", "arguments": {"city": "Paris"}}},
            {"function": {"name": "get_time", "arguments": {}}},
        ]},
        {"role": "tool", "content": "sunny", "tool_name": "get_weather"},
        {"role": "tool", "content": "noon", "tool_name": "get_time"},
    ]
    assert fidelity.dropped == []


def test_reasoning_after_a_finished_assistant_message_starts_a_new_one() -> None:
    req = CanonicalRequest(model="m", input=[
        user("a"),
        {"type": "message", "role": "assistant", "content": [{"type": "output_text", "text": "one"}]},
        {"type": "reasoning", "summary": [{"type": "summary_text", "text": "s1"}, {"type": "summary_text",
                                                                                  "text": "s2"}]},
        {"type": "function_call", "call_id": "c", "name": "f", "arguments": "{}"},
        {"type": "function_call_output", "call_id": "c", "output": {"ok": True}},
    ])
    body, _ = build(req)
    assert body["messages"][1:] == [
        {"role": "assistant", "content": "one"},
        {"role": "assistant", "content": "", "thinking": "s1\n\ns2",
         "tool_calls": [{"function": {"name": "f", "arguments": {}}}]},
        {"role": "tool", "content": '{"ok":true}', "tool_name": "f"},
    ]


@pytest.mark.parametrize(("encrypted", "reason"), [
    (reasoning_state.wrap("anthropic", {"signature": "sig"}), "state from anthropic"),
    ("gAAAAB-openai-blob", "state from openai"),
    ("tw1.gemini.!!!", "corrupt state"),
])
def test_foreign_reasoning_state_dropped_text_kept(encrypted: str, reason: str) -> None:
    req = CanonicalRequest(model="m", input=[
        user("q"),
        {"type": "reasoning", "summary": [], "content": [{"type": "reasoning_text", "text": "hmm"}],
         "encrypted_content": encrypted},
        {"type": "message", "role": "assistant", "content": [{"type": "output_text", "text": "A"}]},
        {"type": "reasoning", "summary": [], "encrypted_content": encrypted},  # opaque only: nothing to send
        user("more"),
    ])
    body, fidelity = build(req)
    assert body["messages"] == [
        {"role": "user", "content": "q"},
        {"role": "assistant", "content": "A", "thinking": "hmm"},
        {"role": "user", "content": "more"},
    ]
    assert fidelity.dropped == [f"input[1].reasoning.encrypted_content ({reason})",
                                f"input[3].reasoning.encrypted_content ({reason})"]


@pytest.mark.parametrize("arguments", ["[1]", "nope", '"s"'])
def test_invalid_function_call_arguments(arguments: str) -> None:
    req = CanonicalRequest(model="m", input=[
        user("x"), {"type": "function_call", "call_id": "c", "name": "f", "arguments": arguments}])
    with pytest.raises(GatewayError) as exc:
        build(req)
    assert exc.value.status == 400 and exc.value.param == "input[1].arguments"


def test_unknown_role_and_empty_input() -> None:
    with pytest.raises(GatewayError) as exc:
        build(CanonicalRequest(model="m", input=[{"type": "message", "role": "robot", "content": "x"}]))
    assert exc.value.param == "input[0].role"
    with pytest.raises(GatewayError) as exc:
        build(CanonicalRequest(model="m", input=[]))
    assert exc.value.param == "input"
    _, fidelity = build(CanonicalRequest(model="m", input=[user("x"), {"type": "item_reference", "id": "r"}]))
    assert fidelity.dropped == ["input[1] (item_reference)"]


@given(st.dictionaries(st.text(min_size=1, max_size=8), st.one_of(
    st.integers(-(2**63), 2**63 - 1), st.text(max_size=10), st.booleans(), st.none(),
    st.lists(st.integers(0, 99), max_size=3)),
    max_size=5))
def test_arguments_always_go_as_objects(args: JSONDict) -> None:
    req = CanonicalRequest(model="m", input=[
        user("x"), {"type": "function_call", "call_id": "c", "name": "f", "arguments": orjson.dumps(args).decode()}])
    body, _ = build(req)
    assert body["messages"][1]["tool_calls"][0]["function"]["arguments"] == args


# --------------------------------------------------------------------------------------------------
# tools and tool_choice
# --------------------------------------------------------------------------------------------------

TOOLS = [FunctionTool("get_weather", "Weather", {"type": "object", "properties": {"city": {"type": "string"}}}),
         FunctionTool("get_time")]


def _tools_req(choice: ToolChoice, **kw: Any) -> CanonicalRequest:
    return CanonicalRequest(model="m", input=[user("x")], tools=TOOLS, tool_choice=choice, **kw)


def test_tool_choice_auto_sends_every_tool() -> None:
    body, fidelity = build(_tools_req(ToolChoice()))
    assert body["tools"] == [
        {"type": "function", "function": {"name": "get_weather", "description": "Weather",
                                          "parameters": TOOLS[0].parameters}},
        {"type": "function", "function": {"name": "get_time", "parameters": {"type": "object", "properties": {}}}},
    ]
    assert body["messages"] == [{"role": "user", "content": "x"}]
    assert fidelity.approximated == [] and fidelity.dropped == []


def test_tool_choice_none_sends_no_tools() -> None:
    body, fidelity = build(_tools_req(ToolChoice(mode="none", raw="none")))
    assert "tools" not in body and fidelity.approximated == []


def test_tool_choice_required_is_an_instruction() -> None:
    body, fidelity = build(_tools_req(ToolChoice(mode="required", raw="required"), instructions="Hi."))
    assert len(body["tools"]) == 2
    assert body["messages"][0]["role"] == "system"
    assert body["messages"][0]["content"].startswith("Hi.\n\nYou must respond by calling one or more of these tools:")
    assert "'get_weather', 'get_time'" in body["messages"][0]["content"]
    assert fidelity.approximated == ["tool_choice"]


def test_named_tool_sends_only_it() -> None:
    choice = ToolChoice(mode="required", allowed=["get_time"], raw={"type": "function", "name": "get_time"})
    body, fidelity = build(_tools_req(choice))
    assert [t["function"]["name"] for t in body["tools"]] == ["get_time"]
    assert body["messages"][0] == {"role": "system", "content": "You must respond by calling the tool "
                                                                "'get_time'; do not answer with text only."}
    assert fidelity.approximated == ["tool_choice"]


def test_allowed_tools_subset_is_exact() -> None:
    body, fidelity = build(_tools_req(ToolChoice(mode="auto", allowed=["get_weather"])))
    assert [t["function"]["name"] for t in body["tools"]] == ["get_weather"]
    assert fidelity.approximated == [] and len(body["messages"]) == 1
    with pytest.raises(GatewayError) as exc:
        build(_tools_req(ToolChoice(mode="auto", allowed=["nope"])))
    assert exc.value.param == "tool_choice"


def test_strict_and_parallel_false_are_dropped() -> None:
    req = CanonicalRequest(model="m", input=[user("x")], tools=[FunctionTool("f", strict=True)],
                           parallel_tool_calls=False)
    _, fidelity = build(req)
    assert fidelity.dropped == ["tools.strict", "parallel_tool_calls"]
    _, fidelity = build(CanonicalRequest(model="m", input=[user("x")], parallel_tool_calls=False))
    assert fidelity.dropped == []  # no tools: nothing to run in parallel


# --------------------------------------------------------------------------------------------------
# think, format, options
# --------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(("model", "effort", "think", "approximated"), [
    ("qwen3", None, None, False),
    ("qwen3", "none", False, False),
    ("qwen3", "low", True, True),
    ("qwen3:8b", "high", True, True),
    ("gpt-oss:20b", "low", "low", False),
    ("gpt-oss", "medium", "medium", False),
    ("gpt-oss:120b", "high", "high", False),
    ("gpt-oss:20b", "minimal", "low", True),
    ("gpt-oss:20b", "xhigh", "high", True),
    ("gpt-oss:20b", "none", "low", True),
])
def test_reasoning_effort_to_think(model: str, effort: str | None, think: Any, approximated: bool) -> None:
    body, fidelity = build(CanonicalRequest(model="x", input=[user("x")], reasoning_effort=effort), model)
    assert body.get("think", None) == think and ("think" in body) == (think is not None)
    assert fidelity.approximated == (["reasoning.effort"] if approximated else [])


def test_client_think_value_wins_and_extras_are_mapped() -> None:
    req = CanonicalRequest(model="x", input=[user("x")], reasoning_effort="high",
                           extra={"think": "max", "top_k": 40, "min_p": 0.05, "num_ctx": 8192, "repeat_penalty": 1.1,
                                  "keep_alive": "10m", "logit_bias": {"1": 2}, "top_k_bad": 1})
    body, fidelity = build(req, "qwen3")
    assert body["think"] == "max"
    assert body["keep_alive"] == "10m"
    assert body["options"] == {"top_k": 40, "min_p": 0.05, "num_ctx": 8192, "repeat_penalty": 1.1}
    assert fidelity.dropped == ["logit_bias", "top_k_bad"]
    assert fidelity.approximated == []
    body, fidelity = build(CanonicalRequest(model="x", input=[user("x")], extra={"top_k": "many", "think": 3}))
    assert "options" not in body and "think" not in body
    assert fidelity.dropped == ["top_k", "think"]


def test_formats() -> None:
    schema = {"type": "object", "properties": {"a": {"type": "integer"}}}
    body, fidelity = build(CanonicalRequest(model="m", input=[user("x")],
                                            text_format=TextFormat("json_schema", "n", schema, True, "d")))
    assert body["format"] == schema and fidelity.dropped == [] and fidelity.approximated == []
    body, _ = build(CanonicalRequest(model="m", input=[user("x")], text_format=TextFormat("json_object")))
    assert body["format"] == "json"
    body, _ = build(CanonicalRequest(model="m", input=[user("x")]))
    assert "format" not in body and "options" not in body and "tools" not in body


def test_options_and_dropped_fields() -> None:
    req = CanonicalRequest(
        model="m", input=[user("x")], max_output_tokens=64, temperature=0.2, top_p=0.9, seed=7, stop=["END"],
        presence_penalty=0.5, frequency_penalty=-0.5, reasoning_summary="auto", top_logprobs=3,
        include=["reasoning.encrypted_content", "message.output_text.logprobs"], service_tier="flex",
        prompt_cache_key="k", truncation="auto", max_tool_calls=2, user="u1", metadata={"a": "b"},
    )
    body, fidelity = build(req)
    assert body["options"] == {"num_predict": 64, "temperature": 0.2, "top_p": 0.9, "seed": 7, "stop": ["END"],
                               "presence_penalty": 0.5, "frequency_penalty": -0.5}
    assert fidelity.dropped == ["reasoning.summary", "top_logprobs", "include[1] (message.output_text.logprobs)",
                                "service_tier", "prompt_cache_key", "truncation", "max_tool_calls", "user"]
    assert list(body) == ["model", "messages", "options", "stream"]

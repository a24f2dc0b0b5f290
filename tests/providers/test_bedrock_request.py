"""Tests for the Bedrock Converse request mapping (tollway.providers.bedrock_request): every recorded request in
../shared/specs/providers/bedrock/wire is reproduced from an equivalent CanonicalRequest, and every body the
adapter builds is checked against botocore's own Converse input shape."""

from __future__ import annotations

import base64
import copy
from pathlib import Path
from typing import Any
from urllib.parse import unquote

import botocore.session
import orjson
import pytest
from botocore.validate import ParamValidator

from tollway.core import reasoning_state
from tollway.core.errors import GatewayError
from tollway.core.types import CanonicalRequest, Fidelity, FunctionTool, Item, TextFormat, ToolChoice
from tollway.providers.anthropic_request import THINKING_BUDGETS
from tollway.providers.base import ProviderSettings
from tollway.providers.bedrock import BedrockAdapter
from tollway.providers.bedrock_request import (
    NO_TOOLS_INSTRUCTION,
    base_model_id,
    build_body,
    claude_version,
    native_structured_output,
    prompt_caching,
    tool_use_id,
)

ROOT = Path(__file__).resolve().parents[2]
BEDROCK = ROOT / ".." / "shared" / "specs" / "providers" / "bedrock"
WIRE = BEDROCK / "wire"
INDEX: list[dict[str, Any]] = orjson.loads((WIRE / "INDEX.json").read_bytes())
NOVA = "us.amazon.nova-micro-v1:0"
CLAUDE = "us.anthropic.claude-sonnet-4-5-20250929-v1:0"
CLAUDE_4 = "us.anthropic.claude-sonnet-4-20250514-v1:0"
PNG = "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mP8z8BQDwAEhQGAhKmMIQAAAABJRU5ErkJggg=="
SETTINGS = ProviderSettings(
    name="bedrock",
    kind="bedrock",
    base_url="https://bedrock-runtime.us-east-1.amazonaws.com",
    api_key="AKID",
    options={"aws_secret_access_key": "secret", "region": "us-east-1"},
)
_SERVICE = botocore.session.get_session().get_service_model("bedrock-runtime")
JSONDict = dict[str, Any]


# --------------------------------------------------------------------------------------------------
# helpers
# --------------------------------------------------------------------------------------------------


def converse_errors(body: JSONDict, model: str) -> str:
    """botocore's validation report of ``body`` against the ConverseRequest shape ('' when valid)."""
    report = ParamValidator().validate({"modelId": model, **body}, _SERVICE.operation_model("Converse").input_shape)
    return str(report.generate_report())


def body_of(req: CanonicalRequest, model: str = NOVA, fidelity: Fidelity | None = None) -> JSONDict:
    body = build_body(req, model, fidelity if fidelity is not None else Fidelity())
    assert converse_errors(body, model) == ""
    return body


def user(text: str) -> Item:
    return {"type": "message", "role": "user", "content": [{"type": "input_text", "text": text}]}


def request(*items: Item, **kwargs: Any) -> CanonicalRequest:
    return CanonicalRequest(model="m", input=list(items), **kwargs)


WEATHER = FunctionTool(
    "get_weather", "Weather for a city", {"type": "object", "properties": {"city": {"type": "string"}}}
)
TIME = FunctionTool("get_time", None, {"type": "object", "properties": {}})


# --------------------------------------------------------------------------------------------------
# recorded requests: a recorded Converse body -> the equivalent canonical request -> the same body
# --------------------------------------------------------------------------------------------------

_BUDGET_EFFORT = {budget: effort for effort, budget in THINKING_BUDGETS.items()}
_DOC_MEDIA = {"txt": "text/plain", "pdf": "application/pdf", "md": "text/markdown", "csv": "text/csv"}
_IMAGE_MEDIA = {"png": "image/png", "jpeg": "image/jpeg", "gif": "image/gif", "webp": "image/webp"}


def _part(block: JSONDict, role: str) -> JSONDict | None:
    if "text" in block:
        return {"type": "input_text" if role == "user" else "output_text", "text": block["text"]}
    if "document" in block:
        doc = block["document"]
        url = f"data:{_DOC_MEDIA[doc['format']]};base64,{doc['source']['bytes']}"
        return {"type": "input_file", "filename": f"{doc['name']}.{doc['format']}", "file_data": url}
    if "image" in block:
        image = block["image"]
        url = f"data:{_IMAGE_MEDIA[image['format']]};base64,{image['source']['bytes']}"
        return {"type": "input_image", "image_url": url, "detail": "auto"}
    assert "cachePoint" in block, block
    return None


def _item(block: JSONDict) -> Item:
    if "toolUse" in block:
        use = block["toolUse"]
        return {
            "type": "function_call",
            "call_id": use["toolUseId"],
            "name": use["name"],
            "arguments": orjson.dumps(use["input"]).decode(),
        }
    if "toolResult" in block:
        result = block["toolResult"]
        return {
            "type": "function_call_output",
            "call_id": result["toolUseId"],
            "output": "".join(c["text"] for c in result["content"]),
        }
    text = block["reasoningContent"]["reasoningText"]
    return {
        "type": "reasoning",
        "summary": [],
        "content": [{"type": "reasoning_text", "text": text["text"]}],
        "encrypted_content": reasoning_state.wrap("bedrock", {"signature": text["signature"]}),
    }


def canonical_input(recorded: JSONDict) -> list[Item]:
    items: list[Item] = []
    for message in recorded["messages"]:
        role = message["role"]
        parts: list[JSONDict] = []
        for block in message["content"]:
            if {"toolUse", "toolResult", "reasoningContent"} & set(block):
                if parts:
                    items.append({"type": "message", "role": role, "content": parts})
                    parts = []
                items.append(_item(block))
            else:
                part = _part(block, role)
                if part is not None:
                    parts.append(part)
        if parts:
            items.append({"type": "message", "role": role, "content": parts})
    return items


def canonical_request(recorded: JSONDict) -> CanonicalRequest:
    system = [b["text"] for b in recorded.get("system", []) if "text" in b]
    inference = recorded.get("inferenceConfig", {})
    req = CanonicalRequest(
        model="m",
        input=[*({"type": "message", "role": "system", "content": t} for t in system[1:]), *canonical_input(recorded)],
        instructions=system[0] if system else None,
        max_output_tokens=inference.get("maxTokens"),
        temperature=inference.get("temperature"),
        top_p=inference.get("topP"),
        stop=inference.get("stopSequences"),
    )
    blocks = [b for m in recorded["messages"] for b in m["content"]] + recorded.get("system", [])
    config = recorded.get("toolConfig")
    if config:
        blocks += config["tools"]
        req.tools = [
            FunctionTool(
                t["toolSpec"]["name"],
                t["toolSpec"].get("description"),
                t["toolSpec"]["inputSchema"]["json"],
                t["toolSpec"].get("strict"),
            )
            for t in config["tools"]
            if "toolSpec" in t
        ]
        choice = config.get("toolChoice", {"auto": {}})
        if "any" in choice:
            req.tool_choice = ToolChoice("required", None, "required")
        elif "tool" in choice:
            name = choice["tool"]["name"]
            req.tool_choice = ToolChoice("required", [name], {"type": "function", "name": name})
    if any("cachePoint" in b for b in blocks):
        req.prompt_cache_key = "conversation-1"
    thinking = recorded.get("additionalModelRequestFields", {}).get("thinking")
    if thinking:
        req.reasoning_effort = _BUDGET_EFFORT[thinking["budget_tokens"]]
    return req


def normalised(recorded: JSONDict) -> JSONDict:
    """What tollway sends for ``recorded``, given what a canonical request cannot express (each documented):

    * empty ``system`` / ``inferenceConfig`` and ``toolChoice: {"auto": {}}`` are Converse's defaults: not sent;
    * ``toolResult.status``: the canonical function_call_output has no error flag; Converse's default is used;
    * ``guardrailConfig``: tollway has no guardrail setting;
    * cache points inside messages: canonical input cannot mark where they go; for a cache-minded request
      tollway places them after the system prompt, after the tools and at the end of the conversation."""
    body = copy.deepcopy(recorded)
    caching = "cachePoint" in orjson.dumps(recorded).decode()
    for key in ("system", "inferenceConfig", "guardrailConfig"):
        if not body.get(key) or key == "guardrailConfig":
            body.pop(key, None)
    config = body.get("toolConfig")
    if config is not None and config.get("toolChoice") == {"auto": {}}:
        del config["toolChoice"]
    for message in body["messages"]:
        content = message["content"]
        message["content"] = [b for b in content if "cachePoint" not in b]
        for block in message["content"]:
            if "toolResult" in block:
                block["toolResult"].pop("status", None)
    if caching:
        body["messages"][-1]["content"].append({"cachePoint": {"type": "default"}})
    return body


def recorded_requests() -> list[Any]:
    out = []
    for entry in INDEX:
        name = entry["file_base"].removeprefix("wire/")
        model = unquote(entry["uri"].split("/model/", 1)[1].rsplit("/", 1)[0])
        out.append(pytest.param(name, model, id=name))
    return out


@pytest.mark.parametrize(("name", "model"), recorded_requests())
def test_recorded_request_is_reproduced(name: str, model: str) -> None:
    recorded = orjson.loads((WIRE / f"{name}.request.json").read_bytes())
    fidelity = Fidelity()
    body = body_of(canonical_request(recorded), model, fidelity)
    assert body == normalised(recorded)
    assert fidelity.dropped == []


def test_recorded_requests_cover_the_interesting_shapes() -> None:
    blocks = {
        k
        for e in INDEX
        for m in orjson.loads((WIRE / f"{e['file_base'][5:]}.request.json").read_bytes())["messages"]
        for b in m["content"]
        for k in b
    }
    assert {"text", "toolUse", "toolResult", "reasoningContent", "document", "cachePoint"} <= blocks


def test_thinking_round_trip_reproduces_the_recorded_follow_up() -> None:
    """The reasoning item parsed from the recorded answer goes back with its text and signature intact."""
    adapter = BedrockAdapter()
    first = adapter.parse_response((WIRE / "test_bedrock_model_thinking_part_anthropic.00.response.json").read_bytes())
    follow = orjson.loads((WIRE / "test_bedrock_model_thinking_part_anthropic.01.request.json").read_bytes())
    question = follow["messages"][2]["content"][0]["text"]
    req = request(user("How do I cross the street?"), *first.output, user(question), reasoning_effort="minimal")
    assert body_of(req, CLAUDE_4) == normalised(follow)


def test_tool_loop_round_trip_reproduces_the_recorded_follow_up() -> None:
    adapter = BedrockAdapter()
    first = adapter.parse_response((WIRE / "test_tool_choice_matrix[auto-bedrock].00.response.json").read_bytes())
    follow = orjson.loads((WIRE / "test_tool_choice_matrix[auto-bedrock].01.request.json").read_bytes())
    call = first.output[0]
    tool = follow["toolConfig"]["tools"][0]["toolSpec"]
    req = request(
        user("What's the weather in Paris?"),
        call,
        {"type": "function_call_output", "call_id": call["call_id"], "output": "Sunny, 22C in Paris"},
        tools=[FunctionTool(tool["name"], tool["description"], tool["inputSchema"]["json"])],
    )
    assert body_of(req, CLAUDE) == normalised(follow)


# --------------------------------------------------------------------------------------------------
# model families
# --------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("model", "base"),
    [
        ("us.amazon.nova-micro-v1:0", "amazon.nova-micro-v1:0"),
        ("amazon.nova-micro-v1:0", "amazon.nova-micro-v1:0"),
        ("global.anthropic.claude-opus-4-5-20251101-v1:0", "anthropic.claude-opus-4-5-20251101-v1:0"),
        (
            "arn:aws:bedrock:us-east-1:123456789012:inference-profile/eu.anthropic.claude-3-7-sonnet-20250219-v1:0",
            "anthropic.claude-3-7-sonnet-20250219-v1:0",
        ),
        ("meta.llama3-1-8b-instruct-v1:0", "meta.llama3-1-8b-instruct-v1:0"),
    ],
)
def test_base_model_id(model: str, base: str) -> None:
    assert base_model_id(model) == base


@pytest.mark.parametrize(
    ("base", "version", "native", "caching"),
    [
        ("anthropic.claude-3-5-sonnet-20240620-v1:0", (3, 5), False, True),
        ("anthropic.claude-3-haiku-20240307-v1:0", (3, 0), False, False),
        ("anthropic.claude-sonnet-4-20250514-v1:0", (4, 0), False, True),
        ("anthropic.claude-opus-4-1-20250805-v1:0", (4, 1), False, True),
        ("anthropic.claude-sonnet-4-5-20250929-v1:0", (4, 5), True, True),
        ("anthropic.claude-opus-4-6-v1", (4, 6), True, True),
        ("anthropic.claude-sonnet-5", (5, 0), True, True),
        ("anthropic.claude-instant-v1", None, False, False),
        ("amazon.nova-micro-v1:0", None, False, True),
        ("openai.gpt-oss-120b-1:0", None, True, False),
        ("meta.llama3-1-8b-instruct-v1:0", None, False, False),
    ],
)
def test_model_capabilities(base: str, version: tuple[int, int] | None, native: bool, caching: bool) -> None:
    assert claude_version(base) == version
    assert native_structured_output(base) is native
    assert prompt_caching(base) is caching


# --------------------------------------------------------------------------------------------------
# input mapping
# --------------------------------------------------------------------------------------------------


def test_system_developer_and_instructions_in_order_and_turns_merged() -> None:
    body = body_of(
        request(
            {"type": "message", "role": "system", "content": "sys"},
            user("a"),
            {"type": "message", "role": "developer", "content": [{"type": "input_text", "text": "dev"}]},
            user("b"),
            {"type": "message", "role": "assistant", "content": [{"type": "output_text", "text": ""}]},
            instructions="inst",
        )
    )
    assert body["system"] == [{"text": "inst"}, {"text": "sys"}, {"text": "dev"}]
    assert body["messages"] == [{"role": "user", "content": [{"text": "a"}, {"text": "b"}]}]


def test_images_inline_only() -> None:
    fidelity = Fidelity()
    body = body_of(
        request(
            {
                "type": "message",
                "role": "user",
                "content": [
                    {"type": "input_text", "text": "look"},
                    {"type": "input_image", "image_url": f"data:image/png;base64,{PNG}", "detail": "high"},
                    {"type": "input_image", "image_url": "https://example.com/cat.jpg"},
                ],
            }
        ),
        fidelity=fidelity,
    )
    assert body["messages"][0]["content"] == [{"text": "look"}, {"image": {"format": "png", "source": {"bytes": PNG}}}]
    assert fidelity.dropped == [
        "input[0].content[1].detail",
        "input[0].content[2] (image URL: Bedrock takes inline images only)",
    ]


def test_unsupported_image_type_is_a_400() -> None:
    with pytest.raises(GatewayError) as err:
        body_of(
            request(
                {
                    "type": "message",
                    "role": "user",
                    "content": [{"type": "input_image", "image_url": "data:image/bmp;base64,Qk0="}],
                }
            )
        )
    assert err.value.status == 400 and err.value.param == "input[0].content[0].image_url"


def test_documents() -> None:
    pdf = base64.b64encode(b"%PDF-1.4").decode()
    fidelity = Fidelity()
    body = body_of(
        request(
            {
                "type": "message",
                "role": "user",
                "content": [
                    {
                        "type": "input_file",
                        "filename": "report_2024 (final).pdf",
                        "file_data": f"data:application/pdf;base64,{pdf}",
                    },
                    {"type": "input_file", "file_url": "https://example.com/x.pdf"},
                    {"type": "input_text", "text": "summarise"},
                ],
            }
        ),
        fidelity=fidelity,
    )
    assert body["messages"][0]["content"][0] == {
        "document": {"format": "pdf", "name": "report 2024 (final)", "source": {"bytes": pdf}}
    }
    assert fidelity.dropped == ["input[0].content[1] (input_file)"]


def test_tool_calls_and_results_with_foreign_ids() -> None:
    long_id = "call_" + "x" * 80
    body = body_of(
        request(
            user("go"),
            {"type": "function_call", "call_id": "call/1 a", "name": "get_weather", "arguments": '{"city":"Paris"}'},
            {"type": "function_call", "call_id": long_id, "name": "get_time", "arguments": ""},
            {"type": "function_call_output", "call_id": "call/1 a", "output": "sunny"},
            {"type": "function_call_output", "call_id": long_id, "output": ""},
            tools=[WEATHER, TIME],
        )
    )
    assistant, results = body["messages"][1], body["messages"][2]
    fitted = tool_use_id(long_id, "x")
    assert len(fitted) <= 64 and fitted == tool_use_id(long_id, "y")
    assert assistant == {
        "role": "assistant",
        "content": [
            {"toolUse": {"toolUseId": "call_1_a", "name": "get_weather", "input": {"city": "Paris"}}},
            {"toolUse": {"toolUseId": fitted, "name": "get_time", "input": {}}},
        ],
    }
    assert results == {
        "role": "user",
        "content": [
            {"toolResult": {"toolUseId": "call_1_a", "content": [{"text": "sunny"}]}},
            {"toolResult": {"toolUseId": fitted, "content": []}},
        ],
    }


def test_bad_arguments_are_a_400() -> None:
    with pytest.raises(GatewayError) as err:
        body_of(
            request(
                user("x"), {"type": "function_call", "call_id": "c", "name": "f", "arguments": "[1]"}, tools=[WEATHER]
            )
        )
    assert err.value.param == "input[1].arguments"


def test_reasoning_items_bedrock_state_kept_foreign_dropped() -> None:
    fidelity = Fidelity()
    body = body_of(
        request(
            user("q"),
            {
                "type": "reasoning",
                "summary": [],
                "content": [{"type": "reasoning_text", "text": "hmm"}],
                "encrypted_content": reasoning_state.wrap("bedrock", {"signature": "sig"}),
            },
            {
                "type": "reasoning",
                "summary": [],
                "content": [],
                "encrypted_content": reasoning_state.wrap("bedrock", {"redacted": "cmVkYWN0ZWQ="}),
            },
            {
                "type": "reasoning",
                "summary": [],
                "encrypted_content": reasoning_state.wrap("anthropic", {"signature": "s"}),
            },
            {"type": "reasoning", "summary": [{"type": "summary_text", "text": "plain"}]},
            {"type": "reasoning", "summary": [], "encrypted_content": "tw1.bedrock.!!!"},
            {"type": "message", "role": "assistant", "content": [{"type": "output_text", "text": "answer"}]},
            user("more"),
        ),
        CLAUDE,
        fidelity,
    )
    assert body["messages"][1]["content"] == [
        {"reasoningContent": {"reasoningText": {"text": "hmm", "signature": "sig"}}},
        {"reasoningContent": {"redactedContent": "cmVkYWN0ZWQ="}},
        {"text": "answer"},
    ]
    assert fidelity.dropped == [
        "input[3].reasoning (state from anthropic)",
        "input[4].reasoning (no provider state)",
        "input[5].reasoning (corrupt state)",
    ]


# --------------------------------------------------------------------------------------------------
# tools and tool choice
# --------------------------------------------------------------------------------------------------


def test_tools_auto_is_the_default_and_not_sent() -> None:
    body = body_of(request(user("x"), tools=[WEATHER, TIME]))
    assert body["toolConfig"] == {
        "tools": [
            {
                "toolSpec": {
                    "name": "get_weather",
                    "description": "Weather for a city",
                    "inputSchema": {"json": WEATHER.parameters},
                }
            },
            {"toolSpec": {"name": "get_time", "inputSchema": {"json": {"type": "object", "properties": {}}}}},
        ]
    }


def test_required_is_any_and_single_allowed_is_tool_with_every_tool_sent() -> None:
    body = body_of(request(user("x"), tools=[WEATHER, TIME], tool_choice=ToolChoice("required")))
    assert body["toolConfig"]["toolChoice"] == {"any": {}}
    body = body_of(request(user("x"), tools=[WEATHER, TIME], tool_choice=ToolChoice("required", ["get_time"])))
    assert body["toolConfig"]["toolChoice"] == {"tool": {"name": "get_time"}}
    assert len(body["toolConfig"]["tools"]) == 2


def test_allowed_subset_is_enforced_by_the_tool_list() -> None:
    body = body_of(request(user("x"), tools=[WEATHER, TIME], tool_choice=ToolChoice("auto", ["get_time"])))
    assert [t["toolSpec"]["name"] for t in body["toolConfig"]["tools"]] == ["get_time"]
    with pytest.raises(GatewayError):
        body_of(request(user("x"), tools=[WEATHER], tool_choice=ToolChoice("auto", ["nope"])))


def test_tool_choice_none_without_history_omits_tools() -> None:
    fidelity = Fidelity()
    body = body_of(request(user("x"), tools=[WEATHER], tool_choice=ToolChoice("none", None, "none")), fidelity=fidelity)
    assert "toolConfig" not in body and fidelity.approximated == []


def test_tool_choice_none_with_history_keeps_tools_and_instructs() -> None:
    fidelity = Fidelity()
    body = body_of(
        request(
            user("x"),
            {"type": "function_call", "call_id": "c1", "name": "get_weather", "arguments": "{}"},
            {"type": "function_call_output", "call_id": "c1", "output": "ok"},
            tools=[WEATHER],
            tool_choice=ToolChoice("none", None, "none"),
        ),
        fidelity=fidelity,
    )
    assert body["toolConfig"]["tools"][0]["toolSpec"]["name"] == "get_weather"
    assert "toolChoice" not in body["toolConfig"]
    assert body["system"][-1] == {"text": NO_TOOLS_INSTRUCTION}
    assert fidelity.approximated == ["tool_choice"]


def test_tool_history_without_tools_gets_minimal_specs() -> None:
    fidelity = Fidelity()
    body = body_of(
        request(
            user("x"),
            {"type": "function_call", "call_id": "c1", "name": "lookup", "arguments": "{}"},
            {"type": "function_call_output", "call_id": "c1", "output": "ok"},
        ),
        fidelity=fidelity,
    )
    spec = {"name": "lookup", "inputSchema": {"json": {"type": "object"}}}
    assert body["toolConfig"] == {"tools": [{"toolSpec": spec}]}
    assert fidelity.approximated == ["tools"]


def test_strict_tools_native_or_dropped_and_parallel_switch_dropped() -> None:
    strict = FunctionTool("get_weather", None, {"type": "object"}, strict=True)
    body = body_of(request(user("x"), tools=[strict]), CLAUDE)
    assert body["toolConfig"]["tools"][0]["toolSpec"]["strict"] is True
    fidelity = Fidelity()
    body = body_of(request(user("x"), tools=[strict], parallel_tool_calls=False), NOVA, fidelity)
    assert "strict" not in body["toolConfig"]["tools"][0]["toolSpec"]
    assert fidelity.dropped == ["tools.strict", "parallel_tool_calls"]


# --------------------------------------------------------------------------------------------------
# reasoning
# --------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("effort", "budget", "max_tokens"),
    [("minimal", 1024, None), ("low", 2048, None), ("medium", 8192, 12288), ("high", 16384, 20480)],
)
def test_claude_thinking_budgets(effort: str, budget: int, max_tokens: int | None) -> None:
    fidelity = Fidelity()
    body = body_of(request(user("x"), reasoning_effort=effort), CLAUDE, fidelity)
    assert body["additionalModelRequestFields"] == {"thinking": {"type": "enabled", "budget_tokens": budget}}
    assert body.get("inferenceConfig", {}).get("maxTokens") == max_tokens
    assert fidelity.approximated == ["reasoning.effort"]


def test_claude_thinking_restrictions() -> None:
    fidelity = Fidelity()
    body = body_of(
        request(user("x"), reasoning_effort="high", max_output_tokens=3000, temperature=0.2, top_p=0.5),
        CLAUDE,
        fidelity,
    )
    assert body["additionalModelRequestFields"]["thinking"]["budget_tokens"] == 1500
    assert body["inferenceConfig"] == {"maxTokens": 3000}
    assert fidelity.dropped == ["temperature", "top_p"]
    forced = Fidelity()
    body = body_of(
        request(user("x"), tools=[WEATHER], tool_choice=ToolChoice("required"), reasoning_effort="low"), CLAUDE, forced
    )
    assert "additionalModelRequestFields" not in body and forced.dropped == ["reasoning.effort"]
    loop = Fidelity()
    body = body_of(
        request(
            user("x"),
            {"type": "function_call", "call_id": "c", "name": "get_weather", "arguments": "{}"},
            {"type": "function_call_output", "call_id": "c", "output": "ok"},
            tools=[WEATHER],
            reasoning_effort="low",
        ),
        CLAUDE,
        loop,
    )
    assert "additionalModelRequestFields" not in body and loop.dropped == ["reasoning.effort"]


@pytest.mark.parametrize(("effort", "level"), [("minimal", "low"), ("medium", "medium"), ("xhigh", "high")])
def test_nova2_reasoning_config(effort: str, level: str) -> None:
    fidelity = Fidelity()
    body = body_of(request(user("x"), reasoning_effort=effort), "us.amazon.nova-2-lite-v1:0", fidelity)
    assert body["additionalModelRequestFields"] == {"reasoningConfig": {"type": "enabled", "maxReasoningEffort": level}}
    assert fidelity.approximated == ["reasoning.effort"]


def test_reasoning_on_models_without_a_switch_is_dropped() -> None:
    for effort in ("low", "none"):
        fidelity = Fidelity()
        body = body_of(request(user("x"), reasoning_effort=effort), NOVA, fidelity)
        assert "additionalModelRequestFields" not in body
        assert fidelity.dropped == (["reasoning.effort"] if effort == "low" else [])


# --------------------------------------------------------------------------------------------------
# structured output, sampling, caching, the rest
# --------------------------------------------------------------------------------------------------

SCHEMA = {"type": "object", "properties": {"echo": {"type": "string"}}, "required": ["echo"]}


def test_json_schema_native_on_supporting_models() -> None:
    fidelity = Fidelity()
    body = body_of(
        request(user("x"), text_format=TextFormat("json_schema", "echo", SCHEMA, True, "the echo")), CLAUDE, fidelity
    )
    assert body["outputConfig"] == {
        "textFormat": {
            "type": "json_schema",
            "structure": {
                "jsonSchema": {"schema": orjson.dumps(SCHEMA).decode(), "name": "echo", "description": "the echo"}
            },
        }
    }
    assert "system" not in body and fidelity.approximated == []


def test_json_schema_elsewhere_and_json_object_are_instructions() -> None:
    fidelity = Fidelity()
    body = body_of(request(user("x"), text_format=TextFormat("json_schema", "echo", SCHEMA)), NOVA, fidelity)
    assert "outputConfig" not in body
    assert "JSON schema named 'echo'" in body["system"][-1]["text"]
    assert orjson.dumps(SCHEMA).decode() in body["system"][-1]["text"]
    assert fidelity.approximated == ["text.format"]
    fidelity = Fidelity()
    body = body_of(request(user("x"), text_format=TextFormat("json_object")), CLAUDE, fidelity)
    assert "JSON object" in body["system"][-1]["text"] and fidelity.approximated == ["text.format"]


def test_sampling_and_unsupported_fields() -> None:
    fidelity = Fidelity()
    body = body_of(
        request(
            user("x"),
            max_output_tokens=50,
            temperature=1.5,
            top_p=0.9,
            stop=["END", ""],
            seed=7,
            presence_penalty=0.5,
            frequency_penalty=0.1,
            top_logprobs=2,
            max_tool_calls=3,
            service_tier="scale",
            user="user-42",
        ),
        fidelity=fidelity,
    )
    assert body["inferenceConfig"] == {"maxTokens": 50, "temperature": 1.0, "topP": 0.9, "stopSequences": ["END"]}
    assert body["requestMetadata"] == {"user": "user-42"}
    assert fidelity.approximated == ["temperature"]
    assert fidelity.dropped == [
        "seed",
        "presence_penalty",
        "frequency_penalty",
        "top_logprobs",
        "max_tool_calls",
        "service_tier",
    ]


def test_service_tier_and_odd_user() -> None:
    fidelity = Fidelity()
    body = body_of(request(user("x"), service_tier="priority", user="ünïcode!"), fidelity=fidelity)
    assert body["serviceTier"] == {"type": "priority"} and "requestMetadata" not in body
    assert fidelity.dropped == ["user"]


def test_prompt_cache_key_places_cache_points() -> None:
    fidelity = Fidelity()
    body = body_of(
        request(user("a"), user("b"), instructions="sys", tools=[WEATHER], prompt_cache_key="k"), CLAUDE, fidelity
    )
    point = {"cachePoint": {"type": "default"}}
    assert body["system"] == [{"text": "sys"}, point]
    assert body["toolConfig"]["tools"][-1] == point
    assert body["messages"][-1]["content"] == [{"text": "a"}, {"text": "b"}, point]
    assert fidelity.approximated == ["prompt_cache_key"]
    fidelity = Fidelity()
    body = body_of(request(user("a"), prompt_cache_key="k"), "meta.llama3-1-8b-instruct-v1:0", fidelity)
    assert fidelity.dropped == ["prompt_cache_key"] and "cachePoint" not in orjson.dumps(body).decode()


def test_empty_input_is_a_400() -> None:
    with pytest.raises(GatewayError) as err:
        body_of(request({"type": "message", "role": "system", "content": "only system"}))
    assert err.value.status == 400 and err.value.param == "input"

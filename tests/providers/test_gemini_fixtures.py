"""The Gemini adapter against every recorded real exchange in ../shared/specs/providers/gemini: pydantic-ai's
cassettes (``wire/``) and Google ADK's httprr traces (``adk-go/``).

Requests: each recorded request is rebuilt from the equivalent canonical request, replaying the conversation
as a client would (earlier model turns are the adapter's own parse of the recorded earlier responses), and
must equal the recorded body in every field that matters. What is normalised away (and why) is listed in
:func:`normalise`; fields the canonical request cannot express are named per case in ``NOT_EXPRESSIBLE``.

Responses and streams: each recorded body parses to concrete expected items, status and usage.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson
import pytest

from tollway.core.assembler import OutputAssembler
from tollway.core.types import (
    CanonicalRequest,
    CanonicalResponse,
    Delta,
    Fidelity,
    FunctionTool,
    Item,
    StreamError,
    TextFormat,
    ToolChoice,
)
from tollway.providers.base import ProviderSettings
from tollway.providers.gemini import GeminiAdapter

SHARED = Path(__file__).resolve().parents[2] / ".." / "shared" / "specs" / "providers" / "gemini"
WIRE = SHARED / "wire"
ADK = SHARED / "adk-go"
BASE = "https://generativelanguage.googleapis.com/v1beta"
ADAPTER = GeminiAdapter()
SETTINGS = ProviderSettings(name="gemini", kind="gemini", base_url=BASE, api_key="g-key")
JSONDict = dict[str, Any]


# --------------------------------------------------------------------------------------------------
# recorded exchanges
# --------------------------------------------------------------------------------------------------


@dataclass(slots=True)
class Exchange:
    name: str
    uri: str
    request: JSONDict
    response: bytes
    status: int = 200

    @property
    def stream(self) -> bool:
        return ":streamGenerateContent" in self.uri

    @property
    def model(self) -> str:
        return self.uri.split("/models/", 1)[1].split(":", 1)[0]


def wire_exchanges() -> dict[str, list[Exchange]]:
    """pydantic-ai interactions grouped by cassette, in order."""
    groups: dict[str, list[Exchange]] = {}
    for entry in orjson.loads((WIRE / "INDEX.json").read_bytes()):
        base = SHARED / entry["file_base"]
        response = next(p for p in (Path(f"{base}.response.json"), Path(f"{base}.response.sse")) if p.exists())
        groups.setdefault(entry["cassette"], []).append(
            Exchange(base.name, entry["uri"], orjson.loads(Path(str(base) + ".request.json").read_bytes()),
                     response.read_bytes(), entry["status"])
        )
    return groups


def adk_exchanges() -> dict[str, list[Exchange]]:
    """httprr traces: ``<reqlen> <resplen>`` + raw HTTP request + raw HTTP response per exchange."""
    groups: dict[str, list[Exchange]] = {}
    for path in sorted(ADK.rglob("*.httprr")):
        raw = path.read_bytes()
        assert raw.startswith(b"httprr trace v1\n")
        i = len(b"httprr trace v1\n")
        n = 0
        while i < len(raw):
            j = raw.index(b"\n", i)
            req_len, resp_len = map(int, raw[i:j].split())
            req, resp = raw[j + 1 : j + 1 + req_len], raw[j + 1 + req_len : j + 1 + req_len + resp_len]
            i = j + 1 + req_len + resp_len
            head, _, body = req.partition(b"\r\n\r\n")
            status_line, _, resp_body = resp.partition(b"\r\n\r\n")
            uri = head.split(b"\r\n", 1)[0].split(b" ")[1].decode()
            status = int(status_line.split(b" ", 2)[1])
            groups.setdefault(path.stem, []).append(
                Exchange(f"{path.stem}.{n}", uri, orjson.loads(body), resp_body, status)
            )
            n += 1
    return groups


WIRE_GROUPS = wire_exchanges()
ADK_GROUPS = adk_exchanges()
GEMINI_API = [(name, ex) for name, group in [*WIRE_GROUPS.items(), *ADK_GROUPS.items()] for ex in group
              if ex.uri.startswith(BASE)]


def sse_data(raw: bytes) -> list[bytes]:
    out = []
    for frame in raw.replace(b"\r\n", b"\n").split(b"\n\n"):
        if frame.strip():
            assert frame.startswith(b"data: "), frame[:80]
            out.append(frame[6:])
    return out


def stream_deltas(raw: bytes) -> list[Delta]:
    parser = ADAPTER.stream_parser(CanonicalRequest(model="m", input=[]))
    deltas: list[Delta] = []
    for data in sse_data(raw):
        deltas.extend(parser.feed(None, data))
    deltas.extend(parser.close())
    return deltas


def parse(ex: Exchange) -> CanonicalResponse:
    """The adapter's reading of a recorded answer (streams are assembled as the pipeline does)."""
    if not ex.stream:
        return ADAPTER.parse_response(ex.response)
    assembler = OutputAssembler()
    for delta in stream_deltas(ex.response):
        assert not isinstance(delta, StreamError), delta
        assembler.apply(delta)
    return assembler.result()


# --------------------------------------------------------------------------------------------------
# request replay: recorded request -> canonical request, as a client of tollway would send it
# --------------------------------------------------------------------------------------------------

_SNAKE = {"thinking_budget": "thinkingBudget", "include_thoughts": "includeThoughts",
          "parameters_json_schema": "parametersJsonSchema", "response_json_schema": "responseJsonSchema"}


def _camel(value: Any) -> Any:
    if isinstance(value, dict):
        return {_SNAKE.get(k, k): _camel(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_camel(v) for v in value]
    return value


def _json_schema(openapi: Any) -> Any:
    """Gemini's OpenAPI-subset schema (``"type": "STRING"``) as JSON Schema."""
    if isinstance(openapi, dict):
        return {k: (v.lower() if k == "type" and isinstance(v, str) else _json_schema(v)) for k, v in openapi.items()}
    if isinstance(openapi, list):
        return [_json_schema(v) for v in openapi]
    return openapi


def _tools(body: JSONDict) -> list[FunctionTool]:
    tools = []
    for tool in body.get("tools") or ():
        for decl in tool.get("functionDeclarations") or ():
            params = decl.get("parametersJsonSchema")
            if params is None and "parameters" in decl:
                params = _json_schema(decl["parameters"])
            tools.append(FunctionTool(decl["name"], decl.get("description"), params))
    return tools


def _tool_choice(body: JSONDict) -> ToolChoice:
    config = (body.get("toolConfig") or {}).get("functionCallingConfig") or {}
    mode = {"AUTO": "auto", "ANY": "required", "NONE": "none"}[config.get("mode", "AUTO")]
    allowed = config.get("allowedFunctionNames")
    return ToolChoice(mode=mode, allowed=allowed, raw=mode)  # type: ignore[arg-type]


def _output(response: Any) -> str:
    if isinstance(response, dict) and list(response) in (["return_value"], ["output"]):
        value = next(iter(response.values()))
        return value if isinstance(value, str) else orjson.dumps(value).decode()
    return orjson.dumps(response).decode()


def canonical(ex: Exchange, earlier: list[Exchange]) -> CanonicalRequest:
    body = _camel(ex.request)
    items: list[Item] = []
    model_turns = iter(earlier)
    calls: list[Item] = []  # function calls of the latest model turn, not answered yet
    for content in body["contents"]:
        if content.get("role") == "model":
            output = parse(next(model_turns)).output
            items.extend(output)
            calls = [it for it in output if it["type"] == "function_call"]
            continue
        texts = [{"type": "input_text", "text": p["text"]} for p in content["parts"] if "text" in p]
        if texts:
            items.append({"type": "message", "role": "user", "content": texts})
        for part in content["parts"]:
            response = part.get("functionResponse")
            if response is not None:
                call = next(c for c in calls if c["name"] == response["name"])
                calls.remove(call)
                items.append({"type": "function_call_output", "call_id": call["call_id"],
                              "output": _output(response["response"])})
    system = body.get("systemInstruction")
    config = body.get("generationConfig") or {}
    thinking = config.get("thinkingConfig") or {}
    fmt = TextFormat()
    if config.get("responseMimeType") == "application/json":
        schema = config.get("responseJsonSchema")
        fmt = TextFormat("json_schema", "out", schema) if schema is not None else TextFormat("json_object")
    return CanonicalRequest(
        model=ex.model,
        input=items,
        instructions="".join(p["text"] for p in system["parts"]) if system else None,
        tools=_tools(body),
        tool_choice=_tool_choice(body),
        text_format=fmt,
        reasoning_effort="none" if thinking.get("thinkingBudget") == 0 else None,
        reasoning_summary="auto" if thinking.get("includeThoughts") else None,
        max_output_tokens=config.get("maxOutputTokens"),
        temperature=config.get("temperature"),
        stream=ex.stream,
    )


# Recorded fields the canonical request cannot express: removed from the recorded side before comparing.
NOT_EXPRESSIBLE: dict[str, list[str]] = {
    "test_google_model_safety_settings.00": ["safetySettings"],  # no canonical safety settings
    "test_google_model_web_search_tool_stream.00": ["tools"],  # googleSearch: a built-in, not a function tool
    "test_google_model_web_search_tool_stream.01": ["tools"],
}


def _signature(value: str) -> str:
    """pydantic-ai re-encodes signatures as URL-safe base64; the API accepts both spellings."""
    return base64.b64decode(value.replace("-", "+").replace("_", "/") + "=" * (-len(value) % 4)).hex()


def normalise(body: Any) -> Any:
    """What does not matter: snake_case spelling of keys (the API accepts both), ``responseModalities: [TEXT]``
    (the default for these models), an empty ``generationConfig``, the ``role`` of ``systemInstruction``
    (ignored by the API), ``mode: AUTO`` (the default), the OpenAPI-subset spelling of a schema
    (``parameters``) versus ``parametersJsonSchema``, a function's response schema (not canonical), the
    key under which a tool's output is wrapped, call ids invented by the recording client (``pyd_ai_…``; the
    API never issued them), the base64 alphabet of signatures, and an empty ``text`` omitted by Go."""
    body = _camel(body)
    config = body.get("generationConfig") or {}
    config.pop("responseModalities", None)
    if not config:
        body.pop("generationConfig", None)
    if "systemInstruction" in body:
        body["systemInstruction"].pop("role", None)
    if body.get("toolConfig") == {"functionCallingConfig": {"mode": "AUTO"}}:
        del body["toolConfig"]
    for tool in body.get("tools") or ():
        for decl in tool.get("functionDeclarations") or ():
            if "parameters" in decl:
                decl["parametersJsonSchema"] = _json_schema(decl.pop("parameters"))
            decl.pop("responseJsonSchema", None)
    for content in body.get("contents") or ():
        for part in content["parts"]:
            for key in ("functionCall", "functionResponse"):
                if key in part and str(part[key].get("id", "")).startswith("pyd_ai_"):
                    del part[key]["id"]
            if "functionResponse" in part:
                part["functionResponse"]["response"] = _output(part["functionResponse"]["response"])
            if "thoughtSignature" in part:
                part["thoughtSignature"] = _signature(part["thoughtSignature"])
                if list(part) == ["thoughtSignature"]:  # Go's omitempty drops the empty text
                    part["text"] = ""
    return body


# A video input has no canonical form: see test_youtube_video_input_is_reported_not_faked.
VIDEO_INPUT = "test_google_model_mobile_youtube_video_url_input.00"


def replay_cases() -> Iterator[Any]:
    for group in [*WIRE_GROUPS.values(), *ADK_GROUPS.values()]:
        for k, ex in enumerate(group):
            if ex.uri.startswith(BASE) and ex.name != VIDEO_INPUT:
                yield pytest.param(ex, group[:k], id=ex.name)


@pytest.mark.parametrize(("ex", "earlier"), list(replay_cases()))
def test_recorded_request_is_reproduced(ex: Exchange, earlier: list[Exchange]) -> None:
    req = canonical(ex, earlier)
    fidelity = Fidelity()
    up = ADAPTER.build_request(req, ex.model, SETTINGS, fidelity)
    assert up.url == ex.uri
    assert up.headers["x-goog-api-key"] == "g-key"
    assert up.stream is ex.stream
    recorded = json.loads(json.dumps(ex.request))
    for field in NOT_EXPRESSIBLE.get(ex.name, []):
        recorded.pop(field)
    assert normalise(orjson.loads(up.body)) == normalise(recorded)
    assert fidelity.dropped == []
    assert fidelity.approximated == (["reasoning.effort"] if req.reasoning_effort else [])


def test_every_recorded_exchange_is_replayed() -> None:
    cases = list(replay_cases())
    assert len(cases) == len(GEMINI_API) - 1 >= 40
    # the signatures and thoughts of earlier turns really went back
    sent = [orjson.loads(ADAPTER.build_request(canonical(c.values[0], c.values[1]), c.values[0].model, SETTINGS,
                                               Fidelity()).body) for c in cases]
    parts = [p for body in sent for content in body["contents"] for p in content["parts"]]
    assert sum("thoughtSignature" in p for p in parts) >= 10
    assert any(p.get("thought") is True for p in parts)


def test_youtube_video_input_is_reported_not_faked() -> None:
    """The recorded video input (``fileData`` with ``video/mp4``) has no canonical form: the closest request a
    client can send (the URL as an image) is reported dropped, the text still goes."""
    ex = WIRE_GROUPS["cassettes/pydantic-ai/test_google_model_mobile_youtube_video_url_input.yaml"][0]
    url = ex.request["contents"][0]["parts"][1]["fileData"]["fileUri"]
    req = CanonicalRequest(model=ex.model, input=[{"type": "message", "role": "user", "content": [
        {"type": "input_text", "text": "Explain me this video in a few sentences"},
        {"type": "input_image", "image_url": url, "detail": "auto"}]}])
    fidelity = Fidelity()
    body = orjson.loads(ADAPTER.build_request(req, ex.model, SETTINGS, fidelity).body)
    assert body["contents"] == [{"role": "user", "parts": [ex.request["contents"][0]["parts"][0]]}]
    assert fidelity.dropped == ["input[0].content[1] (image URL of unknown type; Gemini needs a MIME type)"]


# --------------------------------------------------------------------------------------------------
# responses and streams
# --------------------------------------------------------------------------------------------------


def _summary(resp: CanonicalResponse) -> list[tuple[str, str]]:
    out = []
    for it in resp.output:
        if it["type"] == "message":
            out.append(("message", "".join(p["text"] for p in it["content"])))
        elif it["type"] == "function_call":
            out.append(("function_call", f"{it['name']}({it['arguments']})"))
        else:
            out.append(("reasoning", "".join(p["text"] for p in it["summary"])))
    return out


def _usage(resp: CanonicalResponse) -> tuple[int, int, int, int]:
    u = resp.usage
    assert u is not None
    return u.input_tokens, u.output_tokens, u.cached_tokens, u.reasoning_tokens


# name -> (status, incomplete reason, usage (input, output, cached, reasoning), item kinds, first text head)
EXPECTED: dict[str, tuple[str, str | None, tuple[int, int, int, int], list[str], str]] = {
    "test_google_model.00": ("completed", None, (9, 43, 0, 34), ["message"], "Hello! How can I help you today?"),
    "test_google_model_instructions.00": ("completed", None, (13, 8, 0, 0), ["message"],
                                          "The capital of France is Paris.\n"),
    "test_google_model_stream.00": ("completed", None, (13, 8, 0, 0), ["message"],
                                    "The capital of France is Paris.\n"),
    "test_google_model_iter_stream.00": ("completed", None, (52, 5, 0, 0), ["function_call"],
                                         'get_capital({"country":"France"})'),
    "test_google_model_iter_stream.01": ("completed", None, (64, 5, 0, 0), ["function_call"],
                                         'get_temperature({"city":"Paris"})'),
    "test_google_model_iter_stream.02": ("completed", None, (79, 12, 0, 0), ["message"],
                                         "The temperature in Paris is 30°C.\n"),
    "test_google_streaming_tool_call_thought_signature.00": ("completed", None, (29, 212, 0, 202),
                                                             ["function_call", "reasoning"], "get_country({})"),
    "test_google_streaming_tool_call_thought_signature.01": ("completed", None, (257, 8, 0, 0), ["message"],
                                                             "The capital of Mexico is Mexico City."),
    "test_google_model_thinking_part.00": ("completed", None, (29, 1737, 0, 1001), ["reasoning", "message"],
                                           "Crossing the street safely is a fundamental skill"),
    "test_google_model_thinking_part.01": ("completed", None, (1280, 2073, 0, 1115), ["reasoning", "message"],
                                           "Crossing a river is deceptively similar"),
    "test_google_model_thinking_part_iter.00": ("completed", None, (34, 1256, 0, 787), ["reasoning", "message"],
                                                "This is a great question! Safely crossing"),
    "test_google_tool_output.00": ("completed", None, (33, 5, 0, 0), ["function_call"], "get_user_country({})"),
    "test_google_tool_output.01": ("completed", None, (47, 8, 0, 0), ["function_call"],
                                   'final_result({"city":"Mexico City","country":"Mexico"})'),
    "test_google_model_max_tokens.00": ("incomplete", "max_output_tokens", (15, 5, 0, 0), ["message"],
                                        "The capital of France is"),
    "test_google_model_max_tokens_thinking_model_empty_response.00": ("incomplete", "max_output_tokens",
                                                                      (15, 2, 0, 2), [], ""),
    "test_google_model_safety_settings.00": ("incomplete", "content_filter", (14, 0, 0, 0), [], ""),
    "test_google_model_mobile_youtube_video_url_input.00": ("completed", None, (17713, 889, 17379, 821),
                                                            ["message"], "This video demonstrates"),
    "test_google_stream_usage_is_live_mid_stream.00": ("completed", None, (18, 115, 0, 35), ["message"], "1\n2\n3"),
    "test_google_model_web_search_tool_stream.00": ("completed", None, (119, 653, 0, 412), ["message"],
                                                    "### Weather in San Francisco"),
    "test_google_model_web_search_tool_stream.01": ("completed", None, (568, 541, 0, 301), ["message"],
                                                    "### Scattered Thunderstorms"),
    "test_google_vertex_service_tier_flex_stream.00": ("completed", None, (5, 101, 0, 100),
                                                       ["message", "reasoning"], "OK"),
    "test_tool_choice_matrix[auto-google].00": ("completed", None, (49, 63, 0, 48), ["function_call", "reasoning"],
                                                'get_weather({"city":"Paris"})'),
    "test_tool_choice_matrix[auto-google].01": ("completed", None, (88, 15, 0, 0), ["message"],
                                                "The weather in Paris is sunny"),
    "test_tool_choice_matrix[required-google].00": ("completed", None, (46, 63, 0, 48),
                                                    ["function_call", "reasoning"], 'get_weather({"city":"Paris"})'),
    "test_tool_choice_matrix[none-google].00": ("completed", None, (49, 1124, 0, 996), ["message"],
                                                "Okay, let me check"),
    "test_tool_choice_matrix[list_single-google].00": ("completed", None, (83, 65, 0, 50),
                                                       ["function_call", "reasoning"], 'get_weather({"city":"Paris"})'),
}


@pytest.mark.parametrize("ex", [ex for group in WIRE_GROUPS.values() for ex in group], ids=lambda ex: ex.name)
def test_recorded_response_parses(ex: Exchange) -> None:
    status, reason, usage, kinds, head = EXPECTED[ex.name]
    resp = parse(ex)
    assert resp.status == status and resp.incomplete_reason == reason
    assert _usage(resp) == usage
    summary = _summary(resp)
    assert [k for k, _ in summary] == kinds
    first = next((text for k, text in summary if k != "reasoning"), "")
    assert first.startswith(head), first[:80]
    assert resp.upstream_model is not None and resp.upstream_model.startswith("gemini-")
    for item in resp.output:
        if item["type"] == "reasoning":
            assert item["encrypted_content"].startswith("tw1.gemini.")


# thought summaries (the reasoning item's text) where the recording has them
REASONING_HEAD = {
    "test_google_model_thinking_part.00": "**A Safe Street-Crossing Guide: My Thought Process**",
    "test_google_model_thinking_part.01": "**Navigating Nature's Road",
    "test_google_model_thinking_part_iter.00": "**Clarifying User Goals**",
}


@pytest.mark.parametrize("name", sorted(REASONING_HEAD))
def test_recorded_thoughts_become_reasoning_summary(name: str) -> None:
    ex = next(ex for group in WIRE_GROUPS.values() for ex in group if ex.name == name)
    resp = parse(ex)
    reasoning = resp.output[0]
    assert reasoning["type"] == "reasoning" and reasoning["content"] == []
    assert reasoning["summary"][0]["text"].startswith(REASONING_HEAD[name])


def test_expected_covers_every_recording() -> None:
    assert sorted(EXPECTED) == sorted(ex.name for group in WIRE_GROUPS.values() for ex in group)


def test_stream_and_whole_answer_agree_on_parallel_calls_with_ids() -> None:
    """Gemini 3 streams parallel calls one per chunk, with ids; only the first carries a signature."""
    ex = ADK_GROUPS["TestParallelFunctionCalls_test_parallel_function_calls_gemini-3-flash-preview"][0]
    resp = parse(ex)
    calls = [it for it in resp.output if it["type"] == "function_call"]
    assert [(c["call_id"], orjson.loads(c["arguments"])) for c in calls] == [
        ("3ae8iwca", {"b": 3, "a": 2}), ("up3kf30e", {"a": 4, "b": 5}), ("ycroch25", {"b": 7, "a": 6})]
    assert resp.output[-1]["type"] == "reasoning"
    assert _usage(resp) == (161, 93, 0, 45)


def test_gemini_2_parallel_calls_get_deterministic_ids() -> None:
    ex = ADK_GROUPS["TestParallelFunctionCalls_test_parallel_function_calls_gemini-2.5-flash"][0]
    first = [it["call_id"] for it in parse(ex).output if it["type"] == "function_call"]
    again = [it["call_id"] for it in parse(ex).output if it["type"] == "function_call"]
    assert first == again and len(set(first)) == 3
    assert all(c.startswith("gmcall_") for c in first)


def test_adk_error_trace_is_kept() -> None:
    ex = ADK_GROUPS["TestModel_TrackingHeaders_verifies_headers_are_set_vertex_enabled"][0]
    assert ex.status == 401
    message, code = ADAPTER.error_message(ex.response)
    assert message.startswith("API keys are not supported by this API.")
    assert code == "CREDENTIALS_MISSING"

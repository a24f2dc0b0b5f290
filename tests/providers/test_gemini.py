"""Unit tests for the Gemini adapter: request mapping, thought-signature round trips, responses, streams and
errors (the recorded real exchanges are in test_gemini_fixtures.py)."""

from __future__ import annotations

from typing import Any

import orjson
import pytest

from tollway.core import reasoning_state
from tollway.core.assembler import OutputAssembler
from tollway.core.errors import GatewayError
from tollway.core.types import (
    CanonicalRequest,
    CanonicalResponse,
    Delta,
    Fidelity,
    Finish,
    FunctionTool,
    Item,
    ItemDone,
    ReasoningDelta,
    ReasoningState,
    StreamError,
    TextDelta,
    TextFormat,
    ToolCallArgsDelta,
    ToolCallStart,
    ToolChoice,
    UsageUpdate,
)
from tollway.providers.base import ProviderSettings
from tollway.providers.gemini import GeminiAdapter
from tollway.providers.gemini_request import SKIP_SIGNATURE, THINKING_BUDGETS, text_digest
from tollway.providers.gemini_stream import FAILED_REASONS, FINISH_REASONS, GeminiStreamParser, synth_call_id

ADAPTER = GeminiAdapter()
SETTINGS = ProviderSettings(name="gemini", kind="gemini", base_url="https://g.example/v1beta", api_key="k",
                            headers={"x-extra": "1"})
JSONDict = dict[str, Any]
WEATHER = FunctionTool("get_weather", "Weather", {"type": "object", "properties": {"city": {"type": "string"}}})
TIME = FunctionTool("get_time", None, None)


def user(text: str) -> Item:
    return {"type": "message", "role": "user", "content": [{"type": "input_text", "text": text}]}


def build(req: CanonicalRequest, model: str = "gemini-2.5-flash") -> tuple[JSONDict, Fidelity]:
    fidelity = Fidelity()
    up = ADAPTER.build_request(req, model, SETTINGS, fidelity)
    body: JSONDict = orjson.loads(up.body)
    return body, fidelity


def body_of(model: str = "gemini-2.5-flash", **fields: Any) -> JSONDict:
    fields.setdefault("input", [user("hi")])
    return build(CanonicalRequest(model=model, **fields), model)[0]


def whole(answer: JSONDict) -> CanonicalResponse:
    return ADAPTER.parse_response(orjson.dumps(answer))


def answer(parts: list[JSONDict], finish: str | None = "STOP", rid: str = "r1", **extra: Any) -> JSONDict:
    candidate: JSONDict = {"content": {"parts": parts, "role": "model"}, "index": 0}
    if finish is not None:
        candidate["finishReason"] = finish
    return {"candidates": [candidate], "modelVersion": "gemini-2.5-flash", "responseId": rid,
            "usageMetadata": {"promptTokenCount": 10, "candidatesTokenCount": 4, "thoughtsTokenCount": 3,
                              "totalTokenCount": 17}, **extra}


def feed(chunks: list[JSONDict], close: bool = True) -> list[Delta]:
    parser = GeminiStreamParser()
    out: list[Delta] = []
    for chunk in chunks:
        out.extend(parser.feed(None, orjson.dumps(chunk)))
    if close:
        out.extend(parser.close())
    return out


def assemble(deltas: list[Delta]) -> CanonicalResponse:
    assembler = OutputAssembler()
    for d in deltas:
        assembler.apply(d)
    result = assembler.result()
    for item in result.output:
        del item["id"]
    return result


# --------------------------------------------------------------------------------------------------
# request: envelope
# --------------------------------------------------------------------------------------------------


def test_url_headers_and_model_prefix() -> None:
    fidelity = Fidelity()
    up = ADAPTER.build_request(CanonicalRequest(model="x", input=[user("hi")]), "models/gemini-2.5-pro", SETTINGS,
                               fidelity)
    assert up.url == "https://g.example/v1beta/models/gemini-2.5-pro:generateContent"
    assert up.headers == {"content-type": "application/json", "x-goog-api-key": "k", "x-extra": "1"}
    assert up.stream is False and up.method == "POST"
    stream = ADAPTER.build_request(CanonicalRequest(model="x", input=[user("hi")], stream=True), "gemini-2.5-pro",
                                   SETTINGS, fidelity)
    assert stream.url.endswith("/models/gemini-2.5-pro:streamGenerateContent?alt=sse")
    assert stream.stream is True and stream.stream_format == "sse" and stream.headers["accept"] == "text/event-stream"
    tuned = ADAPTER.build_request(CanonicalRequest(model="x", input=[user("hi")]), "tunedModels/t1", SETTINGS,
                                  fidelity)
    assert tuned.url == "https://g.example/v1beta/tunedModels/t1:generateContent"
    no_key = ProviderSettings(name="gemini", kind="gemini", base_url="http://m")
    assert "x-goog-api-key" not in ADAPTER.build_request(CanonicalRequest(model="x", input=[user("hi")]), "g",
                                                         no_key, fidelity).headers


def test_minimal_body_has_only_contents() -> None:
    assert body_of() == {"contents": [{"role": "user", "parts": [{"text": "hi"}]}]}


def test_empty_input_is_rejected() -> None:
    with pytest.raises(GatewayError) as err:
        body_of(input=[{"type": "message", "role": "system", "content": "only rules"}])
    assert err.value.status == 400 and err.value.param == "input"


def test_system_and_developer_messages() -> None:
    body, fidelity = build(CanonicalRequest(model="m", instructions="be brief", input=[
        {"type": "message", "role": "system", "content": [{"type": "input_text", "text": "rule one"}]},
        user("hi"),
        {"type": "message", "role": "developer", "content": "rule two"},
        {"type": "message", "role": "assistant", "content": [{"type": "output_text", "text": "hello"}]},
        user("bye"),
    ]))
    assert body["systemInstruction"] == {"parts": [{"text": "be brief"}, {"text": "rule one"}, {"text": "rule two"}]}
    assert body["contents"] == [{"role": "user", "parts": [{"text": "hi"}]},
                                {"role": "model", "parts": [{"text": "hello"}]},
                                {"role": "user", "parts": [{"text": "bye"}]}]
    assert fidelity.approximated == ["input[2] (developer message moved to systemInstruction)"]


def test_consecutive_turns_of_one_role_merge() -> None:
    body = body_of(input=[user("a"), user("b")])
    assert body["contents"] == [{"role": "user", "parts": [{"text": "a"}, {"text": "b"}]}]


def test_unknown_role_is_rejected() -> None:
    with pytest.raises(GatewayError) as err:
        body_of(input=[{"type": "message", "role": "critic", "content": "x"}])
    assert err.value.param == "input[0].role"


# --------------------------------------------------------------------------------------------------
# request: images
# --------------------------------------------------------------------------------------------------


def image(url: str, detail: str = "auto") -> Item:
    return {"type": "message", "role": "user", "content": [
        {"type": "input_text", "text": "look"}, {"type": "input_image", "image_url": url, "detail": detail}]}


def test_data_url_image_is_inline_data() -> None:
    body, fidelity = build(CanonicalRequest(model="m", input=[image("data:image/jpg;base64,QUJD")]))
    assert body["contents"][0]["parts"][1] == {"inlineData": {"mimeType": "image/jpeg", "data": "QUJD"}}
    assert fidelity.dropped == []


def test_http_image_with_known_type_is_file_data() -> None:
    body, fidelity = build(CanonicalRequest(model="m", input=[image("https://x.test/a/cat.PNG?s=1", "high")]))
    assert body["contents"][0]["parts"][1] == {"fileData": {"mimeType": "image/png",
                                                            "fileUri": "https://x.test/a/cat.PNG?s=1"}}
    assert fidelity.dropped == ["input[0].content[1].detail"]


def test_http_image_of_unknown_type_is_dropped_and_reported() -> None:
    body, fidelity = build(CanonicalRequest(model="m", input=[image("https://x.test/render?id=3")]))
    assert body["contents"][0]["parts"] == [{"text": "look"}]
    assert fidelity.dropped == ["input[0].content[1] (image URL of unknown type; Gemini needs a MIME type)"]


@pytest.mark.parametrize("url", ["ftp://x/a.png", "data:image/png,notbase64"])
def test_bad_image_urls_are_rejected(url: str) -> None:
    with pytest.raises(GatewayError) as err:
        build(CanonicalRequest(model="m", input=[image(url)]))
    assert err.value.status == 400 and err.value.param == "input[0].content[1].image_url"


# --------------------------------------------------------------------------------------------------
# request: tools and tool choice
# --------------------------------------------------------------------------------------------------


def test_tools_are_function_declarations_with_json_schema() -> None:
    body, fidelity = build(CanonicalRequest(model="m", input=[user("x")], tools=[
        WEATHER, FunctionTool("get_time", None, None, strict=True)]))
    assert body["tools"] == [{"functionDeclarations": [
        {"name": "get_weather", "description": "Weather", "parametersJsonSchema": WEATHER.parameters},
        {"name": "get_time"}]}]
    assert "toolConfig" not in body
    assert fidelity.dropped == ["tools.strict"]


@pytest.mark.parametrize(("choice", "config", "names"), [
    (ToolChoice("none", raw="none"), {"mode": "NONE"}, ["get_weather", "get_time"]),
    (ToolChoice("required", raw="required"), {"mode": "ANY"}, ["get_weather", "get_time"]),
    (ToolChoice("required", ["get_time"], raw={}), {"mode": "ANY", "allowedFunctionNames": ["get_time"]},
     ["get_weather", "get_time"]),
    (ToolChoice("auto", ["get_time"], raw={}), None, ["get_time"]),
])
def test_tool_choice(choice: ToolChoice, config: JSONDict | None, names: list[str]) -> None:
    body = body_of(tools=[WEATHER, TIME], tool_choice=choice)
    assert body.get("toolConfig") == (None if config is None else {"functionCallingConfig": config})
    assert [d["name"] for d in body["tools"][0]["functionDeclarations"]] == names


def test_tool_choice_allowing_no_defined_tool_is_rejected() -> None:
    with pytest.raises(GatewayError) as err:
        body_of(tools=[WEATHER], tool_choice=ToolChoice("required", ["nope"], raw={}))
    assert err.value.param == "tool_choice"


def test_parallel_tool_calls_false_is_reported() -> None:
    _, fidelity = build(CanonicalRequest(model="m", input=[user("x")], tools=[WEATHER], parallel_tool_calls=False))
    assert fidelity.dropped == ["parallel_tool_calls"]


# --------------------------------------------------------------------------------------------------
# request: generation config
# --------------------------------------------------------------------------------------------------


def test_sampling_fields() -> None:
    body, fidelity = build(CanonicalRequest(
        model="m", input=[user("x")], temperature=0.2, top_p=0.9, max_output_tokens=77, stop=["a", "b"], seed=7,
        presence_penalty=0.5, frequency_penalty=-0.5))
    assert body["generationConfig"] == {"temperature": 0.2, "topP": 0.9, "maxOutputTokens": 77,
                                        "stopSequences": ["a", "b"], "seed": 7, "presencePenalty": 0.5,
                                        "frequencyPenalty": -0.5}
    assert fidelity.dropped == [] and fidelity.approximated == []


def test_more_than_five_stop_sequences_keep_five() -> None:
    body, fidelity = build(CanonicalRequest(model="m", input=[user("x")], stop=list("abcdefg")))
    assert body["generationConfig"]["stopSequences"] == list("abcde")
    assert fidelity.approximated == ["stop"]


def test_structured_output() -> None:
    schema = {"type": "object", "properties": {"echo": {"type": "string"}}}
    body = body_of(text_format=TextFormat("json_schema", "echo", schema, True))
    assert body["generationConfig"] == {"responseMimeType": "application/json", "responseJsonSchema": schema}
    assert body_of(text_format=TextFormat("json_object"))["generationConfig"] == {
        "responseMimeType": "application/json"}


@pytest.mark.parametrize("effort", sorted(THINKING_BUDGETS))
def test_reasoning_effort_is_a_thinking_budget(effort: str) -> None:
    body, fidelity = build(CanonicalRequest(model="m", input=[user("x")], reasoning_effort=effort))
    thinking = body["generationConfig"]["thinkingConfig"]
    assert thinking["thinkingBudget"] == THINKING_BUDGETS[effort]
    assert thinking.get("includeThoughts") is (None if effort == "none" else True)
    assert fidelity.approximated == ["reasoning.effort"]


def test_reasoning_summary_alone_asks_for_thoughts() -> None:
    body = body_of(reasoning_summary="auto")
    assert body["generationConfig"] == {"thinkingConfig": {"includeThoughts": True}}


def test_unknown_effort_is_rejected() -> None:
    with pytest.raises(GatewayError) as err:
        body_of(reasoning_effort="extreme")
    assert err.value.param == "reasoning.effort"


def test_cache_key_and_unsupported_fields() -> None:
    body, fidelity = build(CanonicalRequest(model="m", input=[user("x")], prompt_cache_key="cachedContents/abc"))
    assert body["cachedContent"] == "cachedContents/abc" and fidelity.dropped == []
    body, fidelity = build(CanonicalRequest(model="m", input=[user("x")], prompt_cache_key="team-a", top_logprobs=2,
                                            user="u1", max_tool_calls=3, service_tier="flex"))
    assert "cachedContent" not in body
    assert fidelity.dropped == ["prompt_cache_key", "top_logprobs", "user", "max_tool_calls", "service_tier"]


# --------------------------------------------------------------------------------------------------
# request: function calls and results
# --------------------------------------------------------------------------------------------------


def call(call_id: str, name: str = "get_weather", args: str = '{"city":"Paris"}') -> Item:
    return {"type": "function_call", "call_id": call_id, "name": name, "arguments": args}


def result(call_id: str, output: str) -> Item:
    return {"type": "function_call_output", "call_id": call_id, "output": output}


def test_calls_and_results() -> None:
    body = body_of(input=[user("w?"), call("c1"), call("c2", "get_time", ""), result("c2", '{"t": 3}'),
                          result("c1", "rainy")])
    assert body["contents"][1:] == [
        {"role": "model", "parts": [
            {"functionCall": {"name": "get_weather", "args": {"city": "Paris"}, "id": "c1"}},
            {"functionCall": {"name": "get_time", "args": {}, "id": "c2"}}]},
        {"role": "user", "parts": [  # in the order of the calls
            {"functionResponse": {"name": "get_weather", "response": {"output": "rainy"}, "id": "c1"}},
            {"functionResponse": {"name": "get_time", "response": {"t": 3}, "id": "c2"}}]},
    ]


def test_synthesised_ids_do_not_go_back_and_results_follow_call_order() -> None:
    a = synth_call_id("r", 0, "sum", {"a": 1})
    b = synth_call_id("r", 1, "sum", {"a": 2})
    body = body_of(input=[user("add"), call(a, "sum", '{"a":1}'), call(b, "sum", '{"a":2}'), result(b, "2"),
                          result(a, "1")])
    assert body["contents"][1]["parts"] == [{"functionCall": {"name": "sum", "args": {"a": 1}}},
                                            {"functionCall": {"name": "sum", "args": {"a": 2}}}]
    assert body["contents"][2]["parts"] == [{"functionResponse": {"name": "sum", "response": {"output": "1"}}},
                                            {"functionResponse": {"name": "sum", "response": {"output": "2"}}}]


@pytest.mark.parametrize("args", ["[1]", "{bad", "3"])
def test_call_arguments_must_be_an_object(args: str) -> None:
    with pytest.raises(GatewayError) as err:
        body_of(input=[user("x"), call("c1", args=args)])
    assert err.value.param == "input[1].arguments"


def test_result_for_an_unknown_call_is_rejected() -> None:
    with pytest.raises(GatewayError) as err:
        body_of(input=[user("x"), result("ghost", "1")])
    assert err.value.param == "input[1].call_id"


# --------------------------------------------------------------------------------------------------
# thought signatures: response -> items -> next request
# --------------------------------------------------------------------------------------------------

THOUGHT: JSONDict = {"text": "**Plan** look it up", "thought": True, "thoughtSignature": "SIG-T"}


def next_turn(resp: CanonicalResponse, tail: list[Item], model: str = "gemini-2.5-flash") -> tuple[JSONDict, Fidelity]:
    return build(CanonicalRequest(model=model, input=[user("q"), *resp.output, *tail]), model)


def test_signatures_go_back_on_the_exact_parts() -> None:
    signed_call = {"functionCall": {"name": "get_weather", "args": {"city": "Rome"}}, "thoughtSignature": "SIG-C"}
    resp = whole(answer([THOUGHT, {"text": "Let me check. "}, {"text": "One moment.", "thoughtSignature": "SIG-X"},
                         signed_call, {"functionCall": {"name": "get_time", "args": {}}}]))
    kinds = [it["type"] for it in resp.output]
    assert kinds == ["reasoning", "message", "function_call", "function_call"]
    calls = [it for it in resp.output if it["type"] == "function_call"]
    body, fidelity = next_turn(resp, [result(calls[0]["call_id"], "sunny"), result(calls[1]["call_id"], "noon")])
    assert body["contents"][1]["parts"] == [
        {"text": "**Plan** look it up", "thought": True, "thoughtSignature": "SIG-T"},
        {"text": "Let me check. One moment.", "thoughtSignature": "SIG-X"},
        {"functionCall": {"name": "get_weather", "args": {"city": "Rome"}}, "thoughtSignature": "SIG-C"},
        {"functionCall": {"name": "get_time", "args": {}}},
    ]
    assert fidelity.dropped == [] and fidelity.approximated == []


def test_signature_without_thoughts_puts_the_reasoning_item_last_and_still_round_trips() -> None:
    resp = whole(answer([{"text": "Paris.", "thoughtSignature": "SIG-1"}]))
    assert [it["type"] for it in resp.output] == ["message", "reasoning"]
    assert resp.output[1]["summary"] == []
    state = reasoning_state.unwrap(resp.output[1]["encrypted_content"])
    assert state == ("gemini", {"sigs": [["text", text_digest("Paris."), "SIG-1"]]})
    body, _ = next_turn(resp, [user("and Rome?")])
    assert body["contents"][1] == {"role": "model", "parts": [{"text": "Paris.", "thoughtSignature": "SIG-1"}]}


def test_signature_on_an_empty_trailing_part_goes_back_as_such() -> None:
    deltas = feed([answer([{"text": "Hi"}], finish=None), answer([{"text": "", "thoughtSignature": "SIG-E"}])])
    resp = assemble(deltas)
    body, _ = next_turn(resp, [user("next")])
    assert body["contents"][1]["parts"] == [{"text": "Hi"}, {"text": "", "thoughtSignature": "SIG-E"}]


def test_foreign_and_broken_reasoning_is_dropped_and_reported() -> None:
    items: list[Item] = [
        {"type": "reasoning", "summary": [{"type": "summary_text", "text": "hmm"}], "content": [],
         "encrypted_content": reasoning_state.wrap("anthropic", {"signature": "s"})},
        {"type": "reasoning", "summary": [], "content": []},
        {"type": "reasoning", "summary": [], "content": [], "encrypted_content": "tw1.gemini.%%%"},
        {"type": "reasoning", "summary": [], "content": [], "encrypted_content": "gAAAAopenai"},
        {"type": "message", "role": "assistant", "content": [{"type": "output_text", "text": "ok"}]},
    ]
    body, fidelity = build(CanonicalRequest(model="m", input=[user("q"), *items, user("go")]))
    assert body["contents"][1] == {"role": "model", "parts": [{"text": "ok"}]}
    assert fidelity.dropped == ["input[1].reasoning (state from anthropic)", "input[2].reasoning (no provider state)",
                                "input[3].reasoning (corrupt state)", "input[4].reasoning (state from openai)"]


def test_signature_whose_part_is_gone_is_reported() -> None:
    resp = whole(answer([{"text": "A", "thoughtSignature": "S1"}]))
    reasoning = resp.output[1]
    body, fidelity = build(CanonicalRequest(model="m", input=[user("q"), reasoning, {
        "type": "message", "role": "assistant", "content": [{"type": "output_text", "text": "edited"}]}, user("x")]))
    assert body["contents"][1]["parts"] == [{"text": "edited"}]
    assert fidelity.dropped == ["input[1].reasoning (signature of a part no longer in the input)"]


def test_gemini_3_turn_without_signature_gets_the_documented_skip_value() -> None:
    items = [user("q"), call("c1"), call("c2"), result("c1", "a"), result("c2", "b")]
    body, fidelity = build(CanonicalRequest(model="m", input=items), "gemini-3-pro-preview")
    parts = body["contents"][1]["parts"]
    assert parts[0]["thoughtSignature"] == SKIP_SIGNATURE and "thoughtSignature" not in parts[1]
    assert fidelity.approximated == ["input[1] (model turn without a Gemini thought signature)"]
    body, fidelity = build(CanonicalRequest(model="m", input=items), "gemini-2.5-flash")
    assert all("thoughtSignature" not in p for p in body["contents"][1]["parts"])
    assert fidelity.approximated == []
    # earlier turns (before the last user message) are not checked by Gemini 3 and are left alone
    body, fidelity = build(CanonicalRequest(model="m", input=[*items, {
        "type": "message", "role": "assistant", "content": [{"type": "output_text", "text": "done"}]}, user("next")]),
        "gemini-3-pro-preview")
    assert all("thoughtSignature" not in p for p in body["contents"][1]["parts"])
    assert fidelity.approximated == []


# --------------------------------------------------------------------------------------------------
# responses
# --------------------------------------------------------------------------------------------------


def test_usage_counts_thoughts_as_output_and_prompt_includes_cache() -> None:
    resp = whole(answer([{"text": "x"}], usageMetadata={
        "promptTokenCount": 1000, "cachedContentTokenCount": 600, "candidatesTokenCount": 40,
        "thoughtsTokenCount": 60, "toolUsePromptTokenCount": 5, "totalTokenCount": 1105}))
    assert resp.usage is not None
    assert (resp.usage.input_tokens, resp.usage.output_tokens, resp.usage.cached_tokens,
            resp.usage.reasoning_tokens) == (1005, 100, 600, 60)
    assert resp.upstream_model == "gemini-2.5-flash" and resp.upstream_id == "r1"


@pytest.mark.parametrize("reason", sorted(FINISH_REASONS))
def test_finish_reasons(reason: str) -> None:
    resp = whole(answer([{"text": "x"}], finish=reason))
    assert (resp.status, resp.incomplete_reason) == FINISH_REASONS[reason]
    expected = {"STOP": "completed", "MAX_TOKENS": "incomplete", "SAFETY": "incomplete"}
    if reason in expected:
        assert resp.status == expected[reason]


def test_missing_or_unknown_finish_reason_completes() -> None:
    assert whole(answer([{"text": "x"}], finish=None)).status == "completed"
    assert whole(answer([{"text": "x"}], finish="SOMETHING_NEW")).status == "completed"


@pytest.mark.parametrize("reason", sorted(FAILED_REASONS))
def test_failed_finish_reasons_are_errors_with_gemini_message(reason: str) -> None:
    with pytest.raises(GatewayError) as err:
        whole(answer([], finish=reason))
    assert err.value.status == 502 and err.value.code == f"upstream_{reason.lower()}"
    assert FAILED_REASONS[reason] in err.value.message
    bad = answer([], finish=reason)
    bad["candidates"][0]["finishMessage"] = "Malformed function call: print(x"
    deltas = feed([bad])
    assert isinstance(deltas[-1], StreamError) and deltas[-1].message.startswith("Malformed function call: print(x")


def test_blocked_prompt_is_a_content_filter() -> None:
    resp = whole({"promptFeedback": {"blockReason": "PROHIBITED_CONTENT"},
                  "usageMetadata": {"promptTokenCount": 7, "totalTokenCount": 7}})
    assert (resp.status, resp.incomplete_reason, resp.output) == ("incomplete", "content_filter", [])
    assert resp.usage is not None and resp.usage.input_tokens == 7


@pytest.mark.parametrize("raw", [b"not json", b"[]", b'{"foo": 1}'])
def test_malformed_body_is_a_502(raw: bytes) -> None:
    with pytest.raises(GatewayError) as err:
        ADAPTER.parse_response(raw)
    assert err.value.status == 502 and err.value.code == "upstream_bad_response"


def test_unknown_parts_are_skipped() -> None:
    resp = whole(answer([{"executableCode": {"code": "1+1"}}, {"text": "2"}]))
    assert [it["type"] for it in resp.output] == ["message"]


# --------------------------------------------------------------------------------------------------
# streams
# --------------------------------------------------------------------------------------------------


def test_stream_deltas_in_order() -> None:
    deltas = feed([
        answer([{"text": "thinking", "thought": True}], finish=None),
        answer([{"text": "Hel"}], finish=None),
        answer([{"text": "lo", "thoughtSignature": "S"}], finish=None),
        answer([{"functionCall": {"name": "f", "args": {"a": 1}, "id": "id1"}}], finish="STOP"),
    ])
    kinds = [(type(d).__name__, getattr(d, "key", None)) for d in deltas if not isinstance(d, UsageUpdate)]
    assert kinds == [
        ("ReasoningDelta", "reasoning"), ("TextDelta", ("t", 0)), ("TextDelta", ("t", 0)), ("ItemDone", ("t", 0)),
        ("ToolCallStart", ("c", 0)), ("ToolCallArgsDelta", ("c", 0)), ("ItemDone", ("c", 0)),
        ("ReasoningState", "reasoning"), ("ItemDone", "reasoning"), ("Finish", None)]
    assert isinstance(deltas[0], ReasoningDelta) and deltas[0].summary is True
    start = next(d for d in deltas if isinstance(d, ToolCallStart))
    assert (start.call_id, start.name) == ("id1", "f")
    assert next(d for d in deltas if isinstance(d, ToolCallArgsDelta)).delta == '{"a":1}'
    state = next(d for d in deltas if isinstance(d, ReasoningState))
    assert reasoning_state.unwrap(state.encrypted_content) == ("gemini", {"sigs": [["text", text_digest("Hello"),
                                                                                     "S"]]})
    finish = deltas[-1]
    assert isinstance(finish, Finish) and finish.upstream_id == "r1" and finish.upstream_model == "gemini-2.5-flash"


def test_stream_and_whole_answer_give_the_same_items() -> None:
    parts = [THOUGHT, {"text": "a "}, {"text": "b", "thoughtSignature": "S2"},
             {"functionCall": {"name": "f", "args": {}}, "thoughtSignature": "S3"}, {"functionCall": {"name": "f"}}]
    streamed = assemble(feed([answer([p], finish=None, rid="same") for p in parts] + [answer([], rid="same")]))
    single = whole(answer(parts, rid="same"))
    assert streamed.output == single.output
    assert [it["call_id"] for it in single.output if it["type"] == "function_call"] == [
        synth_call_id("same", 0, "f", {}), synth_call_id("same", 1, "f", {})]


def test_stream_without_finish_reason_is_truncated() -> None:
    deltas = feed([answer([{"text": "partial"}], finish=None)])
    last = deltas[-1]
    assert isinstance(last, StreamError) and last.code == "upstream_stream_truncated"
    assert not any(isinstance(d, ItemDone) for d in deltas)


def test_usage_after_finish_still_counts() -> None:
    late = {"usageMetadata": {"promptTokenCount": 12, "candidatesTokenCount": 9, "totalTokenCount": 21}}
    deltas = feed([answer([{"text": "x"}]), late])
    assert isinstance(deltas[-1], UsageUpdate) and deltas[-1].output_tokens == 9
    assert sum(isinstance(d, Finish) for d in deltas) == 1


@pytest.mark.parametrize(("status", "etype"), [("UNAVAILABLE", "overloaded_error"), ("INTERNAL", "server_error"),
                                               ("RESOURCE_EXHAUSTED", "rate_limit_error")])
def test_error_in_stream(status: str, etype: str) -> None:
    deltas = feed([answer([{"text": "a"}], finish=None), {"error": {"code": 503, "message": "busy", "status": status}}])
    err = deltas[-1]
    assert isinstance(err, StreamError) and (err.message, err.code, err.type) == ("busy", status, etype)
    assert len([d for d in deltas if isinstance(d, StreamError)]) == 1


def test_malformed_chunk_is_a_stream_error() -> None:
    parser = GeminiStreamParser()
    out = parser.feed(None, b'{"candidates": [')
    assert isinstance(out[0], StreamError) and out[0].code == "upstream_bad_event"
    assert parser.close() == []


def test_text_delta_keys_start_a_new_message_after_a_call() -> None:
    deltas = feed([answer([{"text": "a"}, {"functionCall": {"name": "f", "args": {}}}, {"text": "b"}])])
    texts = [d for d in deltas if isinstance(d, TextDelta)]
    assert [(d.key, d.text) for d in texts] == [(("t", 0), "a"), (("t", 1), "b")]


# --------------------------------------------------------------------------------------------------
# errors
# --------------------------------------------------------------------------------------------------


def test_error_message_keeps_google_message_and_status() -> None:
    body = orjson.dumps({"error": {"code": 429, "message": "Quota exceeded.", "status": "RESOURCE_EXHAUSTED",
                                   "details": [{"@type": "type.googleapis.com/google.rpc.RetryInfo",
                                                "retryDelay": "37s"}]}})
    assert ADAPTER.error_message(body) == ("Quota exceeded. (retry after 37s)", "RESOURCE_EXHAUSTED")


def test_error_message_prefers_error_info_reason() -> None:
    body = orjson.dumps([{"error": {"code": 400, "message": "API key not valid.", "status": "INVALID_ARGUMENT",
                                    "details": [{"@type": "type.googleapis.com/google.rpc.ErrorInfo",
                                                 "reason": "API_KEY_INVALID"}, "junk"]}}])
    assert ADAPTER.error_message(body) == ("API key not valid.", "API_KEY_INVALID")


@pytest.mark.parametrize(("raw", "expected"), [
    (b"<html>bad gateway</html>", ("<html>bad gateway</html>", None)),
    (b"", ("empty error body", None)),
    (b'{"error": {"code": 500}}', ('{"error": {"code": 500}}', None)),
    (b'{"message": "x"}', ('{"message": "x"}', None)),
])
def test_error_message_never_raises(raw: bytes, expected: tuple[str, str | None]) -> None:
    assert ADAPTER.error_message(raw) == expected


def test_thought_text_without_signature_still_has_gemini_state() -> None:
    resp = whole(answer([{"text": "why", "thought": True}, {"text": "because"}]))
    assert resp.output[0]["encrypted_content"] == reasoning_state.wrap("gemini", {"sigs": []})
    body, fidelity = next_turn(resp, [user("more")])
    assert body["contents"][1]["parts"] == [{"text": "why", "thought": True}, {"text": "because"}]
    assert fidelity.dropped == []


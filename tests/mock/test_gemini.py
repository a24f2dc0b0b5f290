"""The mock's Gemini wire format (``/v1beta/models/{model}:generateContent`` / ``:streamGenerateContent``):
bodies and stream chunks validated against the JSON Schema generated from google-genai
(``shared/specs/providers/gemini/sdk-json-schema``), scripted behaviours, signature checks and faults."""

from __future__ import annotations

import json
from functools import cache
from pathlib import Path
from typing import Any

import orjson
import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient
from jsonschema import Draft202012Validator  # type: ignore[import-untyped]

from tollway.mock.gemini import SKIP_SIGNATURES, signature

Client = TestClient[web.Request, web.Application]
SCHEMAS = Path(__file__).resolve().parents[2] / ".." / "shared" / "specs" / "providers" / "gemini" / "sdk-json-schema"
FLASH = "/v1beta/models/gemini-2.5-flash"
PRO3 = "/v1beta/models/gemini-3-pro-preview"
TOOLS = [{"functionDeclarations": [{"name": "lookup", "parametersJsonSchema": {"type": "object"}},
                                   {"name": "search", "description": "s"}]}]
THINK = {"thinkingConfig": {"includeThoughts": True, "thinkingBudget": 1024}}


@cache
def validator() -> Draft202012Validator:
    return Draft202012Validator(json.loads((SCHEMAS / "GenerateContentResponse.schema.json").read_text()))


def check(payload: dict[str, Any]) -> None:
    errors = sorted(validator().iter_errors(payload), key=lambda e: list(e.path))
    assert not errors, [f"{list(e.path)}: {e.message}" for e in errors[:3]]


def user(text: str) -> dict[str, Any]:
    return {"role": "user", "parts": [{"text": text}]}


async def post(client: Client, body: dict[str, Any], path: str = FLASH, status: int = 200,
               headers: dict[str, str] | None = None) -> dict[str, Any]:
    resp = await client.post(f"{path}:generateContent", json=body, headers=headers)
    raw = await resp.read()
    assert resp.status == status, raw
    data: dict[str, Any] = orjson.loads(raw)
    if status == 200:
        check(data)
    else:
        assert set(data) == {"error"} and data["error"]["code"] == status
    return data


async def stream(client: Client, body: dict[str, Any], path: str = FLASH) -> list[dict[str, Any]]:
    resp = await client.post(f"{path}:streamGenerateContent?alt=sse", json=body)
    assert resp.status == 200 and resp.headers["content-type"].startswith("text/event-stream")
    raw = await resp.read()
    assert raw.endswith(b"\r\n\r\n")
    chunks = []
    for frame in raw.split(b"\r\n\r\n")[:-1]:
        assert frame.startswith(b"data: ") and b"\n" not in frame
        chunk = orjson.loads(frame[6:])
        check(chunk)
        chunks.append(chunk)
    return chunks


def parts_of(data: dict[str, Any]) -> list[dict[str, Any]]:
    parts: list[dict[str, Any]] = data["candidates"][0]["content"].get("parts", [])
    return parts


def stream_parts(chunks: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [p for c in chunks for p in c["candidates"][0]["content"].get("parts", [])]


# ---------------------------------------------------------------------------------------------------
# text, usage, thinking


async def test_text(client: Client) -> None:
    data = await post(client, {"systemInstruction": {"parts": [{"text": "be kind"}]},
                               "contents": [user("hello there")]})
    assert parts_of(data) == [{"text": "echo: hello there"}]
    assert data["candidates"][0]["finishReason"] == "STOP"
    assert data["modelVersion"] == "gemini-2.5-flash" and data["responseId"]
    assert data["usageMetadata"]["promptTokenCount"] == 4
    assert data["usageMetadata"]["candidatesTokenCount"] == 3 and data["usageMetadata"]["totalTokenCount"] == 7


async def test_snake_case_fields(client: Client) -> None:
    body = {"contents": [user("x")], "generation_config": {"max_output_tokens": 1}}
    data = await post(client, body, path="/v1beta/models/gemini-2.0-flash")
    assert data["modelVersion"] == "gemini-2.0-flash"
    assert data["candidates"][0]["finishReason"] == "MAX_TOKENS" and parts_of(data) == [{"text": "echo:"}]


async def test_unknown_method_field_or_empty_contents_are_400(client: Client) -> None:
    resp = await client.post(f"{FLASH}:countTokens", json={"contents": [user("x")]})
    assert resp.status == 400
    bad = await post(client, {"contents": [user("x")], "temperature": 1}, status=400)
    assert bad["error"]["status"] == "INVALID_ARGUMENT" and 'Unknown name "temperature"' in bad["error"]["message"]
    await post(client, {"contents": []}, status=400)
    await post(client, {"contents": [{"role": "assistant", "parts": [{"text": "x"}]}]}, status=400)
    await post(client, {"contents": [{"role": "user", "parts": [{"txt": "x"}]}]}, status=400)


async def test_thinking_with_thoughts(client: Client) -> None:
    data = await post(client, {"contents": [user("plan it")], "generationConfig": THINK})
    parts = parts_of(data)
    assert parts[0] == {"text": "thinking about: plan it", "thought": True}
    assert parts[1] == {"text": "echo: plan it", "thoughtSignature": signature("text", "echo: plan it")}
    usage = data["usageMetadata"]
    assert (usage["thoughtsTokenCount"], usage["candidatesTokenCount"]) == (4, 3)


async def test_thinking_without_thoughts_is_counted_not_shown(client: Client) -> None:
    body = {"contents": [user("plan it")], "generationConfig": {"thinkingConfig": {"thinkingBudget": -1}}}
    data = await post(client, body)
    assert [p["text"] for p in parts_of(data)] == ["echo: plan it"]
    assert data["usageMetadata"]["thoughtsTokenCount"] == 4
    off = await post(client, {"contents": [user("x")], "generationConfig": {"thinkingConfig": {"thinkingBudget": 0}}})
    assert "thoughtsTokenCount" not in off["usageMetadata"] and "thoughtSignature" not in parts_of(off)[0]


async def test_cached_content(client: Client) -> None:
    data = await post(client, {"contents": [user("a b c d e f")], "cachedContent": "cachedContents/x1"})
    assert data["usageMetadata"]["cachedContentTokenCount"] == 3


async def test_structured_output(client: Client) -> None:
    config = {"responseMimeType": "application/json", "responseJsonSchema": {"type": "object"}}
    data = await post(client, {"contents": [user("hi")], "generationConfig": config})
    assert orjson.loads(parts_of(data)[0]["text"]) == {"echo": "hi"}
    await post(client, {"contents": [user("hi")], "generationConfig": {"responseJsonSchema": {}}}, status=400)


# ---------------------------------------------------------------------------------------------------
# streaming


async def test_stream_text_with_thoughts(client: Client) -> None:
    chunks = await stream(client, {"contents": [user("[mock:chunks=5] stream it")], "generationConfig": THINK})
    parts = stream_parts(chunks)
    thoughts = "".join(p["text"] for p in parts if p.get("thought"))
    text = "".join(p["text"] for p in parts if not p.get("thought"))
    assert thoughts == "thinking about: stream it"
    assert text == "echo: stream it lorem lorem"
    signed = [p for p in parts if "thoughtSignature" in p]
    assert len(signed) == 1 and signed[0]["thoughtSignature"] == signature("text", text)
    assert [c["candidates"][0].get("finishReason") for c in chunks][-1] == "STOP"
    assert all("finishReason" not in c["candidates"][0] for c in chunks[:-1])
    assert len({c["responseId"] for c in chunks}) == 1
    assert sum(1 for p in parts if not p.get("thought") and p["text"]) == 5
    assert chunks[-1]["usageMetadata"]["candidatesTokenCount"] == 5


async def test_stream_calls_one_per_chunk_with_ids_on_gemini_3(client: Client) -> None:
    chunks = await stream(client, {"contents": [user("parallel please")], "tools": TOOLS}, path=PRO3)
    calls = [p for p in stream_parts(chunks) if "functionCall" in p]
    assert [c["functionCall"]["name"] for c in calls] == ["lookup", "search"]
    assert all(len(c["functionCall"]["id"]) == 8 for c in calls)
    assert calls[0]["thoughtSignature"] == signature("call", "lookup", {"input": "parallel please"})
    assert "thoughtSignature" not in calls[1]


# ---------------------------------------------------------------------------------------------------
# tools


async def test_tool_call_and_choice(client: Client) -> None:
    data = await post(client, {"contents": [user("find")], "tools": TOOLS})
    assert parts_of(data) == [{"functionCall": {"name": "lookup", "args": {"input": "find"}}}]
    config = {"functionCallingConfig": {"mode": "ANY", "allowedFunctionNames": ["search"]}}
    data = await post(client, {"contents": [user("find")], "tools": TOOLS, "toolConfig": config})
    assert parts_of(data)[0]["functionCall"]["name"] == "search"
    none = {"functionCallingConfig": {"mode": "NONE"}}
    data = await post(client, {"contents": [user("find")], "tools": TOOLS, "toolConfig": none})
    assert parts_of(data) == [{"text": "echo: find"}]
    auto = {"functionCallingConfig": {"mode": "AUTO", "allowedFunctionNames": ["search"]}}
    bad = await post(client, {"contents": [user("find")], "tools": TOOLS, "toolConfig": auto}, status=400)
    assert "ANY" in bad["error"]["message"]
    unknown = {"functionCallingConfig": {"mode": "ANY", "allowedFunctionNames": ["nope"]}}
    await post(client, {"contents": [user("find")], "tools": TOOLS, "toolConfig": unknown}, status=400)


async def test_tool_results(client: Client) -> None:
    contents = [user("find"), {"role": "model", "parts": [{"functionCall": {"name": "lookup", "args": {}}}]},
                {"role": "user", "parts": [{"functionResponse": {"name": "lookup", "response": {"output": "42"}}},
                                           {"functionResponse": {"name": "lookup", "response": {"n": 1}}}]}]
    data = await post(client, {"contents": contents, "tools": TOOLS})
    assert parts_of(data) == [{"text": 'tool said: 42; {"n":1}'}]
    contents[2]["parts"][0]["functionResponse"].pop("name")
    await post(client, {"contents": contents, "tools": TOOLS}, status=400)


# ---------------------------------------------------------------------------------------------------
# thought signatures


def model_turn(call_sig: str | None, name: str = "lookup", args: dict[str, Any] | None = None) -> dict[str, Any]:
    part: dict[str, Any] = {"functionCall": {"name": name, "args": args if args is not None else {"input": "find"}}}
    if call_sig is not None:
        part["thoughtSignature"] = call_sig
    return {"role": "model", "parts": [part]}


def result_turn() -> dict[str, Any]:
    return {"role": "user", "parts": [{"functionResponse": {"name": "lookup", "response": {"output": "ok"}}}]}


async def test_issued_signature_round_trips(client: Client) -> None:
    first = await post(client, {"contents": [user("find")], "tools": TOOLS}, path=PRO3)
    turn = first["candidates"][0]["content"]
    data = await post(client, {"contents": [user("find"), turn, result_turn()], "tools": TOOLS}, path=PRO3)
    assert parts_of(data)[0]["text"] == "tool said: ok"


@pytest.mark.parametrize("sig", sorted(SKIP_SIGNATURES))
async def test_skip_value_is_accepted(client: Client, sig: str) -> None:
    await post(client, {"contents": [user("find"), model_turn(sig), result_turn()], "tools": TOOLS}, path=PRO3)


async def test_tampered_or_misplaced_signature_is_rejected(client: Client) -> None:
    tampered = signature("call", "lookup", {"input": "find"})[:-1] + "0"
    bad = await post(client, {"contents": [user("find"), model_turn(tampered), result_turn()], "tools": TOOLS},
                     status=400)
    assert "Corrupted thought signature" in bad["error"]["message"]
    other = signature("call", "lookup", {"input": "other"})  # a real signature, issued for another call
    await post(client, {"contents": [user("find"), model_turn(other), result_turn()], "tools": TOOLS}, status=400)
    moved = {"role": "model", "parts": [{"text": "x", "thoughtSignature": signature("text", "y")}]}
    await post(client, {"contents": [user("a"), moved, user("b")]}, status=400)


async def test_gemini_3_requires_signatures_in_the_current_turn_only(client: Client) -> None:
    body = {"contents": [user("find"), model_turn(None), result_turn()], "tools": TOOLS}
    bad = await post(client, body, path=PRO3, status=400)
    assert "missing a `thought_signature`" in bad["error"]["message"]
    await post(client, body)  # Gemini 2.5 does not require them
    older = {"contents": [user("find"), model_turn(None), result_turn(), {"role": "model", "parts": [{"text": "ok"}]},
                          user("thanks")], "tools": TOOLS}
    await post(client, older, path=PRO3)


# ---------------------------------------------------------------------------------------------------
# finish reasons, blocked prompts, faults


async def test_finish_marker(client: Client) -> None:
    data = await post(client, {"contents": [user("[gemini:finish=SAFETY] tell me")]})
    assert data["candidates"][0]["finishReason"] == "SAFETY"
    assert parts_of(data) == [{"text": "echo: tell me"}]
    chunks = await stream(client, {"contents": [user("[gemini:finish=MALFORMED_FUNCTION_CALL] x")]})
    assert chunks[-1]["candidates"][0]["finishReason"] == "MALFORMED_FUNCTION_CALL"
    assert chunks[-1]["candidates"][0]["finishMessage"]


async def test_block_marker(client: Client) -> None:
    data = await post(client, {"contents": [user("[gemini:block=PROHIBITED_CONTENT] x")]})
    assert "candidates" not in data and data["promptFeedback"]["blockReason"] == "PROHIBITED_CONTENT"
    chunks = await stream(client, {"contents": [user("[gemini:block=SAFETY] x")]})
    assert len(chunks) == 1 and chunks[0]["promptFeedback"]["blockReason"] == "SAFETY"


@pytest.mark.parametrize(("fault", "status", "rpc"), [
    ("400", 400, "INVALID_ARGUMENT"), ("401", 401, "UNAUTHENTICATED"), ("403", 403, "PERMISSION_DENIED"),
    ("404", 404, "NOT_FOUND"), ("429", 429, "RESOURCE_EXHAUSTED"), ("500", 500, "INTERNAL"),
    ("529", 503, "UNAVAILABLE"),
])
async def test_http_faults(client: Client, fault: str, status: int, rpc: str) -> None:
    resp = await client.post(f"{FLASH}:generateContent", json={"contents": [user(f"[mock:fault={fault}] x")]})
    assert resp.status == status
    error = orjson.loads(await resp.read())["error"]
    assert error["status"] == rpc and error["message"]
    if fault == "429":
        assert resp.headers["retry-after"] == "2"
        assert error["details"] == [{"@type": "type.googleapis.com/google.rpc.RetryInfo", "retryDelay": "2s"}]
    if fault == "400":
        assert error["details"][0]["fieldViolations"][0]["field"] == "contents"


async def test_stream_error_and_malformed(client: Client) -> None:
    resp = await client.post(f"{FLASH}:streamGenerateContent?alt=sse",
                             json={"contents": [user("[mock:fault=stream_error,chunks=4] x")]})
    frames = (await resp.read()).split(b"\r\n\r\n")[:-1]
    assert orjson.loads(frames[-1][6:])["error"]["status"] == "UNAVAILABLE"
    assert len(frames) == 3  # two of four text chunks, then the error
    resp = await client.post(f"{FLASH}:streamGenerateContent?alt=sse",
                             json={"contents": [user("[mock:fault=malformed,chunks=4] x")]})
    frames = (await resp.read()).split(b"\r\n\r\n")[:-1]
    with pytest.raises(orjson.JSONDecodeError):
        orjson.loads(frames[-1][6:])
    resp = await client.post(f"{FLASH}:generateContent", json={"contents": [user("[mock:fault=malformed] x")]})
    with pytest.raises(orjson.JSONDecodeError):
        orjson.loads(await resp.read())

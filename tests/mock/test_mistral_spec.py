"""Validation against Mistral's own OpenAPI document (``shared/specs/providers/mistral/platform-docs-public``):
the helper :func:`check_mistral` used by the Mistral adapter and mock tests, and the proof that it accepts
the recorded real traffic (so a failure elsewhere means tollway, not the schema, is off).

Known gaps of the document, handled here rather than copied: ``UsageInfo`` forbids the usage fields the live
API sends (``prompt_tokens_details``, ``num_cached_tokens``) and ``ChatCompletionResponse`` lists a ``data``
field as required that no response has; whole responses are therefore checked by their parts (``choices[i]``
against ``ChatCompletionChoice`` / ``CompletionResponseStreamChoice``)."""

from __future__ import annotations

import json
from functools import cache
from pathlib import Path
from typing import Any

import pytest
import yaml
from jsonschema import Draft202012Validator  # type: ignore[import-untyped]
from referencing import Registry, Resource
from referencing.jsonschema import DRAFT202012

MISTRAL = Path(__file__).resolve().parents[2].parent / "shared" / "specs" / "providers" / "mistral"
OPENAPI = MISTRAL / "platform-docs-public" / "public" / "openapi.yaml"
WIRE = MISTRAL / "wire"


@cache
def _registry() -> Registry[Any]:
    doc = yaml.load(OPENAPI.read_text(), Loader=yaml.CSafeLoader)
    resource: Resource[Any] = Resource.from_contents(doc, default_specification=DRAFT202012)
    registry: Registry[Any] = Registry().with_resource("urn:mistral", resource)
    return registry


@cache
def _validator(name: str) -> Draft202012Validator:
    return Draft202012Validator({"$ref": f"urn:mistral#/components/schemas/{name}"}, registry=_registry())


def check_mistral(name: str, payload: Any) -> None:
    """Assert ``payload`` is valid against the Mistral schema ``name`` (e.g. ``ChatCompletionRequest``)."""
    errors = sorted(_validator(name).iter_errors(payload), key=lambda e: list(e.absolute_path))
    assert not errors, f"{name}: " + "; ".join(f"{list(e.absolute_path)}: {e.message[:300]}" for e in errors[:5])


def check_response(body: dict[str, Any]) -> None:
    """A non-streaming chat completion: envelope fields, every choice, and usage counts."""
    assert isinstance(body["id"], str) and body["object"] == "chat.completion" and isinstance(body["model"], str)
    assert isinstance(body["created"], int)
    for choice in body["choices"]:
        check_mistral("ChatCompletionChoice", choice)
    usage = body["usage"]
    assert usage["total_tokens"] == usage["prompt_tokens"] + usage["completion_tokens"]


def check_chunk(chunk: dict[str, Any]) -> None:
    """One ``chat.completion.chunk``."""
    check_mistral("CompletionChunk", {k: v for k, v in chunk.items() if k != "usage"})
    if "usage" in chunk:
        usage = chunk["usage"]
        assert usage["total_tokens"] == usage["prompt_tokens"] + usage["completion_tokens"]


def _entries() -> list[dict[str, Any]]:
    index = json.loads((WIRE / "INDEX.json").read_bytes())
    return [e for e in index if "api.mistral.ai/v1/chat/completions" in e["uri"]]


@pytest.mark.parametrize("entry", _entries(), ids=lambda e: e["file_base"])
def test_recorded_traffic_is_valid(entry: dict[str, Any]) -> None:
    base = WIRE.parent / entry["file_base"]
    request = json.loads(Path(f"{base}.request.json").read_bytes())
    check_mistral("ChatCompletionRequest", request)
    if entry["content_type"].startswith("text/event-stream"):
        raw = Path(f"{base}.response.sse").read_text()
        for frame in raw.strip().split("\n\n"):
            data = frame.removeprefix("data: ")
            if data != "[DONE]":
                check_chunk(json.loads(data))
    else:
        check_response(json.loads(Path(f"{base}.response.json").read_bytes()))


def test_checker_rejects_what_mistral_refuses() -> None:
    base = {"model": "m", "messages": [{"role": "user", "content": "x"}]}
    for extra in (
        {"stream_options": {"include_usage": True}},
        {"max_completion_tokens": 5},
        {"seed": 1},
        {"user": "u"},
        {"logprobs": True},
    ):
        with pytest.raises(AssertionError):
            check_mistral("ChatCompletionRequest", {**base, **extra})
    with pytest.raises(AssertionError):
        check_mistral("ChatCompletionRequest", {**base, "messages": [{"role": "developer", "content": "x"}]})
    check_mistral("ChatCompletionRequest", {**base, "random_seed": 1, "max_tokens": 5, "tool_choice": "any"})

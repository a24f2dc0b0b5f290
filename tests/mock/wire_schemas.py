"""Validate what the mock emits against the providers' own schemas: OpenAI's OpenAPI document
(``shared/specs/open-responses/openai-openapi/openapi.yaml``) and the JSON Schemas generated from the
Anthropic SDK (``shared/specs/providers/anthropic/sdk-json-schema``)."""

from __future__ import annotations

import json
from functools import cache
from pathlib import Path
from typing import Any

import yaml
from jsonschema import Draft202012Validator  # type: ignore[import-untyped]
from referencing import Registry, Resource
from referencing.jsonschema import DRAFT202012

SHARED = Path(__file__).resolve().parents[2].parent / "shared"
OPENAPI = SHARED / "specs" / "open-responses" / "openai-openapi" / "openapi.yaml"
ANTHROPIC_SCHEMAS = SHARED / "specs" / "providers" / "anthropic" / "sdk-json-schema"


def _nullable(node: Any) -> Any:
    """OpenAPI 3.0's ``nullable: true`` (still used in places) as JSON Schema: ``anyOf [node, null]``."""
    if isinstance(node, dict):
        node = {k: _nullable(v) for k, v in node.items()}
        if node.pop("nullable", False):
            return {"anyOf": [node, {"type": "null"}]}
        return node
    if isinstance(node, list):
        return [_nullable(v) for v in node]
    return node


@cache
def _openapi_registry() -> Registry[Any]:
    doc = yaml.load(OPENAPI.read_text(), Loader=yaml.CSafeLoader)
    doc = _nullable(doc)
    resource: Resource[Any] = Resource.from_contents(doc, default_specification=DRAFT202012)
    registry: Registry[Any] = Registry().with_resource("urn:openai", resource)
    return registry


@cache
def openai_validator(name: str) -> Draft202012Validator:
    schema = {"$ref": f"urn:openai#/components/schemas/{name}"}
    return Draft202012Validator(schema, registry=_openapi_registry())


@cache
def _stream_event_schemas() -> dict[str, str]:
    """``response.*`` event type -> its schema name, from the ResponseStreamEvent union."""
    schemas = _openapi_registry().contents("urn:openai")["components"]["schemas"]
    out: dict[str, str] = {}
    for ref in schemas["ResponseStreamEvent"]["anyOf"]:
        name = ref["$ref"].rsplit("/", 1)[-1]
        out[schemas[name]["properties"]["type"]["enum"][0]] = name
    return out


def check_openai(name: str, payload: Any) -> None:
    errors = sorted(openai_validator(name).iter_errors(payload), key=str)
    assert not errors, f"{name}: " + "; ".join(f"{list(e.absolute_path)}: {e.message}" for e in errors[:5])


def check_responses_event(event: dict[str, Any]) -> None:
    check_openai(_stream_event_schemas()[event["type"]], event)


@cache
def anthropic_validator(name: str) -> Draft202012Validator:
    return Draft202012Validator(json.loads((ANTHROPIC_SCHEMAS / f"{name}.schema.json").read_text()))


def check_anthropic(name: str, payload: Any) -> None:
    errors = sorted(anthropic_validator(name).iter_errors(payload), key=str)
    assert not errors, f"{name}: " + "; ".join(f"{list(e.absolute_path)}: {e.message}" for e in errors[:5])

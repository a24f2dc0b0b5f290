"""Validation of what tollway emits on /v1/responses against the shared Open Responses OpenAPI bundle
(jsonschema Draft 2020-12 with a `referencing` registry over components.schemas)."""

from __future__ import annotations

import copy
import json
from functools import cache
from pathlib import Path
from typing import Any

from jsonschema import Draft202012Validator
from referencing import Registry, Resource
from referencing.jsonschema import DRAFT202012

SHARED = Path(__file__).resolve().parents[1].parent / "shared"
BUNDLE = SHARED / "specs" / "open-responses" / "public" / "openapi" / "openapi.json"


@cache
def _bundle() -> dict[str, Any]:
    doc: dict[str, Any] = json.loads(BUNDLE.read_text())
    schemas = doc["components"]["schemas"]
    # Known spec defect (shared/README.md): the response-side JsonSchemaResponseFormat.schema is typed
    # null only; a gateway must echo the client's schema object there.
    fix = copy.deepcopy(schemas["JsonSchemaResponseFormat"])
    fix["properties"]["schema"] = {"anyOf": [{"type": "object"}, {"type": "null"}]}
    schemas["JsonSchemaResponseFormat"] = fix
    return doc


@cache
def _validator(name: str) -> Draft202012Validator:
    doc = _bundle()
    resource = Resource.from_contents(doc, default_specification=DRAFT202012)
    registry: Registry[Any] = Registry().with_resource("urn:openresponses", resource)
    schema = {"$ref": f"urn:openresponses#/components/schemas/{name}"}
    return Draft202012Validator(schema, registry=registry)


STREAM_EVENT_SCHEMAS = {
    "response.created": "ResponseCreatedStreamingEvent",
    "response.queued": "ResponseQueuedStreamingEvent",
    "response.in_progress": "ResponseInProgressStreamingEvent",
    "response.completed": "ResponseCompletedStreamingEvent",
    "response.failed": "ResponseFailedStreamingEvent",
    "response.incomplete": "ResponseIncompleteStreamingEvent",
    "response.output_item.added": "ResponseOutputItemAddedStreamingEvent",
    "response.output_item.done": "ResponseOutputItemDoneStreamingEvent",
    "response.reasoning_summary_part.added": "ResponseReasoningSummaryPartAddedStreamingEvent",
    "response.reasoning_summary_part.done": "ResponseReasoningSummaryPartDoneStreamingEvent",
    "response.content_part.added": "ResponseContentPartAddedStreamingEvent",
    "response.content_part.done": "ResponseContentPartDoneStreamingEvent",
    "response.output_text.delta": "ResponseOutputTextDeltaStreamingEvent",
    "response.output_text.done": "ResponseOutputTextDoneStreamingEvent",
    "response.refusal.delta": "ResponseRefusalDeltaStreamingEvent",
    "response.refusal.done": "ResponseRefusalDoneStreamingEvent",
    "response.reasoning.delta": "ResponseReasoningDeltaStreamingEvent",
    "response.reasoning.done": "ResponseReasoningDoneStreamingEvent",
    "response.reasoning_summary_text.delta": "ResponseReasoningSummaryDeltaStreamingEvent",
    "response.reasoning_summary_text.done": "ResponseReasoningSummaryDoneStreamingEvent",
    "response.output_text.annotation.added": "ResponseOutputTextAnnotationAddedStreamingEvent",
    "response.function_call_arguments.delta": "ResponseFunctionCallArgumentsDeltaStreamingEvent",
    "response.function_call_arguments.done": "ResponseFunctionCallArgumentsDoneStreamingEvent",
    "error": "ErrorStreamingEvent",
}


def _raise_first(validator: Draft202012Validator, instance: Any, what: str) -> None:
    errors = sorted(validator.iter_errors(instance), key=lambda e: list(e.absolute_path))
    if errors:
        e = errors[0]
        path = "/".join(str(p) for p in e.absolute_path)
        raise AssertionError(f"{what} does not validate at /{path}: {e.message[:400]}")


def validate_resource(body: Any) -> None:
    _raise_first(_validator("ResponseResource"), body, "ResponseResource")


def validate_event(event: Any) -> None:
    name = STREAM_EVENT_SCHEMAS.get(event.get("type"))
    assert name is not None, f"event type {event.get('type')!r} is not a spec streaming event"
    _raise_first(_validator(name), event, f"event {event['type']}")


def validate_error(body: Any) -> None:
    assert set(body) == {"error"}, body
    _raise_first(_validator("ErrorPayload"), body["error"], "error payload")

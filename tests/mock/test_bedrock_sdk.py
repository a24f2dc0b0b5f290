"""The real AWS SDK (botocore's bedrock-runtime client: its SigV4 signer, %3A-encoded model ids, JSON and event
stream parsers, error parsing) against the mock's Bedrock routes."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import botocore.session
import pytest
from botocore.client import BaseClient
from botocore.config import Config
from botocore.exceptions import ClientError, EventStreamError

from tests.e2e.server import running_mock

MODEL = "us.anthropic.claude-sonnet-4-5-20250929-v1:0"


@pytest.fixture(scope="module")
def bedrock() -> Iterator[BaseClient]:
    with running_mock() as url:
        client = botocore.session.get_session().create_client(
            "bedrock-runtime",
            region_name="us-east-1",
            endpoint_url=url.removesuffix("/v1"),
            aws_access_key_id="AKID",
            aws_secret_access_key="secret",
            aws_session_token="token",
            config=Config(retries={"total_max_attempts": 1}),
        )
        yield client


def user(text: str) -> list[dict[str, Any]]:
    return [{"role": "user", "content": [{"text": text}]}]


def test_converse(bedrock: BaseClient) -> None:
    out = bedrock.converse(
        modelId=MODEL, messages=user("hello sdk"), system=[{"text": "be brief"}], inferenceConfig={"maxTokens": 100}
    )
    assert out["output"]["message"]["content"] == [{"text": "echo: hello sdk"}]
    assert out["stopReason"] == "end_turn" and out["usage"]["outputTokens"] == 3


def test_converse_stream_with_tools_and_reasoning(bedrock: BaseClient) -> None:
    out = bedrock.converse_stream(
        modelId=MODEL,
        messages=user("weather please"),
        toolConfig={"tools": [{"toolSpec": {"name": "get_weather", "inputSchema": {"json": {"type": "object"}}}}]},
        additionalModelRequestFields={"thinking": {"type": "enabled", "budget_tokens": 1024}},
    )
    events = list(out["stream"])
    reasoning = "".join(
        e["contentBlockDelta"]["delta"]["reasoningContent"].get("text", "")
        for e in events
        if "reasoningContent" in e.get("contentBlockDelta", {}).get("delta", {})
    )
    assert reasoning == "thinking about: weather please"
    starts = [e["contentBlockStart"]["start"]["toolUse"]["name"] for e in events if "contentBlockStart" in e]
    assert starts == ["get_weather"]
    assert events[-2] == {"messageStop": {"stopReason": "tool_use"}}
    assert events[-1]["metadata"]["usage"]["inputTokens"] == 2


def test_errors_carry_the_exception_name(bedrock: BaseClient) -> None:
    with pytest.raises(ClientError) as err:
        bedrock.converse(modelId=MODEL, messages=user("[mock:fault=429] x"))
    assert err.value.response["Error"]["Code"] == "ThrottlingException"
    assert err.value.response["ResponseMetadata"]["HTTPStatusCode"] == 429
    with pytest.raises(ClientError) as err:
        bedrock.converse(modelId=MODEL, messages=[{"role": "assistant", "content": [{"text": "x"}]}])
    assert err.value.response["Error"]["Code"] == "ValidationException"


def test_stream_exception(bedrock: BaseClient) -> None:
    out = bedrock.converse_stream(modelId=MODEL, messages=user("[mock:fault=stream_error] a b c d"))
    with pytest.raises(EventStreamError) as err:
        list(out["stream"])
    assert err.value.response["Error"]["Code"] == "modelStreamErrorException"

"""OpenAI's HTTP error bodies (``{"error": {"message", "type", "param", "code"}}``), shared by the
Responses and Chat Completions routes of the mock."""

from __future__ import annotations

import orjson

from tollway.mock.wire import ErrorKind

# kind -> (status, type, code, canned message)
_ERRORS: dict[ErrorKind, tuple[int, str, str | None, str]] = {
    "invalid": (400, "invalid_request_error", "invalid_value", "Invalid value for '{param}' (mock fault)."),
    "auth": (
        401,
        "invalid_request_error",
        "invalid_api_key",
        "Incorrect API key provided: mock. You can find your API key at https://platform.openai.com/account/api-keys.",
    ),
    "forbidden": (403, "invalid_request_error", "unsupported_country_region_territory",
                  "Country, region, or territory not supported (mock)."),
    "not_found": (404, "invalid_request_error", "model_not_found",
                  "The model does not exist or you do not have access to it (mock)."),
    "rate_limit": (
        429,
        "requests",
        "rate_limit_exceeded",
        "Rate limit reached for requests (mock). Please try again in 2s.",
    ),
    "server": (
        500,
        "server_error",
        None,
        "The server had an error while processing your request. Sorry about that!",
    ),
    "overloaded": (503, "server_error", None, "The server is overloaded or not ready yet."),
}


def openai_error(
    kind: ErrorKind, message: str | None, param: str | None, code: str | None
) -> tuple[int, bytes]:
    status, type_, canned_code, canned = _ERRORS[kind]
    body = {
        "error": {
            "message": message if message is not None else canned.format(param=param),
            "type": type_,
            "param": param,
            "code": code if code is not None else canned_code,
        }
    }
    return status, orjson.dumps(body)

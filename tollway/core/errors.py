"""Gateway errors. Every failure a client sees is a :class:`GatewayError`, rendered by the door in its
error envelope ``{"error": {"message", "type", "param", "code"}}``."""

from __future__ import annotations

from typing import Any


class GatewayError(Exception):
    """An error with an HTTP status and the fields of the OpenAI/Open Responses error envelope."""

    def __init__(
        self,
        status: int,
        message: str,
        *,
        type: str = "invalid_request_error",
        code: str | None = None,
        param: str | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.type = type
        self.code = code
        self.param = param
        self.headers = headers or {}

    def to_json(self) -> dict[str, Any]:
        return {"error": {"message": self.message, "type": self.type, "param": self.param, "code": self.code}}


def invalid(message: str, param: str | None = None, code: str | None = "invalid_value") -> GatewayError:
    """400 for a request the client must fix; ``param`` names the offending field (dotted path)."""
    return GatewayError(400, message, type="invalid_request_error", code=code, param=param)


def upstream_error(
    provider: str,
    status: int,
    message: str,
    *,
    code: str | None = None,
    retry_after: str | None = None,
) -> GatewayError:
    """Map a provider's HTTP error to what tollway returns.

    4xx keep their status (the client's request was at fault or it was throttled), with the provider's
    message kept; 429 carries ``retry-after``. Overloaded (529/503) becomes 503; other 5xx become 502.
    """
    headers = {"retry-after": retry_after} if retry_after else {}
    text = f"{provider}: {message}"
    if status == 429:
        return GatewayError(429, text, type="rate_limit_error", code=code or "rate_limit_exceeded", headers=headers)
    if status in (401, 403):
        return GatewayError(
            status, text, type="authentication_error" if status == 401 else "permission_error",
            code=code or "upstream_auth_failed",
        )
    if status == 404:
        return GatewayError(404, text, type="not_found_error", code=code or "upstream_not_found")
    if 400 <= status < 500:
        return GatewayError(status, text, type="invalid_request_error", code=code or "upstream_invalid_request")
    if status in (503, 529):
        return GatewayError(503, text, type="overloaded_error", code=code or "provider_overloaded", headers=headers)
    return GatewayError(502, text, type="server_error", code=code or "upstream_error")

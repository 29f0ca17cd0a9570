"""The gateway's one exception tree and the one table from error to HTTP status.

Everything the request path raises on purpose is a `GatewayError`. Foreign errors
(aiohttp, litellm, pydantic) are translated once at their boundary with
`raise SomeGatewayError(...) from exc`; `error_body` turns any of them into OpenAI's
wire shape `{"error": {"message", "type", "param", "code"}}`.
"""

from __future__ import annotations

from typing import Any, ClassVar

import orjson


class GatewayError(Exception):
    """Base class: carries the HTTP status and OpenAI's error `type`/`code`."""

    status: ClassVar[int] = 500
    error_type: ClassVar[str] = "server_error"
    default_code: ClassVar[str | None] = None

    def __init__(
        self,
        message: str,
        *,
        param: str | None = None,
        code: str | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.param = param
        self.code = code if code is not None else self.default_code
        self.headers = headers or {}

    def body(self) -> dict[str, Any]:
        return error_body(self.message, self.error_type, self.param, self.code)


# --- the caller's fault -------------------------------------------------------------


class InvalidRequest(GatewayError):
    status = 400
    error_type = "invalid_request_error"


class ContextLengthExceeded(InvalidRequest):
    default_code = "context_length_exceeded"


class AuthenticationFailed(GatewayError):
    status = 401
    error_type = "authentication_error"
    default_code = "invalid_api_key"


class PermissionDenied(GatewayError):
    status = 403
    error_type = "permission_error"
    default_code = "model_not_allowed"


class NotFound(GatewayError):
    status = 404
    error_type = "invalid_request_error"
    default_code = "not_found"


class ModelNotFound(NotFound):
    default_code = "model_not_found"


class Conflict(GatewayError):
    """The change is not allowed in the current state (e.g. an adapter's status)."""

    status = 409
    error_type = "invalid_request_error"
    default_code = "conflict"


class Unprocessable(GatewayError):
    """Well-formed JSON that is not a valid value (admin bodies)."""

    status = 422
    error_type = "invalid_request_error"
    default_code = "invalid_value"


class PayloadTooLarge(GatewayError):
    status = 413
    error_type = "invalid_request_error"
    default_code = "request_too_large"


class RequestTimeout(GatewayError):
    """The request's headers or body did not arrive in time (the connection is closed)."""

    status = 408
    error_type = "invalid_request_error"
    default_code = "request_timeout"


class HeadersTooLarge(GatewayError):
    """The request's headers are over the size or count limit (the connection is closed)."""

    status = 431
    error_type = "invalid_request_error"
    default_code = "request_headers_too_large"


class ClientDisconnected(GatewayError):
    """The client went away before its answer was ready: the call was cancelled. Nobody
    reads the response; the status (nginx's 499) is for logs, metrics and the event."""

    status = 499
    error_type = "invalid_request_error"
    default_code = "client_disconnected"


class RateLimited(GatewayError):
    """A tenant or key limit (requests, tokens, spend) was reached."""

    status = 429
    error_type = "rate_limit_error"
    default_code = "rate_limit_exceeded"

    def __init__(self, message: str, *, retry_after_s: float, code: str | None = None) -> None:
        seconds = max(1, int(retry_after_s + 0.999))
        super().__init__(message, code=code, headers={"retry-after": str(seconds)})
        self.retry_after_s = retry_after_s


# --- the gateway's fault -------------------------------------------------------------


class InternalError(GatewayError):
    """A bug caught at the request's boundary: a 500 that still carries the request id."""

    default_code = "internal_error"


# --- an upstream's fault ------------------------------------------------------------


class UpstreamError(GatewayError):
    """An upstream answered with an error or could not be reached."""

    status = 502
    error_type = "upstream_error"
    default_code = "bad_gateway"
    # Worth another try on the same model (after backoff)?
    retry_same_model: ClassVar[bool] = True

    def __init__(
        self,
        message: str,
        *,
        upstream_status: int | None = None,
        retry_after_s: float | None = None,
        upstream_body: dict[str, Any] | None = None,
        code: str | None = None,
        param: str | None = None,
    ) -> None:
        super().__init__(message, code=code, param=param)
        self.upstream_status = upstream_status
        self.retry_after_s = retry_after_s
        self.upstream_body = upstream_body


class UpstreamTimeout(UpstreamError):
    status = 504
    default_code = "upstream_timeout"


class DeadlineExceeded(UpstreamTimeout):
    """The request's SLA deadline passed before an answer began: nobody's health issue."""

    default_code = "sla_deadline_exceeded"
    retry_same_model = False


class UpstreamUnavailable(UpstreamError):
    """Connection refused or dropped, or the model's circuit breaker is open."""

    status = 503
    default_code = "upstream_unavailable"


class UpstreamRateLimited(UpstreamError):
    status = 429
    error_type = "rate_limit_error"
    default_code = "upstream_rate_limited"


class UpstreamAuthFailed(UpstreamError):
    """Our credentials for the provider were refused: try the next model, not this one."""

    default_code = "upstream_auth_failed"
    retry_same_model = False


class UpstreamRejected(UpstreamError):
    """The upstream refused the request itself (4xx): passed back, not retried."""

    retry_same_model = False

    @property
    def client_status(self) -> int:
        return self.upstream_status or 400


class UpstreamContextLengthExceeded(UpstreamRejected):
    """The prompt does not fit this model: the context-window fallback's trigger."""

    default_code = "context_length_exceeded"


class NoRouteAvailable(UpstreamError):
    """Every model in the chain failed or was skipped."""

    status = 503
    default_code = "no_route_available"


def error_body(
    message: str, error_type: str, param: str | None = None, code: str | None = None
) -> dict[str, Any]:
    return {"error": {"message": message, "type": error_type, "param": param, "code": code}}


def headers_of(error: GatewayError) -> dict[str, str]:
    if isinstance(error, UpstreamError) and error.retry_after_s is not None:
        return {"retry-after": str(max(1, int(error.retry_after_s + 0.999))), **error.headers}
    return error.headers


def status_of(error: GatewayError) -> int:
    if isinstance(error, UpstreamRejected):
        return error.client_status
    return error.status


def render(error: GatewayError) -> bytes:
    body = error.body()
    if isinstance(error, UpstreamRejected) and error.upstream_body:
        upstream = error.upstream_body.get("error")
        if isinstance(upstream, dict) and "message" in upstream:
            body = {
                "error": {**body["error"], **{k: upstream.get(k) for k in ("message", "param")}}
            }
    return orjson.dumps(body)

"""Translate an upstream's HTTP error answer into the gateway's error tree, once."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import orjson

from gateway.errors import (
    UpstreamAuthFailed,
    UpstreamContextLengthExceeded,
    UpstreamError,
    UpstreamRateLimited,
    UpstreamRejected,
)

_CONTEXT_HINTS = ("context_length_exceeded", "maximum context length", "context window")


def parse_retry_after(headers: Mapping[str, str]) -> float | None:
    value = headers.get("retry-after-ms")
    if value is not None:
        try:
            return max(0.0, float(value) / 1000.0)
        except ValueError:
            pass
    value = headers.get("retry-after")
    if value is None:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        return None  # an HTTP date: rare from model APIs; fall back to our own backoff


def upstream_error(
    provider: str, status: int, body: bytes, headers: Mapping[str, str]
) -> UpstreamError:
    parsed = _parse(body)
    error = parsed.get("error")
    detail: dict[str, Any] = error if isinstance(error, dict) else {}
    message = str(detail.get("message") or body[:200].decode("utf-8", "replace") or status)
    code = detail.get("code")
    text = f"{provider} answered {status}: {message}"
    if status == 429:
        return UpstreamRateLimited(
            text, upstream_status=status, retry_after_s=parse_retry_after(headers)
        )
    if status in (400, 413, 422) and (
        code == "context_length_exceeded" or any(h in message.lower() for h in _CONTEXT_HINTS)
    ):
        return UpstreamContextLengthExceeded(
            text, upstream_status=400, upstream_body=parsed, param=detail.get("param")
        )
    if status in (401, 403):
        # Our credentials for the provider are wrong: not the caller's fault, try elsewhere.
        return UpstreamAuthFailed(text, upstream_status=status)
    if 400 <= status < 500 and status != 408:
        return UpstreamRejected(
            text,
            upstream_status=status,
            upstream_body=parsed,
            code=code if isinstance(code, str) else None,
            param=detail.get("param"),
        )
    return UpstreamError(text, upstream_status=status)


def _parse(body: bytes) -> dict[str, Any]:
    try:
        value = orjson.loads(body)
    except orjson.JSONDecodeError:
        return {}
    return value if isinstance(value, dict) else {}

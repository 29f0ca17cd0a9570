"""HTTP helpers at the edge: bounded body reading, JSON parsing, error responses."""

from __future__ import annotations

from typing import Any

import orjson
from starlette.requests import ClientDisconnect, Request
from starlette.responses import Response

from gateway.errors import (
    GatewayError,
    InvalidRequest,
    PayloadTooLarge,
    headers_of,
    render,
    status_of,
)

JSON = "application/json"


async def read_body(request: Request, limit: int) -> bytes:
    """The whole body, refusing with 413 as soon as it is known to exceed `limit`."""
    declared = request.headers.get("content-length")
    if declared is not None:
        if not declared.isdigit():
            raise InvalidRequest("Invalid Content-Length header", code="invalid_header")
        if int(declared) > limit:
            raise PayloadTooLarge(f"Request body of {declared} bytes exceeds the {limit} limit")
    chunks: list[bytes] = []
    size = 0
    try:
        async for chunk in request.stream():
            size += len(chunk)
            if size > limit:
                raise PayloadTooLarge(f"Request body exceeds the {limit} byte limit")
            chunks.append(chunk)
    except ClientDisconnect as exc:
        raise InvalidRequest("The client disconnected while sending the body") from exc
    return chunks[0] if len(chunks) == 1 else b"".join(chunks)


def parse_json(raw: bytes) -> Any:
    if not raw:
        raise InvalidRequest("The request body is empty: expected a JSON object")
    try:
        return orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        problem = (
            "is not valid UTF-8" if "utf-8" in str(exc).lower() else f"is not valid JSON ({exc})"
        )
        raise InvalidRequest(f"The request body {problem}", code="invalid_json") from None


def json_response(
    payload: Any, status: int = 200, headers: dict[str, str] | None = None
) -> Response:
    return Response(orjson.dumps(payload), status, headers, media_type=JSON)


def error_response(error: GatewayError, headers: dict[str, str] | None = None) -> Response:
    merged = {**headers_of(error), **(headers or {})}
    return Response(render(error), status_of(error), merged, media_type=JSON)

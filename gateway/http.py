"""HTTP helpers at the edge: bounded body reading, JSON parsing, error responses.

JSON depth: orjson parses 1024 levels of nesting but serialises only 254, and the
request path copies and walks bodies (templates, PII masking, events). One limit,
`MAX_JSON_DEPTH`, is checked once when a body is parsed, so everything downstream can
serialise and walk what it was given: a deeper body is a 400 naming the top-level field.
"""

from __future__ import annotations

from collections.abc import Callable
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
# Levels of nesting a request body may have (the body object itself is level 1). Well
# below orjson's serialisation limit (254), leaving room for the envelopes that carry a
# body (events, store rows), and far above what any real request needs.
MAX_JSON_DEPTH = 64


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


def parse_json(
    raw: bytes, max_depth: int = MAX_JSON_DEPTH, first: Callable[[Any], None] | None = None
) -> Any:
    """The parsed body; a 400 when it is not JSON or nests deeper than `max_depth`.
    `first` checks the parsed value before the depth walk (e.g. an item count)."""
    if not raw:
        raise InvalidRequest("The request body is empty: expected a JSON object")
    try:
        value = orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        problem = (
            "is not valid UTF-8" if "utf-8" in str(exc).lower() else f"is not valid JSON ({exc})"
        )
        raise InvalidRequest(f"The request body {problem}", code="invalid_json") from None
    if first is not None:
        first(value)
    # Depth is at most the number of brackets: most bodies need no walk at all.
    if raw.count(b"[") + raw.count(b"{") > max_depth:
        too_deep = deepest_field(value, max_depth)
        if too_deep is not None:
            raise InvalidRequest(
                f"The request body nests deeper than {max_depth} levels"
                + (f" in '{too_deep}'" if too_deep else ""),
                param=too_deep or None,
                code="json_too_deep",
            )
    return value


def deepest_field(value: Any, max_depth: int) -> str | None:
    """The top-level field (or "" for the body itself) whose value nests deeper than
    `max_depth` levels, counting the body as level 1; None when nothing does.

    Iterative, so a hostile body cannot exhaust the interpreter's stack."""
    if isinstance(value, dict):
        roots: list[tuple[str, Any]] = list(value.items())
    elif isinstance(value, list):
        roots = [("", item) for item in value]
    else:
        return None
    for name, root in roots:
        stack: list[tuple[Any, int]] = [(root, 2)]
        while stack:
            node, depth = stack.pop()
            if not isinstance(node, (dict, list)):
                continue
            if depth > max_depth:
                return name
            children = node.values() if isinstance(node, dict) else node
            stack.extend(
                (child, depth + 1) for child in children if isinstance(child, (dict, list))
            )
    return None


def json_response(
    payload: Any, status: int = 200, headers: dict[str, str] | None = None
) -> Response:
    return Response(orjson.dumps(payload), status, headers, media_type=JSON)


def error_response(error: GatewayError, headers: dict[str, str] | None = None) -> Response:
    merged = {**headers_of(error), **(headers or {})}
    return Response(render(error), status_of(error), merged, media_type=JSON)

"""The one gate in front of every /admin/ route: the admin key, and errors (ours and the
store's) answered in OpenAI's error body."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from starlette.requests import Request
from starlette.responses import Response

from gateway.auth import KeyIndex
from gateway.errors import GatewayError, UpstreamUnavailable
from gateway.http import error_response
from gateway.store.base import StoreUnavailable

Handler = Callable[[Request], Awaitable[Response]]


def admin_only(keys: KeyIndex, handler: Handler) -> Handler:
    async def guarded(request: Request) -> Response:
        try:
            keys.authenticate_admin(request.headers.get("authorization"))
            return await handler(request)
        except GatewayError as exc:
            return error_response(exc)
        except StoreUnavailable as exc:
            return error_response(UpstreamUnavailable(f"The store is unreachable: {exc}"))

    return guarded

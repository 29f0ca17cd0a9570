"""The one gate in front of every /admin/ route: the admin key, errors (ours and the
store's) answered in OpenAI's error body, and refused writes audited.

A route that changes something is guarded with its audit `action` (`policy.put`, ...):
when it fails after the caller authenticated, the refusal is written to the audit log as
`<action>.refused` (see admin_audit). Successful changes are audited by the handlers,
which know the old and the new value.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from starlette.requests import Request
from starlette.responses import Response

from gateway.auth import KeyIndex
from gateway.errors import GatewayError, UpstreamUnavailable
from gateway.http import error_response
from gateway.routes.admin_audit import AdminAudit
from gateway.store.base import StoreUnavailable

Handler = Callable[[Request], Awaitable[Response]]


def admin_only(
    keys: KeyIndex,
    handler: Handler,
    audit: AdminAudit | None = None,
    action: str | None = None,
) -> Handler:
    """`handler` behind the admin key; with `audit` and `action`, a write whose refusals
    are audited."""

    async def guarded(request: Request) -> Response:
        try:
            keys.authenticate_admin(request.headers.get("authorization"))
        except GatewayError as exc:
            return error_response(exc)
        try:
            return await handler(request)
        except GatewayError as exc:
            error: GatewayError = exc
        except StoreUnavailable as exc:
            error = UpstreamUnavailable(f"The store is unreachable: {exc}")
        if audit is not None and action is not None:
            await audit.refused(request, action, request.url.path, error)
        return error_response(error)

    return guarded

"""The bearer token that guards the worker's admin endpoints (adapter load and unload).

The worker reads the token from the environment variable named by `--admin-token-env`
(default `FLYWHEEL_WORKER_ADMIN_TOKEN`) at start. Without one the admin endpoints are
disabled (403), never open. A request must send `Authorization: Bearer <token>`; a missing
or wrong token is a 401. Tokens are compared as SHA-256 digests in constant time.
"""

from __future__ import annotations

import hashlib
import hmac
import os

from starlette.requests import Request

from gateway.errors import AuthenticationFailed, PermissionDenied

DEFAULT_ENV = "FLYWHEEL_WORKER_ADMIN_TOKEN"
MIN_LENGTH = 16


class AdminTokenError(ValueError):
    """The configured token cannot be used (too short); the message names the variable."""


class AdminToken:
    def __init__(self, token: str | None) -> None:
        self._digest = _digest(token) if token else None

    @classmethod
    def from_env(cls, name: str) -> AdminToken:
        token = os.environ.get(name, "").strip()
        if token and len(token) < MIN_LENGTH:
            raise AdminTokenError(f"${name} must hold at least {MIN_LENGTH} characters")
        return cls(token or None)

    @property
    def enabled(self) -> bool:
        return self._digest is not None

    def check(self, request: Request) -> None:
        """Return if the request carries the token; raise the error to answer with if not."""
        if self._digest is None:
            raise PermissionDenied(
                "The worker's admin endpoints are disabled: start it with an admin token "
                f"(--admin-token-env, default ${DEFAULT_ENV}).",
                code="admin_disabled",
            )
        scheme, _, token = request.headers.get("authorization", "").partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            raise AuthenticationFailed("Missing admin token: send 'Authorization: Bearer <token>'.")
        if not hmac.compare_digest(_digest(token.strip()), self._digest):
            raise AuthenticationFailed("Invalid admin token.")


def _digest(token: str) -> bytes:
    return hashlib.sha256(token.encode()).digest()

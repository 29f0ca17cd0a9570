"""API keys -> tenants. Keys are kept only as SHA-256 hashes, in memory.

Lookup is one hash and one dict probe, so nothing on the request path waits on a
database. (Keys created through the admin API are synchronised into this index in
the background once the store lands.)
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import os
from collections.abc import Mapping
from dataclasses import dataclass, field

from gateway.config import FlywheelConfig, LimitsConfig
from gateway.errors import AuthenticationFailed

log = logging.getLogger("flywheel.auth")


def hash_key(key: str) -> str:
    return hashlib.sha256(key.encode("utf-8")).hexdigest()


@dataclass(frozen=True, slots=True)
class Principal:
    """Who is calling: a tenant and one of its keys, with that key's own limits."""

    tenant: str
    key_id: str  # the key's name, or the first 12 hex digits of its hash
    key_limits: LimitsConfig
    tenant_limits: LimitsConfig


@dataclass
class KeyIndex:
    principals: dict[str, Principal]  # from config, fixed at start
    admin_hash: str | None
    dynamic: dict[str, Principal] = field(default_factory=dict)  # from the store, replaced whole

    @classmethod
    def from_config(cls, config: FlywheelConfig, env: Mapping[str, str] | None = None) -> KeyIndex:
        env = os.environ if env is None else env
        principals: dict[str, Principal] = {}
        for tenant, spec in config.tenants.items():
            hashes = list(spec.api_key_sha256)
            if spec.api_keys_env:
                raw = env.get(spec.api_keys_env, "")
                if not raw:
                    log.warning("tenant %s: env %s is empty: no keys", tenant, spec.api_keys_env)
                hashes += [hash_key(k.strip()) for k in raw.split(",") if k.strip()]
            for digest in hashes:
                principals[digest] = Principal(tenant, digest[:12], LimitsConfig(), spec.limits)
            for key in spec.keys:
                if key.sha256:
                    digest = key.sha256
                elif env.get(key.key_env or ""):
                    digest = hash_key(env[key.key_env or ""])
                else:
                    log.warning("tenant %s key %s: env %s is empty", tenant, key.name, key.key_env)
                    continue
                principals[digest] = Principal(tenant, key.name, key.limits, spec.limits)
        admin_hash = config.admin.api_key_sha256
        if config.admin.api_key_env and env.get(config.admin.api_key_env):
            admin_hash = hash_key(env[config.admin.api_key_env])
        return cls(principals, admin_hash)

    def authenticate(self, authorization: str | None) -> Principal:
        digest = hash_key(_bearer(authorization))
        principal = self.principals.get(digest) or self.dynamic.get(digest)
        if principal is None:
            raise AuthenticationFailed("Incorrect API key provided")
        return principal

    def authenticate_admin(self, authorization: str | None) -> None:
        token = _bearer(authorization)
        if self.admin_hash is None or not hmac.compare_digest(hash_key(token), self.admin_hash):
            raise AuthenticationFailed("Incorrect admin key provided")


def _bearer(authorization: str | None) -> str:
    if not authorization:
        raise AuthenticationFailed(
            "You didn't provide an API key. Send it as 'Authorization: Bearer <key>'",
            code="missing_api_key",
        )
    scheme, _, token = authorization.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise AuthenticationFailed("Malformed Authorization header: expected 'Bearer <key>'")
    return token.strip()

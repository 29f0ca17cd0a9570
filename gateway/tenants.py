"""Tenants from config and from the store (created through the admin API), in one view.

Config tenants are fixed at start; store tenants (hash `tenants`, JSON per tenant:
limits, content_logging, retention_days) and store keys (hash `keys`, field = SHA-256
of the key, JSON {tenant, name, created_at}) arrive through `StoreSync`. A tenant named
in both takes the config's settings.
"""

from __future__ import annotations

import logging

import orjson
from pydantic import ValidationError

from gateway.auth import KeyIndex, Principal
from gateway.config import FlywheelConfig, LimitsConfig, TenantConfig
from gateway.logs import log_event

TENANTS = "tenants"
KEYS = "keys"

log = logging.getLogger("flywheel.tenants")


class TenantDirectory:
    def __init__(self, config: FlywheelConfig, keys: KeyIndex) -> None:
        self._config_tenants = dict(config.tenants)
        self._store_tenants: dict[str, TenantConfig] = {}
        self._store_keys: dict[str, str] = {}
        self._keys = keys

    def get(self, name: str) -> TenantConfig | None:
        return self._config_tenants.get(name) or self._store_tenants.get(name)

    def names(self) -> list[str]:
        return sorted({*self._config_tenants, *self._store_tenants})

    def is_static(self, name: str) -> bool:
        return name in self._config_tenants

    def content_logging(self, name: str) -> bool:
        tenant = self.get(name)
        return tenant.content_logging if tenant is not None else True

    def durable_events(self, name: str) -> bool:
        """Is the tenant's event written to the store before its answer is returned?"""
        tenant = self.get(name)
        return tenant.durable_events if tenant is not None else False

    def on_store_change(self, namespace: str, values: dict[str, str]) -> None:
        if namespace == TENANTS:
            parsed = {}
            for name, raw in values.items():
                try:
                    parsed[name] = TenantConfig.model_validate(orjson.loads(raw))
                except (orjson.JSONDecodeError, ValidationError) as exc:
                    log_event(
                        log,
                        "ignoring malformed tenant",
                        logging.WARNING,
                        tenant=name,
                        error=str(exc),
                    )
            self._store_tenants = parsed
            self._rebuild_keys()
        elif namespace == KEYS:
            self._store_keys = values
            self._rebuild_keys()

    def _rebuild_keys(self) -> None:
        principals: dict[str, Principal] = {}
        for digest, raw in self._store_keys.items():
            try:
                record = orjson.loads(raw)
                tenant = self.get(record["tenant"])
            except (orjson.JSONDecodeError, KeyError, TypeError):
                continue
            if tenant is None:
                continue  # a key of a deleted tenant opens nothing
            principals[digest] = Principal(
                record["tenant"], record.get("name") or digest[:12], LimitsConfig(), tenant.limits
            )
        self._keys.dynamic = principals

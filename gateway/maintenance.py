"""Periodic data governance: per-tenant retention and expiry of orphan feedback.

Runs in every gateway replica; each pass is idempotent, so replicas doing it at once
only repeat harmless deletes.
"""

from __future__ import annotations

import asyncio
import logging
import time

from gateway.config import FlywheelConfig
from gateway.logs import log_event
from gateway.store.base import Store, StoreUnavailable
from gateway.tenants import TenantDirectory

log = logging.getLogger("flywheel.maintenance")

DAY_S = 86_400.0


async def retention_pass(
    store: Store, config: FlywheelConfig, tenants: TenantDirectory, now: float | None = None
) -> dict[str, int]:
    now = time.time() if now is None else now
    deleted: dict[str, int] = {}
    for name in tenants.names():
        tenant = tenants.get(name)
        if tenant is not None and tenant.retention_days is not None:
            deleted[name] = await store.trim_events(name, now - tenant.retention_days * DAY_S)
    deleted["orphan_feedback"] = await store.expire_orphan_feedback(
        now - config.feedback.horizon_days * DAY_S
    )
    return deleted


async def run_maintenance(
    store: Store, config: FlywheelConfig, tenants: TenantDirectory, interval_s: float = 3600.0
) -> None:
    while True:
        try:
            deleted = await retention_pass(store, config, tenants)
            if any(deleted.values()):
                log_event(log, "retention pass", deleted=deleted)
        except StoreUnavailable as exc:
            log_event(
                log, "retention pass skipped: store unreachable", logging.WARNING, error=str(exc)
            )
        await asyncio.sleep(interval_s)

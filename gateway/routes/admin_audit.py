"""The audit trail of admin writes: who changed what, from what to what, and refusals.

Every admin route that changes something records one entry: `action` (`policy.put`,
`flag.set`, ...), the target, the old and the new value, under the actor (the
`x-flywheel-actor` header; `flywheel ctl` sends the operator's name). A write that is
refused (invalid, unknown reference, conflict) is recorded too, as `<action>.refused`
with the error in `new`, so an attempt leaves a trace even though nothing changed.

Entries go to the store's audit log (`GET /admin/audit`, `flywheel ctl audit`) and, as
one structured line each, to the gateway's log; without a store (or while it is down)
the log line is the record.
"""

from __future__ import annotations

import logging
import time

import orjson
from starlette.requests import Request

from gateway.errors import GatewayError
from gateway.logs import log_event
from gateway.state import AppState
from gateway.store.base import AuditEntry, StoreUnavailable

log = logging.getLogger("flywheel.audit")

MAX_VALUE_CHARS = 4000  # an old/new value longer than this is cut (policies: a digest)


def actor_of(request: Request) -> str:
    return request.headers.get("x-flywheel-actor", "admin")[:128]


class AdminAudit:
    def __init__(self, state: AppState) -> None:
        self._state = state

    async def record(
        self, request: Request, action: str, target: str, old: str | None, new: str | None
    ) -> None:
        """A change that was made. Raises StoreUnavailable when the store is down."""
        entry = AuditEntry(time.time(), actor_of(request), action, target, _cut(old), _cut(new))
        _log(entry, "admin change", logging.INFO)
        if self._state.store is not None:
            await self._state.store.audit(entry)

    async def refused(
        self, request: Request, action: str, target: str, error: GatewayError
    ) -> None:
        """A change that was refused; never raises (the refusal is what the caller sees)."""
        reason = orjson.dumps(
            {"status": error.status, "code": error.code, "message": error.message}
        ).decode()
        entry = AuditEntry(
            time.time(), actor_of(request), f"{action}.refused", target, None, _cut(reason)
        )
        _log(entry, "admin change refused", logging.WARNING)
        if self._state.store is None:
            return
        try:
            await self._state.store.audit(entry)
        except StoreUnavailable as exc:
            log_event(log, "audit not stored", logging.WARNING, error=str(exc))


def _cut(value: str | None) -> str | None:
    if value is None or len(value) <= MAX_VALUE_CHARS:
        return value
    return value[:MAX_VALUE_CHARS] + "…"


def _log(entry: AuditEntry, event: str, level: int) -> None:
    log_event(
        log,
        event,
        level,
        actor=entry.actor,
        action=entry.action,
        target=entry.target,
        old=entry.old,
        new=entry.new,
    )

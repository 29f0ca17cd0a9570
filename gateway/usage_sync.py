"""Rate limits and budgets shared across gateway replicas through the store.

Every replica keeps enforcing from memory (nothing on the request path waits on the
store). About once a second each one writes its per-scope usage to the store hash
`usage` under its own id and reads the others', which the limiter adds to its own
counts. Limits are therefore exact within one replica and within about a second of
traffic across replicas. A replica silent for over 10 s is ignored; one that stops
cleanly removes its entry.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import secrets
import time
from typing import Any

import orjson

from gateway.limits import Elsewhere, Limiter
from gateway.logs import log_event
from gateway.store.base import Store, StoreUnavailable

USAGE = "usage"
STALE_S = 10.0
log = logging.getLogger("flywheel.limits")


class UsageSync:
    def __init__(self, store: Store, limiter: Limiter, interval_s: float = 1.0) -> None:
        self._store = store
        self._limiter = limiter
        self._interval = interval_s
        self.replica = "gw-" + secrets.token_hex(6)
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="usage-sync")

    async def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        with contextlib.suppress(StoreUnavailable):
            await self._store.hdel(USAGE, self.replica)

    async def sync_once(self) -> None:
        mine = {"ts": time.time(), "scopes": self._limiter.snapshot()}
        await self._store.hset(USAGE, self.replica, orjson.dumps(mine).decode())
        reports = await self._store.hgetall(USAGE)
        self._limiter.elsewhere = aggregate(reports, self.replica, time.time())

    async def _run(self) -> None:
        while True:
            try:
                await self.sync_once()
            except StoreUnavailable as exc:
                log_event(
                    log, "usage sync skipped: store unreachable", logging.WARNING, error=str(exc)
                )
            await asyncio.sleep(self._interval)


def aggregate(reports: dict[str, str], me: str, now: float) -> dict[tuple[str, str], Elsewhere]:
    """Sum the other replicas' fresh reports per scope."""
    total: dict[tuple[str, str], Elsewhere] = {}
    for replica, raw in reports.items():
        if replica == me:
            continue
        try:
            report: dict[str, Any] = orjson.loads(raw)
        except orjson.JSONDecodeError:
            continue
        if now - float(report.get("ts", 0)) > STALE_S:
            continue
        for key, scope in report.get("scopes", {}).items():
            kind, _, name = key.partition("\x00")
            into = total.setdefault((kind, name), Elsewhere())
            into.requests += int(scope.get("requests", 0))
            into.tokens += int(scope.get("tokens", 0))
            day, month = int(scope.get("day", -1)), tuple(scope.get("month", (0, 0)))
            if day >= into.day:
                into.day_usd = (into.day_usd if day == into.day else 0.0) + float(
                    scope.get("day_usd", 0.0)
                )
                into.day = day
            if month >= into.month:
                into.month_usd = (into.month_usd if month == into.month else 0.0) + float(
                    scope.get("month_usd", 0.0)
                )
                into.month = (int(month[0]), int(month[1]))
    return total

"""Each process's replica of the store's small hashes (flags, kill switches, keys...).

Readers on the request path only touch this in-memory copy. It is refreshed by the
store's change notices (pub/sub on Redis, a polled change log on SQLite) as they
happen, and by a full reload every `poll_s` as the safety net, so a change reaches
every replica within a second. If the store is unreachable the last known values are
kept; `known(namespace)` says whether any value was ever loaded, so callers can take
the safe side until then.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable

from gateway.logs import log_event
from gateway.store.base import Store, StoreUnavailable

log = logging.getLogger("flywheel.sync")

Listener = Callable[[str, dict[str, str]], None]


class StoreSync:
    def __init__(self, store: Store, namespaces: tuple[str, ...], poll_s: float = 1.0) -> None:
        self._store = store
        self._namespaces = namespaces
        self._poll_s = poll_s
        self._values: dict[str, dict[str, str]] = {}
        self._listeners: list[Listener] = []
        self._tasks: list[asyncio.Task[None]] = []
        self.last_sync: float | None = None  # monotonic time of the last full reload

    def get(self, namespace: str) -> dict[str, str]:
        return self._values.get(namespace, {})

    def known(self, namespace: str) -> bool:
        return namespace in self._values

    def on_change(self, listener: Listener) -> None:
        """Call `listener(namespace, values)` whenever a namespace's values change."""
        self._listeners.append(listener)

    async def start(self, initial_timeout_s: float = 2.0) -> None:
        try:
            await asyncio.wait_for(self.reload_all(), initial_timeout_s)
        except (TimeoutError, StoreUnavailable) as exc:
            log_event(
                log,
                "store unreachable at start: safe defaults",
                logging.WARNING,
                error=str(exc) or type(exc).__name__,
            )
        self._tasks = [
            asyncio.create_task(self._follow_changes(), name="store-sync-changes"),
            asyncio.create_task(self._poll(), name="store-sync-poll"),
        ]

    async def close(self) -> None:
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task

    async def reload_all(self) -> None:
        for namespace in self._namespaces:
            await self.reload(namespace)
        self.last_sync = time.monotonic()

    async def reload(self, namespace: str) -> None:
        values = await self._store.hgetall(namespace)
        if self._values.get(namespace) != values:
            self._values[namespace] = values
            for listener in self._listeners:
                listener(namespace, values)

    async def _follow_changes(self) -> None:
        while True:
            try:
                async for change in self._store.changes():
                    if change.namespace in self._namespaces:
                        await self.reload(change.namespace)
            except StoreUnavailable:
                pass
            await asyncio.sleep(self._poll_s)  # the store closed or failed: resubscribe

    async def _poll(self) -> None:
        failing = False
        while True:
            await asyncio.sleep(self._poll_s)
            try:
                await self.reload_all()
                if failing:
                    log_event(log, "store reachable again")
                failing = False
            except StoreUnavailable as exc:
                if not failing:
                    log_event(
                        log,
                        "store unreachable: keeping last known values",
                        logging.WARNING,
                        error=str(exc),
                    )
                failing = True

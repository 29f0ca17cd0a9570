"""Fire-and-forget interaction logging: a bounded in-memory queue flushed in batches.

`EventLog.publish(event)` never blocks and never fails a request. A background task
flushes batches (by size or every `flush_interval_ms`) to the store. If the store is
down, events stay queued and the flush retries with backoff; when the queue is full,
the oldest events are dropped and counted. Delivery is at least once: a batch that
failed half-way is sent again, and the store ignores request ids it already has.
"""

from __future__ import annotations

import asyncio
import logging
from collections import deque
from dataclasses import dataclass

from prometheus_client import CollectorRegistry, Counter, Gauge

from gateway.events import InteractionEvent
from gateway.logs import log_event
from gateway.store.base import Store, StoreUnavailable

log = logging.getLogger("flywheel.events")


@dataclass(frozen=True)
class EventLogSettings:
    queue_size: int = 10_000
    batch_size: int = 64
    flush_interval_ms: float = 100.0
    retry_max_s: float = 2.0


class EventLogMetrics:
    def __init__(self, registry: CollectorRegistry) -> None:
        self.published = Counter(
            "flywheel_events_published_total", "Events queued for the store", registry=registry
        )
        self.written = Counter(
            "flywheel_events_written_total", "Events the store accepted", registry=registry
        )
        self.dropped = Counter(
            "flywheel_events_dropped_total",
            "Events dropped because the queue was full",
            registry=registry,
        )
        self.flush_errors = Counter(
            "flywheel_events_flush_errors_total",
            "Failed flushes (store unreachable)",
            registry=registry,
        )
        self.queued = Gauge(
            "flywheel_events_queued",
            "Events waiting in the queue",
            registry=registry,
            multiprocess_mode="livesum",
        )


class EventLog:
    def __init__(self, store: Store, settings: EventLogSettings, metrics: EventLogMetrics) -> None:
        self._store = store
        self._settings = settings
        self._metrics = metrics
        self._queue: deque[InteractionEvent] = deque()
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._closing = False
        self.dropped = 0

    def publish(self, event: InteractionEvent) -> None:
        """Queue one event; drop the oldest if full. O(1), never raises, never waits."""
        if len(self._queue) >= self._settings.queue_size:
            self._queue.popleft()
            self.dropped += 1
            self._metrics.dropped.inc()
        self._queue.append(event)
        self._metrics.published.inc()
        if len(self._queue) >= self._settings.batch_size:
            self._wake.set()

    @property
    def pending(self) -> int:
        return len(self._queue)

    def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="event-log-flush")

    async def close(self, timeout_s: float = 5.0) -> None:
        """Flush what is queued (bounded by `timeout_s`), then stop."""
        self._closing = True
        self._wake.set()
        if self._task is not None:
            try:
                await asyncio.wait_for(self._task, timeout_s)
            except TimeoutError:
                log_event(
                    log,
                    "event log closed with events unflushed",
                    logging.WARNING,
                    pending=len(self._queue),
                )

    async def _run(self) -> None:
        interval = self._settings.flush_interval_ms / 1000
        backoff = 0.0
        while True:
            if not self._queue and self._closing:
                return
            if backoff:
                await asyncio.sleep(backoff)
            elif len(self._queue) < self._settings.batch_size and not self._closing:
                try:
                    await asyncio.wait_for(self._wake.wait(), interval)
                except TimeoutError:
                    pass
            self._wake.clear()
            ok = await self._flush_once()
            if ok:
                backoff = 0.0
            elif self._closing:
                return  # the store is down at shutdown: what is queued is lost, and logged
            else:
                backoff = min(self._settings.retry_max_s, max(0.05, backoff * 2))
            self._metrics.queued.set(len(self._queue))

    async def _flush_once(self) -> bool:
        while self._queue:
            batch = [
                self._queue[i] for i in range(min(self._settings.batch_size, len(self._queue)))
            ]
            try:
                await self._store.put_events(batch)
            except StoreUnavailable as exc:
                self._metrics.flush_errors.inc()
                log_event(
                    log,
                    "event flush failed",
                    logging.WARNING,
                    error=str(exc),
                    pending=len(self._queue),
                )
                return False
            # Only now remove them: the queue may have dropped some of the oldest
            # meanwhile, so remove by identity from the left.
            sent = {id(e) for e in batch}
            while self._queue and id(self._queue[0]) in sent:
                self._queue.popleft()
            self._metrics.written.inc(len(batch))
            if not self._closing and len(self._queue) < self._settings.batch_size:
                return True
        return True

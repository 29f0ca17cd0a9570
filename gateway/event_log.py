"""Fire-and-forget interaction logging: a bounded in-memory queue flushed in batches.

`EventLog.publish(event)` never blocks and never fails a request. A background task
flushes batches (by size or every `flush_interval_ms`) to the store. If the store is
down, events stay queued and the flush retries with backoff; when the queue is full,
the oldest events are dropped and counted. Delivery is at least once: a batch that
failed half-way is sent again, and the store ignores request ids it already has.

Loss window: by default an event is in memory until the next flush (every
`flush_interval_ms`, 100 ms, or sooner when `batch_size` events wait), so a SIGKILL
loses what was queued in that window (SIGTERM flushes first). A tenant with
`durable_events: true` closes the window: its request's event is flushed at once and the
request waits (`written`) until the store has it before its answer is returned, at most
`durable_timeout_ms` (a store outage still never fails a request: the event stays queued).

The loop also flushes the feedback that `POST /v1/feedback` buffered while the store was
down (gateway/feedback_buffer.py), after the events. `queued_tenant` tells the feedback
route whose event a request id is while that event still waits here, so feedback from
another tenant is refused before the event reaches the store.
"""

from __future__ import annotations

import asyncio
import logging
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field

from prometheus_client import CollectorRegistry, Counter, Gauge

from gateway.config import FlywheelConfig
from gateway.events import Feedback, InteractionEvent
from gateway.feedback_buffer import FeedbackBuffer, FeedbackBufferSettings
from gateway.logs import log_event
from gateway.store.base import Store, StoreUnavailable

log = logging.getLogger("flywheel.events")


@dataclass(frozen=True)
class EventLogSettings:
    queue_size: int = 10_000
    batch_size: int = 64
    flush_interval_ms: float = 100.0
    retry_max_s: float = 2.0
    durable_timeout_ms: float = 1000.0
    feedback: FeedbackBufferSettings = field(default_factory=FeedbackBufferSettings)

    @classmethod
    def from_config(cls, config: FlywheelConfig) -> EventLogSettings:
        events, feedback = config.events, config.feedback
        return cls(
            queue_size=events.queue_size,
            batch_size=events.batch_size,
            flush_interval_ms=events.flush_interval_ms,
            durable_timeout_ms=events.durable_timeout_ms,
            feedback=FeedbackBufferSettings(feedback.buffer_size, feedback.buffer_bytes),
        )


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
        self.durable_late = Counter(
            "flywheel_events_durable_late_total",
            "Durable events not in the store when their answer went (store down or slow)",
            registry=registry,
        )
        self.feedback_buffered = Gauge(
            "flywheel_feedback_buffered",
            "Feedback waiting for the store to come back",
            registry=registry,
            multiprocess_mode="livesum",
        )


class EventLog:
    def __init__(
        self,
        store: Store,
        settings: EventLogSettings,
        metrics: EventLogMetrics,
        durable: Callable[[str], bool] = lambda tenant: False,
    ) -> None:
        self._store = store
        self._settings = settings
        self._metrics = metrics
        self._durable = durable  # tenant -> are its events written before the answer?
        self._queue: deque[InteractionEvent] = deque()
        self._tenants: dict[str, str] = {}  # request id -> tenant, for queued events
        self._barriers: dict[str, asyncio.Future[bool]] = {}  # durable events in flight
        self.feedback = FeedbackBuffer(settings.feedback)
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._closing = False
        self.dropped = 0

    def publish(self, event: InteractionEvent) -> None:
        """Queue one event; drop the oldest if full. O(1), never raises, never waits.
        A durable tenant's event is flushed at once; `written` awaits it."""
        if len(self._queue) >= self._settings.queue_size:
            self._forget(self._queue.popleft(), written=False)
            self.dropped += 1
            self._metrics.dropped.inc()
        self._queue.append(event)
        self._tenants[event.request_id] = event.tenant
        self._metrics.published.inc()
        if self._durable(event.tenant):
            self._barriers[event.request_id] = asyncio.get_running_loop().create_future()
            self._wake.set()
        elif len(self._queue) >= self._settings.batch_size:
            self._wake.set()

    async def written(self, request_id: str) -> bool:
        """For a durable tenant's event: wait until the store has it (True), at most
        `durable_timeout_ms` (False: it stays queued). Any other request: True at once."""
        barrier = self._barriers.get(request_id)
        if barrier is None:
            return True
        try:
            done = await asyncio.wait_for(
                asyncio.shield(barrier), self._settings.durable_timeout_ms / 1000
            )
        except TimeoutError:
            done = False
        if not done:
            self._metrics.durable_late.inc()
        return done

    def queued_tenant(self, request_id: str) -> str | None:
        """The tenant of a request whose event is still queued here (not yet stored)."""
        return self._tenants.get(request_id)

    def buffer_feedback(self, feedback: Feedback) -> bool:
        """Keep feedback the store could not take now; False when the buffer is full."""
        kept = self.feedback.offer(feedback)
        self._metrics.feedback_buffered.set(len(self.feedback))
        return kept

    @property
    def pending(self) -> int:
        return len(self._queue)

    def _forget(self, event: InteractionEvent, *, written: bool) -> None:
        """`event` left the queue: written to the store, or dropped."""
        self._tenants.pop(event.request_id, None)
        barrier = self._barriers.pop(event.request_id, None)
        if barrier is not None and not barrier.done():
            barrier.set_result(written)

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
                    feedback=len(self.feedback),
                )

    async def _run(self) -> None:
        interval = self._settings.flush_interval_ms / 1000
        backoff = 0.0
        while True:
            if not self._queue and not len(self.feedback) and self._closing:
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
            if ok and len(self.feedback):  # after the events, which it may rate
                ok = await self.feedback.flush(self._store)
                self._metrics.feedback_buffered.set(len(self.feedback))
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
                self._forget(self._queue.popleft(), written=True)
            self._metrics.written.inc(len(batch))
            if not self._closing and len(self._queue) < self._settings.batch_size:
                return True
        return True

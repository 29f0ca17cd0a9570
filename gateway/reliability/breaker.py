"""A per-model circuit breaker: closed -> open after N consecutive failures ->
half-open after a cooldown (one probe at a time) -> closed on the probe's success.

While open, the dispatcher skips the model without calling it, so an outage costs
users no repeated failed attempts. Time comes from an injected clock for tests.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from enum import IntEnum


class BreakerState(IntEnum):
    CLOSED = 0
    HALF_OPEN = 1
    OPEN = 2


@dataclass
class CircuitBreaker:
    failure_threshold: int
    cooldown_s: float
    clock: Callable[[], float] = time.monotonic
    on_change: Callable[[BreakerState], None] | None = None
    state: BreakerState = field(default=BreakerState.CLOSED, init=False)
    failures: int = field(default=0, init=False)
    opened_at: float = field(default=0.0, init=False)
    probe_in_flight: bool = field(default=False, init=False)

    def allow(self) -> bool:
        """May a request go to this model now? Claims the half-open probe if so."""
        if self.state is BreakerState.CLOSED:
            return True
        if self.state is BreakerState.OPEN:
            if self.clock() - self.opened_at < self.cooldown_s:
                return False
            self._set(BreakerState.HALF_OPEN)
        if self.probe_in_flight:
            return False
        self.probe_in_flight = True
        return True

    def record_success(self) -> None:
        self.failures = 0
        self.probe_in_flight = False
        if self.state is not BreakerState.CLOSED:
            self._set(BreakerState.CLOSED)

    def record_failure(self) -> None:
        self.failures += 1
        self.probe_in_flight = False
        if self.state is BreakerState.HALF_OPEN or self.failures >= self.failure_threshold:
            self.opened_at = self.clock()
            self._set(BreakerState.OPEN)

    def release(self) -> None:
        """The claimed call ended with neither verdict (e.g. the client went away)."""
        self.probe_in_flight = False

    def retry_in_s(self) -> float:
        if self.state is not BreakerState.OPEN:
            return 0.0
        return max(0.0, self.cooldown_s - (self.clock() - self.opened_at))

    def _set(self, state: BreakerState) -> None:
        self.state = state
        if self.on_change is not None:
            self.on_change(state)

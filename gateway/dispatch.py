"""Send one request along a chain of models: retries, circuit breakers, fallbacks.

For each model in the chain: skip it while its breaker is open (an outage costs
users no repeated failed attempts) or when an earlier model said the prompt does not
fit and this one's window is no larger; otherwise try it, retrying the same model
with exponential backoff and jitter on connect errors, timeouts, 429 (honouring
Retry-After) and 5xx, then move on. A request the upstream refuses as the caller's
fault (4xx) is returned at once. `Trace` records what happened for headers, metrics,
logs and the interaction event.
"""

from __future__ import annotations

import asyncio
import random
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import TypeVar

from gateway.catalog import ModelRoute
from gateway.errors import (
    ContextLengthExceeded,
    DeadlineExceeded,
    NoRouteAvailable,
    UpstreamContextLengthExceeded,
    UpstreamError,
    UpstreamRejected,
)
from gateway.metrics import GatewayMetrics
from gateway.providers.base import CallOptions
from gateway.reliability.backoff import backoff_delay_s
from gateway.reliability.breaker import BreakerState

T = TypeVar("T")
Attempt = Callable[[ModelRoute, CallOptions], Awaitable[T]]


@dataclass(slots=True)
class Trace:
    """What the dispatcher did for one request."""

    request_id: str
    attempts: int = 0
    fallbacks: int = 0
    upstream_s: float = 0.0
    route: ModelRoute | None = None
    errors: list[str] = field(default_factory=list)
    deadline: float | None = None  # perf_counter time by which the answer must start (SLA)

    def attempt_timeout(self, route: ModelRoute) -> float | None:
        """The model's per-attempt timeout, cut to what is left of the SLA deadline."""
        if self.deadline is None:
            return route.timeout_s
        left = self.deadline - time.perf_counter()
        if left <= 0:
            raise DeadlineExceeded("the request's SLA deadline passed")
        return left if route.timeout_s is None else min(left, route.timeout_s)


class Dispatcher:
    def __init__(
        self,
        metrics: GatewayMetrics,
        rng: random.Random | None = None,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    ) -> None:
        self._metrics = metrics
        self._rng = rng or random.Random()
        self._sleep = sleep

    async def run(self, chain: tuple[ModelRoute, ...], attempt: Attempt[T], trace: Trace) -> T:
        last_error: UpstreamError | None = None
        too_small: int | None = None  # a window the prompt is known not to fit
        for index, route in enumerate(chain):
            trace.fallbacks = index
            if index:
                reason = _reason(last_error) if last_error else "skipped"
                self._metrics.fallbacks.labels(chain[index - 1].name, reason).inc()
            if (
                too_small is not None
                and (route.context_window or 0)
                and ((route.context_window or 0) <= too_small)
            ):
                continue
            if not route.breaker.allow():
                trace.errors.append(f"{route.name}: circuit open")
                continue
            try:
                result = await self._try_model(route, attempt, trace)
            except UpstreamContextLengthExceeded as exc:
                last_error = exc
                too_small = route.context_window or 0
                continue
            except UpstreamRejected:
                raise
            except UpstreamError as exc:
                last_error = exc
                continue
            trace.route = route
            return result
        raise _final_error(chain, last_error, trace)

    async def _try_model(self, route: ModelRoute, attempt: Attempt[T], trace: Trace) -> T:
        retry = route.retry
        for number in range(retry.attempts + 1):
            trace.attempts += 1
            started = time.perf_counter()
            try:
                options = CallOptions(
                    timeout_s=trace.attempt_timeout(route), request_id=trace.request_id
                )
                result = await attempt(route, options)
            except DeadlineExceeded as exc:
                trace.errors.append(f"{route.name}: {exc.code}")
                route.breaker.release()
                raise
            except UpstreamRejected as exc:
                trace.upstream_s += time.perf_counter() - started
                route.breaker.record_success()  # it answered: healthy, just unwilling
                trace.errors.append(f"{route.name}: {exc.code}")
                raise
            except UpstreamError as exc:
                trace.upstream_s += time.perf_counter() - started
                route.breaker.record_failure()
                kind = _reason(exc)
                trace.errors.append(f"{route.name}: {kind}")
                self._metrics.upstream_errors.labels(route.name, kind).inc()
                if (
                    not exc.retry_same_model
                    or number == retry.attempts
                    or route.breaker.state is BreakerState.OPEN
                ):
                    raise
                delay = backoff_delay_s(retry, number + 1, exc.retry_after_s, self._rng)
                if delay is None:
                    raise
                self._metrics.retries.labels(route.name, kind).inc()
                await self._sleep(delay)
                if not route.breaker.allow():
                    raise
            except BaseException:
                route.breaker.release()
                raise
            else:
                trace.upstream_s += time.perf_counter() - started
                route.breaker.record_success()
                return result
        raise AssertionError("unreachable: the loop returns or raises")


def _reason(error: UpstreamError) -> str:
    if error.upstream_status:
        return str(error.upstream_status)
    return error.code or type(error).__name__


def _final_error(
    chain: tuple[ModelRoute, ...], last_error: UpstreamError | None, trace: Trace
) -> Exception:
    if isinstance(last_error, UpstreamContextLengthExceeded):
        return ContextLengthExceeded(
            "The prompt is longer than the context window of every model this request may use"
            f" ({', '.join(r.name for r in chain)})",
            param="messages",
        )
    if last_error is not None:
        return last_error
    retry_in = min((r.breaker.retry_in_s() for r in chain), default=0.0)
    error = NoRouteAvailable(
        "No model is available for this request right now: "
        + ("; ".join(trace.errors) or "the chain is empty"),
        retry_after_s=retry_in or None,
    )
    return error

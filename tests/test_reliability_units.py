"""Pure logic: circuit breaker, backoff, fallback chains, SSE splitting."""

from __future__ import annotations

import random
from collections.abc import AsyncIterator

from gateway.catalog import fallback_chain
from gateway.config import RetryConfig
from gateway.providers.sse import event_data, iter_event_batches
from gateway.reliability.backoff import backoff_delay_s
from gateway.reliability.breaker import BreakerState, CircuitBreaker


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_breaker_opens_after_threshold_and_probes_after_cooldown() -> None:
    clock = Clock()
    changes: list[BreakerState] = []
    breaker = CircuitBreaker(
        failure_threshold=3, cooldown_s=10, clock=clock, on_change=changes.append
    )
    for _ in range(2):
        assert breaker.allow()
        breaker.record_failure()
    assert breaker.state is BreakerState.CLOSED
    breaker.record_failure()
    assert breaker.state is BreakerState.OPEN and not breaker.allow()
    assert breaker.retry_in_s() == 10
    clock.now += 10
    assert breaker.allow()  # the half-open probe
    assert breaker.state is BreakerState.HALF_OPEN
    assert not breaker.allow()  # only one probe at a time
    breaker.record_success()
    assert breaker.state is BreakerState.CLOSED and breaker.allow()
    assert changes == [BreakerState.OPEN, BreakerState.HALF_OPEN, BreakerState.CLOSED]


def test_failed_probe_reopens_for_a_full_cooldown() -> None:
    clock = Clock()
    breaker = CircuitBreaker(failure_threshold=1, cooldown_s=5, clock=clock)
    breaker.record_failure()
    clock.now += 5
    assert breaker.allow()
    breaker.record_failure()
    assert breaker.state is BreakerState.OPEN and breaker.retry_in_s() == 5


def test_success_resets_the_consecutive_count() -> None:
    breaker = CircuitBreaker(failure_threshold=2, cooldown_s=5)
    breaker.record_failure()
    breaker.record_success()
    breaker.record_failure()
    assert breaker.state is BreakerState.CLOSED


def test_backoff_grows_with_jitter_and_honours_retry_after() -> None:
    retry = RetryConfig(attempts=3, backoff_base_ms=100, backoff_max_ms=300, retry_after_max_s=2)
    rng = random.Random(1)
    delays = [backoff_delay_s(retry, n, None, rng) for n in (1, 2, 3, 4)]
    assert all(d is not None for d in delays)
    assert all(0 <= d <= c for d, c in zip(delays, (0.1, 0.2, 0.3, 0.3), strict=True))  # type: ignore[operator]
    assert backoff_delay_s(retry, 1, 1.5, rng) == 1.5
    assert backoff_delay_s(retry, 1, 30, rng) is None  # too long: move on instead


def test_fallback_chain_is_transitive_deduplicated_and_bounded() -> None:
    graph = {"a": ["b", "c"], "b": ["d", "a"], "c": ["d"], "d": []}
    assert fallback_chain("a", graph.__getitem__, 8) == ["a", "b", "d", "c"]
    assert fallback_chain("a", graph.__getitem__, 2) == ["a", "b"]


async def _chunks(*parts: bytes) -> AsyncIterator[bytes]:
    for part in parts:
        yield part


async def test_sse_events_split_across_reads_and_crlf() -> None:
    stream = _chunks(b'data: {"a"', b": 1}\n\ndata: [DO", b"NE]\r\n\r\n", b": keep-alive\n\n")
    batches = [b async for b in iter_event_batches(stream)]
    # one batch per read that completed events; none held back for a later read
    assert batches == [[b'data: {"a": 1}\n\n'], [b"data: [DONE]\n\n"], [b": keep-alive\n\n"]]
    events = [e for b in batches for e in b]
    assert event_data(events[0]) == b'{"a": 1}'
    assert event_data(events[2]) is None


async def test_events_of_one_read_form_one_batch() -> None:
    stream = _chunks(b"data: 1\n\ndata: 2\n\ndata: 3", b"\n\n")
    assert [b async for b in iter_event_batches(stream)] == [
        [b"data: 1\n\n", b"data: 2\n\n"],
        [b"data: 3\n\n"],
    ]

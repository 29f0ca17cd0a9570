"""Timing a function in-process: the one helper the micro-benchmarks share."""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable


def timed(fn: Callable[[], object], iterations: int, warmup: int = 10) -> dict[str, float]:
    """p50 / p99 of `fn`'s wall time in milliseconds over `iterations` calls."""
    for _ in range(warmup):
        fn()
    samples = []
    for _ in range(iterations):
        started = time.perf_counter()
        fn()
        samples.append((time.perf_counter() - started) * 1000)
    samples.sort()
    return {
        "p50_ms": round(statistics.median(samples), 4),
        "p99_ms": round(samples[min(len(samples) - 1, int(len(samples) * 0.99))], 4),
        "n": iterations,
    }

"""Exponential backoff with full jitter, honouring an upstream's Retry-After."""

from __future__ import annotations

import random

from gateway.config import RetryConfig


def backoff_delay_s(
    retry: RetryConfig, attempt: int, retry_after_s: float | None, rng: random.Random
) -> float | None:
    """Seconds to wait before retry number `attempt` (1-based), or None to stop waiting.

    A Retry-After above `retry_after_max_s` returns None: moving on to the next model
    beats holding the user that long.
    """
    if retry_after_s is not None:
        if retry_after_s > retry.retry_after_max_s:
            return None
        return retry_after_s
    ceiling = min(retry.backoff_max_ms, retry.backoff_base_ms * (2 ** (attempt - 1)))
    return rng.uniform(0.0, ceiling) / 1000.0

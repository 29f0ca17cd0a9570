"""Per-tenant limits on `POST /v1/feedback`: posts and bytes in any 60 s.

Feedback is cheap to send and is stored (and redacted, and learned from), so without a
bound one key can fill the store with orphans. The same exact sliding windows as the
request limits (gateway/limits.py): the Nth post in any 60 s passes, the N+1th is a 429
with Retry-After until the oldest leaves the window; bytes are counted in one-second
buckets. A refused post is not counted.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field

from gateway.errors import RateLimited
from gateway.limits import RequestWindow, TokenWindow


@dataclass(frozen=True, slots=True)
class FeedbackLimits:
    posts_per_minute: int = 600
    bytes_per_minute: int = 2_097_152


@dataclass
class _TenantWindows:
    posts: RequestWindow = field(default_factory=RequestWindow)
    bytes: TokenWindow = field(default_factory=TokenWindow)


class FeedbackLimiter:
    def __init__(self, limits: FeedbackLimits, clock: Callable[[], float] = time.monotonic) -> None:
        self._limits = limits
        self._clock = clock
        self._tenants: dict[str, _TenantWindows] = {}  # authenticated tenants only

    def admit(self, tenant: str, size: int) -> None:
        """Count one post of `size` bytes, or raise RateLimited (nothing counted)."""
        now = self._clock()
        windows = self._tenants.get(tenant)
        if windows is None:
            windows = self._tenants[tenant] = _TenantWindows()
        limits = self._limits
        if windows.posts.used(now) >= limits.posts_per_minute:
            raise RateLimited(
                f"Feedback rate limit reached: {limits.posts_per_minute} posts per minute"
                " for this tenant",
                retry_after_s=windows.posts.retry_after(now),
                code="feedback_rate_limit_exceeded",
            )
        if windows.bytes.used(now) + size > limits.bytes_per_minute:
            raise RateLimited(
                f"Feedback rate limit reached: {limits.bytes_per_minute} bytes per minute"
                " for this tenant",
                retry_after_s=windows.bytes.retry_after(now, limits.bytes_per_minute, size),
                code="feedback_rate_limit_exceeded",
            )
        windows.posts.add(now)
        windows.bytes.add(now, size)

"""Per-tenant and per-key rate limits and spend budgets, enforced in memory.

Requests/min and tokens/min are sliding 60 s windows (exact: the Nth request in any
60 s passes, the N+1th is refused until the oldest leaves the window). Spend budgets
are per UTC day and month. A request must pass both its key's and its tenant's limits,
so the tightest one applies. State is per process for now; it is shared across
replicas through the store once that lands.
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

from gateway.auth import Principal
from gateway.config import LimitsConfig
from gateway.errors import RateLimited

WINDOW_S = 60.0


@dataclass
class SlidingWindow:
    """Amounts recorded with timestamps; `used()` sums those younger than the window."""

    entries: deque[tuple[float, int]] = field(default_factory=deque)
    total: int = 0

    def used(self, now: float) -> int:
        horizon = now - WINDOW_S
        while self.entries and self.entries[0][0] <= horizon:
            self.total -= self.entries.popleft()[1]
        return self.total

    def add(self, now: float, amount: int) -> None:
        if amount:
            self.entries.append((now, amount))
            self.total += amount

    def seconds_until_below(self, now: float, limit: int, need: int) -> float:
        """How long until `need` more fits under `limit`."""
        excess = self.total + need - limit
        for stamp, amount in self.entries:
            excess -= amount
            if excess <= 0:
                return max(0.0, stamp + WINDOW_S - now)
        return WINDOW_S


@dataclass
class Spend:
    day: str = ""
    day_usd: float = 0.0
    month: str = ""
    month_usd: float = 0.0

    def roll(self, now: datetime) -> None:
        day, month = now.strftime("%Y-%m-%d"), now.strftime("%Y-%m")
        if day != self.day:
            self.day, self.day_usd = day, 0.0
        if month != self.month:
            self.month, self.month_usd = month, 0.0


@dataclass
class Usage:
    """One scope's (a tenant's or a key's) live counters."""

    requests: SlidingWindow = field(default_factory=SlidingWindow)
    tokens: SlidingWindow = field(default_factory=SlidingWindow)
    spend: Spend = field(default_factory=Spend)


@dataclass(frozen=True, slots=True)
class Admission:
    """What `admit` recorded, for `settle` to correct with the real token count."""

    principal: Principal
    reserved_tokens: int
    at: float


class Limiter:
    def __init__(
        self,
        clock: Callable[[], float] = time.monotonic,
        wall: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self._clock = clock
        self._wall = wall
        self._usage: dict[tuple[str, str], Usage] = {}

    def usage(self, scope: str, name: str) -> Usage:
        usage = self._usage.get((scope, name))
        if usage is None:
            usage = self._usage[(scope, name)] = Usage()
        return usage

    def admit(self, principal: Principal, estimated_tokens: int) -> Admission:
        """Refuse with 429 (and Retry-After) if any limit is reached, else count it."""
        now, wall = self._clock(), self._wall()
        scopes = (
            ("key", f"{principal.tenant}/{principal.key_id}", principal.key_limits),
            ("tenant", principal.tenant, principal.tenant_limits),
        )
        for scope, name, limits in scopes:
            self._check(scope, name, limits, self.usage(scope, name), now, wall, estimated_tokens)
        for scope, name, _ in scopes:
            usage = self.usage(scope, name)
            usage.requests.add(now, 1)
            usage.tokens.add(now, estimated_tokens)
        return Admission(principal, estimated_tokens, now)

    def settle(self, admission: Admission, tokens: int, cost_usd: float) -> None:
        """Replace the reservation with the tokens really used; add the spend."""
        principal = admission.principal
        wall = self._wall()
        for scope, name in (
            ("key", f"{principal.tenant}/{principal.key_id}"),
            ("tenant", principal.tenant),
        ):
            usage = self.usage(scope, name)
            usage.tokens.add(admission.at, tokens - admission.reserved_tokens)
            usage.spend.roll(wall)
            usage.spend.day_usd += cost_usd
            usage.spend.month_usd += cost_usd

    def _check(
        self,
        scope: str,
        name: str,
        limits: LimitsConfig,
        usage: Usage,
        now: float,
        wall: datetime,
        tokens: int,
    ) -> None:
        rpm = limits.requests_per_minute
        if rpm is not None and usage.requests.used(now) + 1 > rpm:
            raise RateLimited(
                f"Rate limit reached for {scope} '{name}': {rpm} requests per minute",
                retry_after_s=usage.requests.seconds_until_below(now, rpm, 1),
                code="requests_per_minute",
            )
        tpm = limits.tokens_per_minute
        if tpm is not None and usage.tokens.used(now) + tokens > tpm:
            raise RateLimited(
                f"Rate limit reached for {scope} '{name}': {tpm} tokens per minute",
                retry_after_s=usage.tokens.seconds_until_below(now, tpm, min(tokens, tpm)),
                code="tokens_per_minute",
            )
        usage.spend.roll(wall)
        if limits.usd_per_day is not None and usage.spend.day_usd >= limits.usd_per_day:
            raise RateLimited(
                f"Daily budget of ${limits.usd_per_day:g} reached for {scope} '{name}'",
                retry_after_s=_seconds_to_next_day(wall),
                code="budget_exceeded",
            )
        if limits.usd_per_month is not None and usage.spend.month_usd >= limits.usd_per_month:
            raise RateLimited(
                f"Monthly budget of ${limits.usd_per_month:g} reached for {scope} '{name}'",
                retry_after_s=_seconds_to_next_month(wall),
                code="budget_exceeded",
            )


def _seconds_to_next_day(now: datetime) -> float:
    tomorrow = (now + timedelta(days=1)).replace(hour=0, minute=0, second=0, microsecond=0)
    return (tomorrow - now).total_seconds()


def _seconds_to_next_month(now: datetime) -> float:
    first = now.replace(day=1, hour=0, minute=0, second=0, microsecond=0)
    following = (first + timedelta(days=32)).replace(day=1)
    return (following - now).total_seconds()

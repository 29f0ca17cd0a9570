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
from contextlib import suppress
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

from gateway.auth import Principal
from gateway.config import LimitsConfig
from gateway.errors import RateLimited

WINDOW_S = 60.0
DAY_S = 86_400


@dataclass
class RequestWindow:
    """Timestamps of the requests admitted in the last 60 s: exact, and never longer
    than the limit (a refused request is not recorded)."""

    stamps: deque[float] = field(default_factory=deque)

    def used(self, now: float) -> int:
        horizon = now - WINDOW_S
        stamps = self.stamps
        while stamps and stamps[0] <= horizon:
            stamps.popleft()
        return len(stamps)

    def add(self, now: float) -> None:
        self.stamps.append(now)

    def retry_after(self, now: float) -> float:
        return max(0.0, self.stamps[0] + WINDOW_S - now) if self.stamps else 0.0


@dataclass
class TokenWindow:
    """Tokens in the last 60 s, in one-second buckets: bounded memory whatever the rate;
    a bucket leaves the window whole, at most a second late."""

    buckets: deque[list[int]] = field(default_factory=deque)  # [second, tokens]
    total: int = 0

    def used(self, now: float) -> int:
        horizon = int(now) - int(WINDOW_S)
        buckets = self.buckets
        while buckets and buckets[0][0] <= horizon:
            self.total -= buckets.popleft()[1]
        return self.total

    def add(self, at: float, amount: int) -> None:
        second = int(at)
        buckets = self.buckets
        if buckets and buckets[-1][0] == second:
            buckets[-1][1] += amount
        else:
            for bucket in reversed(buckets):  # a correction for an earlier second
                if bucket[0] == second:
                    bucket[1] += amount
                    break
            else:
                buckets.append([second, amount])
        self.total += amount

    def retry_after(self, now: float, limit: int, need: int) -> float:
        """How long until `need` more fits under `limit`."""
        excess = self.total + need - limit
        for second, amount in self.buckets:
            excess -= amount
            if excess <= 0:
                return max(0.0, second + 1 + WINDOW_S - now)
        return WINDOW_S


@dataclass
class Spend:
    """USD spent in the current UTC day and month (keys compared as integers)."""

    day: int = -1
    day_usd: float = 0.0
    month: tuple[int, int] = (0, 0)
    month_usd: float = 0.0

    def roll(self, wall: float) -> None:
        day = int(wall // DAY_S)
        if day == self.day:
            return
        self.day, self.day_usd = day, 0.0
        now = datetime.fromtimestamp(wall, UTC)
        if (now.year, now.month) != self.month:
            self.month, self.month_usd = (now.year, now.month), 0.0


@dataclass
class Usage:
    """One scope's (a tenant's or a key's) live counters. Windows record only when a
    limit of their kind applies, so an unlimited scope costs nothing per request."""

    requests: RequestWindow = field(default_factory=RequestWindow)
    tokens: TokenWindow = field(default_factory=TokenWindow)
    spend: Spend = field(default_factory=Spend)


@dataclass(slots=True)
class Elsewhere:
    """One scope's usage on the other replicas, as they last reported it (UsageSync)."""

    requests: int = 0
    tokens: int = 0
    day: int = -1
    day_usd: float = 0.0
    month: tuple[int, int] = (0, 0)
    month_usd: float = 0.0


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
        wall: Callable[[], float] = time.time,
    ) -> None:
        self._clock = clock
        self._wall = wall
        self._usage: dict[tuple[str, str], Usage] = {}
        # Other replicas' usage per scope, replaced whole by UsageSync about every second.
        self.elsewhere: dict[tuple[str, str], Elsewhere] = {}

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
        for scope, name, limits in scopes:
            usage = self.usage(scope, name)
            if limits.requests_per_minute is not None:
                usage.requests.add(now)
            if limits.tokens_per_minute is not None:
                usage.tokens.add(now, estimated_tokens)
        return Admission(principal, estimated_tokens, now)

    def release(self, admission: Admission) -> None:
        """Undo `admit` for a request refused before it was served: it counts neither as a
        request nor for its reserved tokens."""
        principal = admission.principal
        for scope, name, limits in (
            ("key", f"{principal.tenant}/{principal.key_id}", principal.key_limits),
            ("tenant", principal.tenant, principal.tenant_limits),
        ):
            usage = self.usage(scope, name)
            if limits.requests_per_minute is not None:
                with suppress(ValueError):  # already out of the window
                    usage.requests.stamps.remove(admission.at)
            if limits.tokens_per_minute is not None:
                usage.tokens.add(admission.at, -admission.reserved_tokens)

    def settle(self, admission: Admission, tokens: int, cost_usd: float) -> None:
        """Replace the reservation with the tokens really used; add the spend."""
        principal = admission.principal
        wall = self._wall()
        for scope, name, limits in (
            ("key", f"{principal.tenant}/{principal.key_id}", principal.key_limits),
            ("tenant", principal.tenant, principal.tenant_limits),
        ):
            usage = self.usage(scope, name)
            if limits.tokens_per_minute is not None:
                usage.tokens.add(admission.at, tokens - admission.reserved_tokens)
            if cost_usd:
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
        wall: float,
        tokens: int,
    ) -> None:
        other = self.elsewhere.get((scope, name)) or _NOWHERE
        rpm = limits.requests_per_minute
        if rpm is not None and usage.requests.used(now) + other.requests + 1 > rpm:
            raise RateLimited(
                f"Rate limit reached for {scope} '{name}': {rpm} requests per minute",
                retry_after_s=usage.requests.retry_after(now),
                code="requests_per_minute",
            )
        tpm = limits.tokens_per_minute
        if tpm is not None and usage.tokens.used(now) + other.tokens + tokens > tpm:
            raise RateLimited(
                f"Rate limit reached for {scope} '{name}': {tpm} tokens per minute",
                retry_after_s=usage.tokens.retry_after(now, tpm, min(tokens, tpm)),
                code="tokens_per_minute",
            )
        if limits.usd_per_day is None and limits.usd_per_month is None:
            return
        usage.spend.roll(wall)
        day_usd = usage.spend.day_usd + (other.day_usd if other.day == usage.spend.day else 0.0)
        month_usd = usage.spend.month_usd + (
            other.month_usd if other.month == usage.spend.month else 0.0
        )
        if limits.usd_per_day is not None and day_usd >= limits.usd_per_day:
            raise RateLimited(
                f"Daily budget of ${limits.usd_per_day:g} reached for {scope} '{name}'",
                retry_after_s=_seconds_to_next_day(wall),
                code="budget_exceeded",
            )
        if limits.usd_per_month is not None and month_usd >= limits.usd_per_month:
            raise RateLimited(
                f"Monthly budget of ${limits.usd_per_month:g} reached for {scope} '{name}'",
                retry_after_s=_seconds_to_next_month(wall),
                code="budget_exceeded",
            )

    def snapshot(self) -> dict[str, dict[str, object]]:
        """This replica's usage per scope, for the others (see UsageSync)."""
        now = self._clock()
        out: dict[str, dict[str, object]] = {}
        for (scope, name), usage in self._usage.items():
            out[f"{scope}\x00{name}"] = {
                "requests": usage.requests.used(now),
                "tokens": usage.tokens.used(now),
                "day": usage.spend.day,
                "day_usd": usage.spend.day_usd,
                "month": list(usage.spend.month),
                "month_usd": usage.spend.month_usd,
            }
        return out


_NOWHERE = Elsewhere()


def _seconds_to_next_day(wall: float) -> float:
    return DAY_S - wall % DAY_S


def _seconds_to_next_month(wall: float) -> float:
    now = datetime.fromtimestamp(wall, UTC)
    first = now.replace(day=1, hour=0, minute=0, second=0, microsecond=0)
    following = (first + timedelta(days=32)).replace(day=1)
    return (following - now).total_seconds()

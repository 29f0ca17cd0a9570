"""Rate limits and budgets: exact at the boundary, tightest of key and tenant."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from gateway.auth import Principal
from gateway.config import LimitsConfig
from gateway.errors import RateLimited
from gateway.limits import Limiter


class Clocks:
    def __init__(self) -> None:
        self.mono = 1000.0
        self.wall = datetime(2026, 11, 24, 23, 59, 0, tzinfo=UTC).timestamp()


def make(clocks: Clocks) -> Limiter:
    return Limiter(clock=lambda: clocks.mono, wall=lambda: clocks.wall)


def principal(key: LimitsConfig | None = None, tenant: LimitsConfig | None = None) -> Principal:
    return Principal("acme", "k1", key or LimitsConfig(), tenant or LimitsConfig())


def test_requests_per_minute_is_exact_and_slides() -> None:
    clocks = Clocks()
    limiter = make(clocks)
    who = principal(tenant=LimitsConfig(requests_per_minute=3))
    for _ in range(3):
        limiter.admit(who, 1)
        clocks.mono += 10
    with pytest.raises(RateLimited) as info:
        limiter.admit(who, 1)
    assert info.value.status == 429 and info.value.code == "requests_per_minute"
    # the first request (t=1000) leaves the window at t=1060; now is 1030
    assert info.value.headers["retry-after"] == "30"
    clocks.mono = 1060.0
    limiter.admit(who, 1)


def test_the_tighter_of_key_and_tenant_applies() -> None:
    clocks = Clocks()
    limiter = make(clocks)
    who = principal(LimitsConfig(requests_per_minute=2), LimitsConfig(requests_per_minute=100))
    limiter.admit(who, 1)
    limiter.admit(who, 1)
    with pytest.raises(RateLimited, match="key 'acme/k1'"):
        limiter.admit(who, 1)
    # another key of the same tenant is not affected by this key's limit
    other = Principal("acme", "k2", LimitsConfig(), LimitsConfig(requests_per_minute=100))
    limiter.admit(other, 1)


def test_refused_requests_do_not_count() -> None:
    clocks = Clocks()
    limiter = make(clocks)
    who = principal(LimitsConfig(requests_per_minute=1), LimitsConfig(requests_per_minute=5))
    limiter.admit(who, 1)
    for _ in range(5):
        with pytest.raises(RateLimited):
            limiter.admit(who, 1)
    assert limiter.usage("tenant", "acme").requests.used(clocks.mono) == 1


def test_tokens_per_minute_reserves_then_settles_to_actual() -> None:
    clocks = Clocks()
    limiter = make(clocks)
    who = principal(tenant=LimitsConfig(tokens_per_minute=100))
    clocks.mono = 1000.5
    admission = limiter.admit(who, 60)
    limiter.settle(admission, 30, 0.0)
    assert limiter.usage("tenant", "acme").tokens.used(clocks.mono) == 30
    limiter.admit(who, 70)  # 30 + 70 == 100: exactly at the limit passes
    with pytest.raises(RateLimited, match="tokens per minute"):
        limiter.admit(who, 1)


def test_daily_budget_refuses_until_midnight_utc() -> None:
    clocks = Clocks()
    limiter = make(clocks)
    who = principal(tenant=LimitsConfig(usd_per_day=1.0))
    limiter.settle(limiter.admit(who, 1), 1, 0.6)
    limiter.settle(limiter.admit(who, 1), 1, 0.4)
    with pytest.raises(RateLimited) as info:
        limiter.admit(who, 1)
    assert info.value.code == "budget_exceeded"
    assert info.value.headers["retry-after"] == "60"  # 23:59 -> midnight
    clocks.wall = datetime(2026, 11, 25, 0, 0, 1, tzinfo=UTC).timestamp()
    limiter.admit(who, 1)


def test_monthly_budget() -> None:
    clocks = Clocks()
    limiter = make(clocks)
    who = principal(tenant=LimitsConfig(usd_per_month=2.0))
    limiter.settle(limiter.admit(who, 1), 1, 2.0)
    with pytest.raises(RateLimited, match="Monthly budget"):
        limiter.admit(who, 1)
    clocks.wall = datetime(2026, 12, 1, 0, 0, 1, tzinfo=UTC).timestamp()
    limiter.admit(who, 1)


def test_unlimited_scopes_keep_no_per_request_state() -> None:
    clocks = Clocks()
    limiter = make(clocks)
    who = principal()
    for _ in range(1000):
        limiter.settle(limiter.admit(who, 50), 80, 0.001)
        clocks.mono += 0.001
    usage = limiter.usage("tenant", "acme")
    assert not usage.requests.stamps and not usage.tokens.buckets
    assert round(usage.spend.day_usd, 6) == 1.0


def test_token_window_memory_is_bounded_by_seconds_not_requests() -> None:
    clocks = Clocks()
    limiter = make(clocks)
    who = principal(tenant=LimitsConfig(tokens_per_minute=10**9))
    for _ in range(5000):  # 5,000 requests within 5 seconds
        limiter.settle(limiter.admit(who, 10), 12, 0.0)
        clocks.mono += 0.001
    assert len(limiter.usage("tenant", "acme").tokens.buckets) <= 6
    assert limiter.usage("tenant", "acme").tokens.used(clocks.mono) == 5000 * 12


def test_other_replicas_usage_counts_toward_the_limit() -> None:
    import orjson

    from gateway.usage_sync import aggregate

    clocks = Clocks()
    limiter = make(clocks)
    who = principal(tenant=LimitsConfig(requests_per_minute=5, usd_per_day=1.0))
    limiter.admit(who, 1)
    day = int(clocks.wall // 86400)
    fresh = {
        "ts": 1000.0,
        "scopes": {
            "tenant\x00acme": {
                "requests": 3,
                "tokens": 0,
                "day": day,
                "day_usd": 0.4,
                "month": [2026, 11],
                "month_usd": 0.4,
            }
        },
    }
    stale = {"ts": 900.0, "scopes": {"tenant\x00acme": {"requests": 50}}}
    reports = {
        "me": orjson.dumps({"ts": 1000.0, "scopes": {}}).decode(),
        "other": orjson.dumps(fresh).decode(),
        "old": orjson.dumps(stale).decode(),
    }
    limiter.elsewhere = aggregate(reports, "me", now=1001.0)
    assert limiter.elsewhere[("tenant", "acme")].requests == 3  # stale and own ignored
    limiter.admit(who, 1)  # 1 here + 3 elsewhere + this one = 5: at the limit, passes
    with pytest.raises(RateLimited):
        limiter.admit(who, 1)

"""Canary judgement for LoRA adapters: live reward, error rate and latency decide.

The learner sees every request an adapter answered (`event.adapter`) and, once its
feedback horizon has passed, the reward the tenant's policy gives it. For each adapter
name with a canary version, the canary's numbers are compared with the active
version's once both have `min_requests`: clearly worse (reward lower by more than
`reward_tolerance`, error rate higher by more than `max_error_increase`, or p95 latency
above `max_latency_ratio` x the active one's) retires the canary, which is the automatic
rollback; otherwise it is promoted to active. With no active version the canary is
promoted when its mean reward reaches `min_reward` and its error rate stays under
`max_error_rate`. Approved (or approval-free) candidates a training job registered are
put into canary at `share`. The numbers are the adapter's tenant's `learning.canary`
policy (`gateway.policy.model.Canary`) when it is trained for one tenant that sets it,
else the learner's defaults. Every change goes through the registry and is audited
under the actor `learner`; `flywheel ctl adapters rollback` reverts any of them.
"""

from __future__ import annotations

import logging
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

from gateway.adapters import registry
from gateway.adapters.registry import AdapterRecord, RegistryError
from gateway.policy.model import Canary
from gateway.store import Store

log = logging.getLogger("flywheel.learner")


@dataclass
class AdapterStats:
    rewards: list[float] = field(default_factory=list)
    errors: int = 0
    requests: int = 0
    latencies: deque[float] = field(default_factory=lambda: deque(maxlen=2000))

    def reward(self) -> float:
        return float(np.mean(self.rewards)) if self.rewards else 0.0

    def error_rate(self) -> float:
        return self.errors / self.requests if self.requests else 0.0

    def p95(self) -> float:
        return float(np.percentile(list(self.latencies), 95)) if self.latencies else 0.0


@dataclass(frozen=True)
class CanaryDecision:
    adapter: str
    action: str  # "promote" | "rollback" | "canary"
    reason: str


class CanaryMonitor:
    def __init__(
        self,
        store: Store,
        defaults: Canary | None = None,
        settings_for: Callable[[AdapterRecord], Canary | None] | None = None,
    ) -> None:
        """`settings_for` gives an adapter version's canary settings (its tenant's
        policy), or None for `defaults`."""
        self.store = store
        self.defaults = defaults or Canary()
        self._settings_for = settings_for
        self.stats: dict[str, AdapterStats] = {}

    def settings(self, record: AdapterRecord) -> Canary:
        found = self._settings_for(record) if self._settings_for is not None else None
        return found or self.defaults

    def observe(self, adapter: str, reward: float | None, status: int, latency_ms: float) -> None:
        stats = self.stats.setdefault(adapter, AdapterStats())
        stats.requests += 1
        stats.errors += status >= 500
        stats.latencies.append(latency_ms)
        if reward is not None:
            stats.rewards.append(reward)

    async def decide(self) -> list[CanaryDecision]:
        """Start, promote or roll back canaries; what was done."""
        records = await registry.list_adapters(self.store)
        names = sorted({r.name for r in records})
        decisions: list[CanaryDecision] = []
        for name in names:
            versions = [r for r in records if r.name == name]
            canary = next((r for r in versions if r.status == "canary"), None)
            active = next((r for r in versions if r.status == "active"), None)
            try:
                if canary is None:
                    started = await self._start(versions)
                    decisions += [started] if started else []
                else:
                    judged = await self._judge(canary, active)
                    decisions += [judged] if judged else []
            except RegistryError as exc:  # another writer got there first
                log.warning("canary %s: %s", name, exc)
        for decision in decisions:
            log.info("canary %s %s: %s", decision.action, decision.adapter, decision.reason)
        return decisions

    async def _start(self, versions: list[AdapterRecord]) -> CanaryDecision | None:
        ready = [
            r for r in versions
            if r.status == "candidate" and r.created_by.startswith("job:")
            and (not r.needs_approval or r.approved_by is not None)
        ]  # fmt: skip
        if not ready:
            return None
        newest = max(ready, key=lambda r: r.version)
        share = self.settings(newest).share
        await registry.promote(self.store, newest.name, newest.version, share, actor="learner")
        self.stats.pop(newest.id, None)
        return CanaryDecision(newest.id, "canary", f"{share:.0%} of traffic")

    async def _judge(
        self, canary: AdapterRecord, active: AdapterRecord | None
    ) -> CanaryDecision | None:
        s = self.settings(canary)
        mine = self.stats.get(canary.id, AdapterStats())
        if len(mine.rewards) < s.min_requests:
            return None
        numbers = (
            f"canary reward {mine.reward():.3f}, errors {mine.error_rate():.1%}, "
            f"p95 {mine.p95():.0f} ms over {len(mine.rewards)} rated requests"
        )
        if active is None:
            worse = mine.reward() < s.min_reward or mine.error_rate() > s.max_error_rate
            why = f"{numbers}; no active version: needs reward >= {s.min_reward}"
        else:
            theirs = self.stats.get(active.id, AdapterStats())
            if len(theirs.rewards) < s.min_requests:
                return None
            worse = (
                mine.reward() < theirs.reward() - s.reward_tolerance
                or mine.error_rate() > theirs.error_rate() + s.max_error_increase
                or mine.p95() > theirs.p95() * s.max_latency_ratio
            )
            why = (
                f"{numbers}; active {active.id}: reward {theirs.reward():.3f}, "
                f"errors {theirs.error_rate():.1%}, p95 {theirs.p95():.0f} ms"
            )
        if worse:
            await registry.retire(self.store, canary.name, canary.version, actor="learner")
            self.stats.pop(canary.id, None)
            return CanaryDecision(canary.id, "rollback", why)
        await registry.promote(self.store, canary.name, canary.version, actor="learner")
        self.stats.pop(canary.id, None)
        if active is not None:
            self.stats.pop(active.id, None)
        return CanaryDecision(canary.id, "promote", why)

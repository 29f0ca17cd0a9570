"""`flywheel learner run`: the sidecar that turns interactions and feedback into routing.

Loop: read the `events` and `feedback` streams as consumer group `learner` (first what this
consumer had been given but not acked before a restart), commit them to the replay
buffer's SQLite file, then ack: at least once, and idempotent by request and feedback id.
Decisions whose feedback horizon has passed become experiences with a reward, which
update that rule's bandit; every `publish_every` of them the rule proposes a publication
that the off-policy gate accepts (written to the store's `bandit_params`, audited) or
refuses (audited, with the reason). A kill switch (global, the tenant's, or job
`bandit`) stops updates and publications within a second; when it lifts, the rule resumes
from its last publication. Each rule's bandit is rebuilt from the replay buffer at start,
so a crash loses nothing and counts nothing twice.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TypeVar

from pydantic import BaseModel, ValidationError

from gateway.adapters.registry import AdapterRecord
from gateway.config import FlywheelConfig
from gateway.events import Feedback, InteractionEvent
from gateway.flags import FLAGS, KILL, Flags
from gateway.policy.bandit_book import NAMESPACE as BANDIT_PARAMS
from gateway.policy.bandit_book import field_name
from gateway.policy.bandit_scorer import BanditParams
from gateway.policy.library import PolicyLibrary
from gateway.policy.model import Canary, RewardPolicy
from gateway.store import AuditEntry, Store, StoreUnavailable, StreamEntry, open_store
from gateway.store_sync import StoreSync
from learner.canary import CanaryMonitor
from learner.metrics import LearnerMetrics
from learner.replay import Experience, ReplayBuffer
from learner.rewards import reward
from learner.rule_learner import RuleLearner
from learner.scheduler import Scheduler

log = logging.getLogger("flywheel.learner")
T = TypeVar("T", bound=BaseModel)
GROUP = "learner"
STATUS = "learner"  # store hash: "status" and one field per rule
REBUILD_LAST = 50_000  # experiences per rule replayed into the bandit at start
GATE_WINDOW = 5_000  # recent experiences the off-policy gate reads


@dataclass
class LearnerOptions:
    state_dir: Path = Path(".flywheel/learner")
    consumer: str = "learner-1"
    batch: int = 500
    block_ms: int = 200
    canary: Canary = field(default_factory=Canary)  # unless a tenant's policy sets its own
    config_path: Path | None = None  # handed to the training runs the scheduler starts


class Learner:
    def __init__(self, config: FlywheelConfig, options: LearnerOptions, store: Store) -> None:
        self.config = config
        self.options = options
        self.store = store
        self.replay = ReplayBuffer(options.state_dir / "replay.db")
        self.sync = StoreSync(store, (FLAGS, KILL, BANDIT_PARAMS))
        self.flags = Flags(self.sync)
        self.policies = PolicyLibrary(Path(config.policies_dir))
        self.rules: dict[tuple[str, str], RuleLearner] = {}
        self.metrics = LearnerMetrics()
        self.killed: dict[tuple[str, str], bool] = {}
        self._pending_first = True
        self._last_status = 0.0
        self._last_prune = 0.0
        self._last_canary = 0.0
        self.canary = CanaryMonitor(store, options.canary, self._canary_policy)
        self.scheduler = Scheduler(options.state_dir, options.config_path)
        self._last_schedule = 0.0

    def _canary_policy(self, record: AdapterRecord) -> Canary | None:
        """The canary settings of the one tenant an adapter was trained for, if it sets any."""
        if len(record.tenants) != 1 or record.tenants[0] == "*":
            return None
        policy = self.policies.get(record.tenants[0])
        return policy.learning.canary if policy is not None else None

    async def start(self) -> None:
        await self.store.start()
        await self.sync.start()
        self.policies.reload()
        self._build_rules()
        await self._publish_initial()

    async def close(self) -> None:
        await self.sync.close()
        await self.store.close()
        self.replay.close()

    def _build_rules(self) -> None:
        published = self.sync.get(BANDIT_PARAMS)
        for tenant, loaded in self.policies.all().items():
            policy = loaded.policy
            for rule in policy.rules:
                if rule.route.strategy != "bandit":
                    continue
                key = (tenant, rule.name)
                live = _parse(published.get(field_name(tenant, rule.name)))
                arms = tuple(rule.route.chain)
                fitting = live if live is not None and live.arms == arms else None
                learner = RuleLearner(tenant, rule.name, arms, policy.learning, fitting,
                                      objective=rule.route.objective)  # fmt: skip
                for experience in self.replay.experiences(tenant, rule.name, last=REBUILD_LAST):
                    learner.learn(experience)
                learner.fresh = 0
                self.rules[key] = learner
                log.info("rule %s/%s: %d experiences replayed, live %s", tenant, rule.name,
                         learner.learned, live.version if live else None)  # fmt: skip

    async def run(self, stop: asyncio.Event) -> None:
        while not stop.is_set():
            try:
                await self.step()
            except StoreUnavailable as exc:
                self.metrics.errors.inc()
                log.warning("store unavailable: %s", exc)
                await asyncio.sleep(1.0)
            except Exception:  # a sidecar keeps going: log, back off, retry the round
                self.metrics.errors.inc()
                log.exception("learner round failed")
                await asyncio.sleep(1.0)

    async def step(self) -> int:
        """One round: consume, finalise what is due, learn, publish. Entries consumed."""
        pending = self._pending_first
        events = await self.store.read("events", GROUP, self.options.consumer,
                                       self.options.batch, 0 if pending else self.options.block_ms,
                                       pending=pending)  # fmt: skip
        feedback = await self.store.read("feedback", GROUP, self.options.consumer,
                                         self.options.batch, 0, pending=pending)  # fmt: skip
        if pending and not events and not feedback:
            self._pending_first = False
        parsed_events = _parse_all(InteractionEvent, events, self.metrics)
        parsed_feedback = _parse_all(Feedback, feedback, self.metrics)
        self.replay.add(parsed_events, parsed_feedback)
        await self.store.ack("events", GROUP, [e.entry_id for e in events])
        await self.store.ack("feedback", GROUP, [e.entry_id for e in feedback])
        self.metrics.consumed.labels("events").inc(len(events))
        self.metrics.consumed.labels("feedback").inc(len(feedback))
        if parsed_events:
            self.metrics.lag.set(max(0.0, time.time() - parsed_events[-1].ts))
        elif not pending:
            self.metrics.lag.set(0.0)
        self._check_kill_switches()
        self._finalise()
        await self._publish()
        await self._judge_canaries()
        self._schedule()
        await self._report()
        return len(events) + len(feedback)

    def _check_kill_switches(self) -> None:
        for key, rule in self.rules.items():
            killed = self.flags.killed(key[0], job="bandit")
            if self.killed.get(key) and not killed:
                rule.reset()  # resume from the last publication
                version = rule.live.version if rule.live else None
                log.info("kill switch lifted for %s: resuming from %s", field_name(*key), version)
            self.killed[key] = killed

    def _finalise(self) -> None:
        now = time.time()
        done: list[tuple[str, Experience | None]] = []
        owners: list[RuleLearner | None] = []
        for event, feedback in self.replay.due(now - self._shortest_horizon()):
            policy = self.policies.get(event.tenant)
            rule = self.rules.get((event.tenant, event.routing.rule or ""))
            experience = None
            if event.adapter:
                rewards = policy.learning.reward if policy is not None else RewardPolicy()
                if event.ts > now - rewards.horizon_s:
                    continue
                retried = self.replay.retried(event, rewards.retry_window_s)
                value = reward(event, feedback, retried, rewards)
                self.canary.observe(event.adapter, value, event.status, event.latency_ms)
            if policy is not None and rule is not None:
                rewards = policy.learning.reward
                if event.ts > now - rewards.horizon_s:
                    continue  # this tenant waits longer
                retried = self.replay.retried(event, rewards.retry_window_s)
                value = reward(event, feedback, retried, rewards)
                if value is not None and event.routing.arm:
                    experience = Experience(
                        event.request_id, event.tenant, rule.rule, event.ts, event.routing.arm,
                        event.routing.propensity or 1.0, event.routing.policy_version,
                        event.context.model_dump(), value, event.cost_usd, event.latency_ms,
                    )  # fmt: skip
            done.append((event.request_id, experience))
            owners.append(rule)
        for (_, experience), rule, new in zip(done, owners, self.replay.finish(done), strict=True):
            if not new or experience is None or rule is None:
                continue
            self.metrics.experiences.inc()
            if not self.killed.get((rule.tenant, rule.rule), True):
                rule.learn(experience)
                self.metrics.updates.inc()
        if now - self._last_prune > 60:
            self.replay.prune(now - 3600 - self._shortest_horizon())
            self._last_prune = now

    def _shortest_horizon(self) -> float:
        horizons = [
            loaded.policy.learning.reward.horizon_s for loaded in self.policies.all().values()
        ]
        return min(horizons, default=300.0)

    async def _publish(self) -> None:
        for key, rule in self.rules.items():
            if self.killed.get(key, True) or not rule.due():
                continue
            recent = self.replay.experiences(*key, last=GATE_WINDOW)
            if not recent:
                continue
            candidate, decision = rule.propose(recent)
            target = field_name(*key)
            old = rule.live.version if rule.live else None
            action = "learner.publish" if decision.publish else "learner.refuse"
            await self.store.audit(AuditEntry(time.time(), "learner", action, target, old,
                                              json.dumps({"candidate": candidate.version,
                                                          "reason": decision.reason})))  # fmt: skip
            self.metrics.publications.labels("published" if decision.publish else "refused").inc()
            log.info("%s %s: %s", action, target, decision.reason)
            if decision.publish:
                await self.store.hset(BANDIT_PARAMS, target, candidate.to_json())
                rule.published(candidate)

    async def _publish_initial(self) -> None:
        """Rules with nothing published start exploring within `learning.initial_explore`."""
        for key, rule in self.rules.items():
            params = rule.initial()
            if params is None or self.flags.killed(key[0], job="bandit"):
                continue
            target = field_name(*key)
            await self.store.hset(BANDIT_PARAMS, target, params.to_json())
            rule.published(params)
            reason = f"initial exploration: {rule.learning.initial_explore:g} spread over arms"
            await self.store.audit(AuditEntry(time.time(), "learner", "learner.publish", target,
                                              None, json.dumps({"candidate": params.version,
                                                                "reason": reason})))  # fmt: skip
            log.info("learner.publish %s: %s", target, reason)

    def _schedule(self, every_s: float = 10.0) -> None:
        now = time.monotonic()
        if now - self._last_schedule < every_s:
            return
        self._last_schedule = now
        policies = {tenant: loaded.policy for tenant, loaded in self.policies.all().items()}
        self.scheduler.tick(
            policies,
            self.replay.logged_since,
            lambda tenant, kind: self.flags.killed(tenant, job=kind),
        )

    async def _judge_canaries(self, every_s: float = 1.0) -> None:
        now = time.monotonic()
        if now - self._last_canary < every_s or self.flags.killed():
            return
        self._last_canary = now
        await self.canary.decide()

    async def _report(self, every_s: float = 1.0) -> None:
        now = time.monotonic()
        if now - self._last_status < every_s:
            return
        self._last_status = now
        counts = self.replay.counts()
        self.metrics.pending.set(counts["pending"])
        status = {"ts": time.time(), "consumer": self.options.consumer,
                  "lag_s": self.metrics.lag._value.get(), **counts}  # fmt: skip
        await self.store.hset(STATUS, "status", json.dumps(status))
        for key, rule in self.rules.items():
            state = {**rule.status(), "killed": self.killed.get(key, True)}
            await self.store.hset(STATUS, f"rule:{field_name(*key)}", json.dumps(state))


def _parse_all(model: type[T], entries: list[StreamEntry], metrics: LearnerMetrics) -> list[T]:
    """Every entry that parses; one that does not (a poison message) is logged, counted
    and skipped, so it cannot stall the stream."""
    parsed = []
    for entry in entries:
        try:
            parsed.append(model.model_validate_json(entry.payload))
        except ValidationError as exc:
            metrics.malformed.inc()
            log.warning("malformed stream entry %s skipped: %s", entry.entry_id, exc)
    return parsed


def _parse(text: str | None) -> BanditParams | None:
    if not text:
        return None
    try:
        return BanditParams.from_json(text)
    except ValueError:
        return None


async def run_learner(config: FlywheelConfig, options: LearnerOptions, metrics_port: int) -> None:
    from prometheus_client import start_http_server

    if not config.store:
        raise SystemExit("flywheel learner: the config names no store (`store:`)")
    learner = Learner(config, options, open_store(config.store))
    await learner.start()
    if metrics_port:
        start_http_server(metrics_port, registry=learner.metrics.registry)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    import signal

    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    log.info("learner running: %d bandit rules, metrics on :%d", len(learner.rules), metrics_port)
    try:
        await learner.run(stop)
    finally:
        await learner.close()

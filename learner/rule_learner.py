"""One `bandit` rule of one tenant: its bandit, what it publishes and the gate before that.

Experiences update the bandit as they are finalised. Every `publish_every` new ones, a
candidate publication is made from it (with the policy's safeguards: minimum
exploration, reward floor, maximum traffic shift from the live publication) and judged
off-policy on the recent logged decisions, paired against the live publication (or, before
any publication, the logged rewards): learner/bandit_gate.py, which also sizes the step.

Before any publication, `initial()` is the exploring start: the static chain with
`learning.initial_explore` of traffic spread evenly over the arms. A rule with an
`objective` learns quality alone and publishes the calibrated cheapest routing that keeps
quality >= ratio x the reference's (learner/quality_target.py).
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field, replace

import numpy as np

from gateway.policy.bandit_features import FEATURES, FloatArray, featurize
from gateway.policy.bandit_scorer import BanditParams, probabilities
from gateway.policy.model import Learning, Objective
from learner.bandit_gate import GateSettings, StepDecision, judge
from learner.bandits import EpsilonGreedy, LinearBandit, LinearThompson, LinUCB, Safeguards
from learner.ope import Logged, cross_fitted_rewards
from learner.quality_target import quality, quality_target
from learner.replay import Experience

ALGORITHMS: dict[str, type[LinearBandit]] = {
    "linucb": LinUCB,
    "lints": LinearThompson,
    "egreedy": EpsilonGreedy,
}


@dataclass
class ArmStats:
    decisions: int = 0
    reward_sum: float = 0.0
    cost_sum: float = 0.0


@dataclass
class RuleLearner:
    tenant: str
    rule: str
    arms: tuple[str, ...]
    learning: Learning
    live: BanditParams | None = None
    objective: Objective | None = None
    bandit: LinearBandit = field(init=False)
    fresh: int = 0  # experiences since the last publication attempt
    learned: int = 0
    stats: dict[str, ArmStats] = field(default_factory=dict)
    last_gate: StepDecision | None = None

    def __post_init__(self) -> None:
        self.reset()

    def reset(self) -> None:
        """Back to the live publication (or a blank bandit): after a kill switch lifts."""
        cls = ALGORITHMS[self.learning.algorithm]
        live = self.live
        if self.objective is not None and hasattr(self, "bandit"):
            return  # its publications are calibrated, not fitted: keep the fitted bandit
        fitted = live is not None and sum(live.counts or ()) > 0  # not the initial exploration
        if live is not None and fitted and live.arms == self.arms and live.features == FEATURES:
            self.bandit = cls.from_params(live, discount=self.learning.discount)
        else:
            self.bandit = cls(self.arms, self.learning.exploration, discount=self.learning.discount)

    def learn(self, experience: Experience) -> bool:
        """Update on one experience; False when its arm is not one of this rule's."""
        if experience.arm not in self.arms:
            return False
        x = featurize(experience.context)
        value = self._reward(experience)
        self.bandit.update(x, self.arms.index(experience.arm), value)
        stats = self.stats.setdefault(experience.arm, ArmStats())
        stats.decisions += 1
        stats.reward_sum += value
        stats.cost_sum += experience.cost_usd
        self.fresh += 1
        self.learned += 1
        return True

    def due(self) -> bool:
        return self.fresh >= self.learning.publish_every

    def propose(self, recent: list[Experience]) -> tuple[BanditParams, StepDecision]:
        """A candidate publication and the gate's verdict on it (on `recent` decisions)."""
        self.fresh = 0
        logged = self._logged(recent)
        version = f"{self.rule}-{int(time.time() * 1000)}"
        live_params = self.live if self.live is not None and self.live.arms == self.arms else None
        previous = live_params if live_params is not None else self._static()
        q = cross_fitted_rewards(logged)
        live = None if live_params is None else probabilities(live_params, logged.X)[0]
        if self.objective is not None:
            candidate, decision = quality_target(
                self.bandit, self.objective, self._costs(), logged, q, version,
                self.learning.min_explore, live, self._settings(),
            )  # fmt: skip
            self.last_gate = decision
            return candidate, decision
        whole = self.bandit.to_params(version, self._guard(1.0), logged.X, previous)
        stepped = self.bandit.to_params(version, self._guard(), logged.X, previous)
        own = probabilities(whole, logged.X)[0]
        prior = None
        if stepped.prior_mix > 0 and stepped.prior_probs is not None:
            prior = probabilities(replace(stepped, prior_mix=1.0), logged.X)[0]
        decision = judge(logged, q, own, prior, stepped.prior_mix, live, self._settings())
        candidate = whole if prior is None else replace(stepped, prior_mix=decision.prior_mix)
        self.last_gate = decision
        return candidate, decision

    def initial(self) -> BanditParams | None:
        """Before any publication: the static chain with `initial_explore` of traffic spread
        evenly over the arms (exact propensities); None when the policy explores nothing."""
        share = self.learning.initial_explore
        if share <= 0 or self.live is not None:
            return None
        static = self._static()
        return replace(static, version=f"{self.rule}-explore-{int(time.time() * 1000)}",
                       min_explore=share, counts=tuple(0.0 for _ in self.arms))  # fmt: skip

    def _guard(self, max_shift: float | None = None) -> Safeguards:
        return Safeguards(
            min_explore=self.learning.min_explore,
            max_shift=self.learning.max_shift if max_shift is None else max_shift,
            reward_floor=self.learning.reward_floor,
        )

    def _settings(self) -> GateSettings:
        return GateSettings(
            tolerance=self.learning.ope_tolerance,
            min_ess=self.learning.min_ess,
            min_change=self.learning.min_change,
        )

    def _costs(self) -> FloatArray:
        """[K]: each arm's mean logged cost (USD); an arm not yet seen costs the most seen."""
        means = [
            s.cost_sum / s.decisions if (s := self.stats.get(arm)) and s.decisions else None
            for arm in self.arms
        ]
        top = max((m for m in means if m is not None), default=0.0)
        return np.array([top if m is None else m for m in means])

    def published(self, params: BanditParams) -> None:
        self.live = params

    def _reward(self, experience: Experience) -> float:
        """What the bandit learns: the reward, or with an objective the quality alone."""
        if self.objective is None:
            return experience.reward
        return quality(experience, self.learning.reward)

    def _static(self) -> BanditParams:
        """The static safeguard chain as a policy: all traffic to the first arm."""
        k, d = len(self.arms), len(FEATURES)
        return BanditParams(
            version="static", algorithm="egreedy", arms=self.arms, features=FEATURES,
            theta=np.zeros((k, d)), a_inv=np.tile(np.eye(d), (k, 1, 1)), exploration=0.0,
            prior_mix=1.0, prior_probs=tuple(1.0 if i == 0 else 0.0 for i in range(k)),
        )  # fmt: skip

    def _logged(self, recent: list[Experience]) -> Logged:
        usable = [e for e in recent if e.arm in self.arms and e.propensity > 0]
        return Logged(
            X=np.array([featurize(e.context) for e in usable]).reshape(len(usable), len(FEATURES)),
            actions=np.array([self.arms.index(e.arm) for e in usable], dtype=np.int64),
            propensities=np.array([min(1.0, e.propensity) for e in usable]),
            rewards=np.array([self._reward(e) for e in usable]),
            n_actions=len(self.arms),
        )

    def status(self) -> dict[str, object]:
        return {
            "tenant": self.tenant,
            "rule": self.rule,
            "algorithm": self.learning.algorithm,
            "live_version": self.live.version if self.live else None,
            "learned": self.learned,
            "since_publication": self.fresh,
            "last_gate": None if self.last_gate is None else {
                "publish": self.last_gate.publish, "reason": self.last_gate.reason},
            "arms": {
                arm: {"decisions": s.decisions,
                      "mean_reward": round(s.reward_sum / s.decisions, 4) if s.decisions else None}
                for arm, s in self.stats.items()
            },
        }  # fmt: skip

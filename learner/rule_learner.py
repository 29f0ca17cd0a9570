"""One `bandit` rule of one tenant: its bandit, what it publishes and the gate before that.

Experiences update the bandit as they are finalised. Every `publish_every` new ones, a
candidate publication is made from it (with the policy's safeguards: minimum
exploration, reward floor, maximum traffic shift from the live publication) and judged
off-policy on the recent logged decisions: the doubly robust estimate of the candidate
against the live policy's (or, before any publication, the static chain's logged value).
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

import numpy as np

from gateway.policy.bandit_features import FEATURES, featurize
from gateway.policy.bandit_scorer import BanditParams, probabilities
from gateway.policy.model import Learning
from learner.bandits import EpsilonGreedy, LinearBandit, LinearThompson, LinUCB, Safeguards
from learner.ope import Estimate, GateDecision, Logged, doubly_robust, gate, logged_value
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


@dataclass
class RuleLearner:
    tenant: str
    rule: str
    arms: tuple[str, ...]
    learning: Learning
    live: BanditParams | None = None
    bandit: LinearBandit = field(init=False)
    fresh: int = 0  # experiences since the last publication attempt
    learned: int = 0
    stats: dict[str, ArmStats] = field(default_factory=dict)
    last_gate: GateDecision | None = None

    def __post_init__(self) -> None:
        self.reset()

    def reset(self) -> None:
        """Back to the live publication (or a blank bandit): after a kill switch lifts."""
        cls = ALGORITHMS[self.learning.algorithm]
        live = self.live
        if live is not None and live.arms == self.arms and live.features == FEATURES:
            self.bandit = cls.from_params(live, discount=self.learning.discount)
        else:
            self.bandit = cls(self.arms, self.learning.exploration, discount=self.learning.discount)

    def learn(self, experience: Experience) -> bool:
        """Update on one experience; False when its arm is not one of this rule's."""
        if experience.arm not in self.arms:
            return False
        x = featurize(experience.context)
        self.bandit.update(x, self.arms.index(experience.arm), experience.reward)
        stats = self.stats.setdefault(experience.arm, ArmStats())
        stats.decisions += 1
        stats.reward_sum += experience.reward
        self.fresh += 1
        self.learned += 1
        return True

    def due(self) -> bool:
        return self.fresh >= self.learning.publish_every

    def propose(self, recent: list[Experience]) -> tuple[BanditParams, GateDecision]:
        """A candidate publication and the gate's verdict on it (on `recent` decisions)."""
        self.fresh = 0
        logged = self._logged(recent)
        version = f"{self.rule}-{int(time.time() * 1000)}"
        guard = Safeguards(
            min_explore=self.learning.min_explore,
            max_shift=self.learning.max_shift,
            reward_floor=self.learning.reward_floor,
        )
        previous = self.live if self.live is not None else self._static()
        candidate = self.bandit.to_params(version, guard, logged.X, previous)
        estimate = doubly_robust(lambda X: probabilities(candidate, X)[0], logged)
        live: Estimate
        if self.live is not None and self.live.arms == self.arms:
            live_params = self.live
            live = doubly_robust(lambda X: probabilities(live_params, X)[0], logged)
        else:
            live = logged_value(logged)
        decision = gate(estimate, live, self.learning.ope_tolerance, self.learning.min_ess)
        self.last_gate = decision
        return candidate, decision

    def published(self, params: BanditParams) -> None:
        self.live = params

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
            rewards=np.array([e.reward for e in usable]),
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

"""The paired gate keeps learning going where the unpaired one froze (learner/bandit_gate.py).

A simulated two-model environment: the strong model is better on hard prompts, the weak one
as good on easy ones. The rule learner runs as the learner runs it (learn, every
`publish_every` experiences propose on the last 5,000, publish what the gate accepts) and
the gateway's scorer picks each arm, with exact propensities. Once candidates become
nearly deterministic the unpaired rule (candidate's lower bound >= live - tolerance) stops
publishing; the paired rule keeps publishing and its live policy keeps improving.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
import pytest

from gateway.policy.bandit_features import featurize
from gateway.policy.bandit_scorer import BanditParams, choose, probabilities
from gateway.policy.model import Learning
from learner.bandit_gate import GateSettings, judge
from learner.ope import Logged, cross_fitted_rewards, doubly_robust, gate, logged_value
from learner.replay import Experience
from learner.rule_learner import RuleLearner

ARMS = ("weak", "strong")
WINDOW = 3000
DRIFT = 2000  # the weak model is upgraded here: as good as the strong one on every prompt
LEARNING = Learning(algorithm="egreedy", exploration=0.0, min_explore=0.05, max_shift=0.25,
                    publish_every=200, ope_tolerance=0.02, min_ess=30,
                    initial_explore=1.0)  # fmt: skip


def quality(complexity: float, arm: int, t: int = 0) -> float:
    """True success probability: strong 0.85 throughout; weak falls with difficulty until
    the upgrade at DRIFT, then 0.85 too."""
    if arm == 1 or t >= DRIFT:
        return 0.85
    return 0.95 - 0.6 * complexity


def reward(complexity: float, arm: int, t: int = 0) -> float:
    return quality(complexity, arm, t) - (0.25 if arm == 1 else 0.0)  # the strong one costs


def policy_value(params: BanditParams, contexts: list[dict[str, object]], t: int) -> float:
    X = np.array([featurize(c) for c in contexts])
    probs = probabilities(params, X)[0]
    truth = np.array([[reward(float(c["complexity"]), a, t) for a in (0, 1)]  # type: ignore[arg-type]
                      for c in contexts])  # fmt: skip
    return float((probs * truth).sum(axis=1).mean())


Proposer = Callable[[RuleLearner, list[Experience]], tuple[BanditParams, bool]]


def paired(rule: RuleLearner, recent: list[Experience]) -> tuple[BanditParams, bool]:
    candidate, decision = rule.propose(recent)
    return candidate, decision.publish


def unpaired(rule: RuleLearner, recent: list[Experience]) -> tuple[BanditParams, bool]:
    """The previous rule: a fixed max_shift step, judged by its own DR lower bound against
    the live policy's value as a point."""
    rule.fresh = 0
    logged = rule._logged(recent)
    previous = rule.live if rule.live is not None else rule._static()
    candidate = rule.bandit.to_params(f"c{len(recent)}-{rule.learned}", rule._guard(), logged.X,
                                      previous)  # fmt: skip
    estimate = doubly_robust(lambda X: probabilities(candidate, X)[0], logged)
    live_params = rule.live
    live = (
        logged_value(logged)
        if live_params is None
        else doubly_robust(lambda X: probabilities(live_params, X)[0], logged)
    )
    return candidate, gate(estimate, live, LEARNING.ope_tolerance, LEARNING.min_ess).publish


@dataclass
class Run:
    published_at: list[int] = field(default_factory=list)
    values: list[float] = field(default_factory=list)  # live policy's true value per publication


def simulate(proposer: Proposer, requests: int, seed: int) -> Run:
    rng = np.random.default_rng(seed)
    rule = RuleLearner("t", "r", ARMS, LEARNING)
    initial = rule.initial()
    assert initial is not None
    rule.published(initial)
    probe = [{"intent": "math", "complexity": float(c), "input_chars": 400} for c in
             np.linspace(0, 1, 101)]  # fmt: skip
    run, log = Run(), []
    for t in range(requests):
        c = float(rng.random())
        context: dict[str, object] = {"intent": "math", "complexity": c, "input_chars": 400}
        live = rule.live
        assert live is not None
        choice = choose(live, featurize(context), rng)
        r = float(rng.random() < quality(c, choice.arm_index, t))
        r -= 0.25 if choice.arm_index else 0.0
        log.append(Experience(str(t), "t", "r", float(t), choice.arm, choice.propensity,
                              live.version, context, min(1.0, max(0.0, r))))  # fmt: skip
        rule.learn(log[-1])
        if rule.due():
            candidate, publish = proposer(rule, log[-WINDOW:])
            if publish:
                rule.published(candidate)
                run.published_at.append(t)
                run.values.append(policy_value(candidate, probe, t))
    return run


def value_at(run: Run, t: int, start: float) -> float:
    """The live policy's true value (at its own publication time) when request t arrives."""
    earlier = [v for when, v in zip(run.published_at, run.values, strict=True) if when < t]
    return earlier[-1] if earlier else start


@pytest.mark.parametrize("seed", [1, pytest.param(2, marks=pytest.mark.slow)])
def test_paired_gate_keeps_publishing_an_improving_policy_where_the_old_one_froze(
    seed: int,
) -> None:
    old = simulate(unpaired, 3000, seed)
    new = simulate(paired, 3000, seed)
    # before the upgrade: the old rule publishes once or twice, then refuses every candidate
    assert sum(400 <= t < DRIFT for t in old.published_at) <= 2, old.published_at
    assert sum(400 <= t < DRIFT for t in new.published_at) >= 6, new.published_at
    # after it, the paired gate follows within a few publications; the old rule stays put
    probe = [{"intent": "math", "complexity": float(c), "input_chars": 400}
             for c in np.linspace(0, 1, 101)]  # fmt: skip
    optimum = policy_value(_all_weak(), probe, DRIFT)
    assert value_at(new, DRIFT + 800, 0.0) >= optimum - 0.02, (new.published_at, new.values)
    assert value_at(old, DRIFT + 800, 0.0) < optimum - 0.05, (old.published_at, old.values)
    assert new.values[-1] > new.values[new.published_at.index(max(
        t for t in new.published_at if t < DRIFT))]  # fmt: skip


def _all_weak() -> BanditParams:
    """After the upgrade the best policy sends everything to the weak (cheaper) model."""
    rule = RuleLearner("t", "r", ARMS, LEARNING)
    static = rule._static()
    return static


def test_judge_refuses_a_worse_candidate_and_sizes_the_step_by_evidence() -> None:
    rng = np.random.default_rng(3)
    n = 4000
    X = np.column_stack([np.ones(n), rng.random(n)])
    live = np.full((n, 2), 0.5)  # the logging policy: a coin flip
    actions = (rng.random(n) < 0.5).astype(np.int64)
    good = np.where(X[:, 1] > 0.5, 1, 0)  # arm 1 pays 0.8 above 0.5, arm 0 pays 0.8 below
    rewards = (rng.random(n) < np.where(actions == good, 0.8, 0.3)).astype(np.float64)
    logged = Logged(X, actions, np.full(n, 0.5), rewards, 2)
    q = cross_fitted_rewards(logged)
    better = np.column_stack([1 - good, good]).astype(np.float64) * 0.9 + 0.05
    worse = better[:, ::-1].copy()
    settings = GateSettings(tolerance=0.02, min_ess=30, min_change=0.01)
    refused = judge(logged, q, worse, live, 0.75, live, settings)
    assert not refused.publish and refused.reason.startswith("refused: worse than live")
    accepted = judge(logged, q, better, live, 0.75, live, settings)
    assert accepted.publish and accepted.prior_mix == 0.0  # the whole step, with confidence
    assert accepted.difference is not None and accepted.difference.low > 0
    # a candidate no better than live, on 300 decisions: its whole step is not shown to be
    # non-inferior, but a partial one is, so the gate publishes that (evidence-sized step)
    m = 300
    small = Logged(X[:m], actions[:m], logged.propensities[:m], rewards[:m], 2)
    coin = np.where(np.arange(m) % 2 == 0, good[:m], 1 - good[:m])
    neutral = np.column_stack([1 - coin, coin]).astype(np.float64)
    whole = judge(small, cross_fitted_rewards(small), neutral, live[:m], 0.0, live[:m], settings)
    assert whole.difference is not None and whole.difference.low < -0.02 <= whole.difference.high
    assert whole.publish and whole.reason.startswith("publish: inconclusive, base step")
    unsure = judge(small, cross_fitted_rewards(small), neutral, live[:m], 0.75, live[:m], settings)
    assert unsure.publish and 0 < unsure.prior_mix <= 0.75, unsure.reason
    assert unsure.difference is not None and unsure.difference.low >= -0.02
    same = judge(logged, q, live, live, 0.0, live, settings)
    assert not same.publish and same.reason.startswith("skipped")

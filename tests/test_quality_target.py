"""Quality-target mode (learner/quality_target.py) and the exploring start, in simulation.

Two models: the strong one (the reference) succeeds on 85% of prompts and costs 10x; the
weak one succeeds on 95% of easy prompts, falling to 35% on the hardest. With
`min_quality_ratio: 0.95` the learned routing must keep true quality >= 0.95 x 0.85 while
sending easy prompts to the weak model.
"""

from __future__ import annotations

import numpy as np
import pytest
from pydantic import ValidationError

from gateway.policy.bandit_features import featurize
from gateway.policy.bandit_scorer import BanditParams, choose, probabilities
from gateway.policy.model import Learning, Objective, Route
from learner.replay import Experience
from learner.rule_learner import RuleLearner

ARMS = ("weak", "strong")
COST = (0.0001, 0.001)
LEARNING = Learning(algorithm="egreedy", exploration=0.0, min_explore=0.1, publish_every=250,
                    min_ess=30, initial_explore=1.0)  # fmt: skip
RATIO = 0.95


def quality(complexity: float, arm: int) -> float:
    return 0.85 if arm == 1 else 0.95 - 0.6 * complexity


def truth(params: BanditParams) -> tuple[float, float]:
    """True expected quality and cost of a publication over uniform difficulty."""
    grid = np.linspace(0, 1, 201)
    X = np.array([featurize({"intent": "math", "complexity": float(c)}) for c in grid])
    probs = probabilities(params, X)[0]
    q = np.column_stack([[quality(c, 0) for c in grid], [quality(c, 1) for c in grid]])
    return float((probs * q).sum(axis=1).mean()), float((probs @ np.array(COST)).mean())


def test_quality_target_holds_its_floor_at_a_lower_cost() -> None:
    rng = np.random.default_rng(0)
    target = Objective(reference="strong", min_quality_ratio=RATIO)
    rule = RuleLearner("t", "r", ARMS, LEARNING, objective=target)
    initial = rule.initial()
    assert initial is not None
    rule.published(initial)
    log: list[Experience] = []
    served: list[tuple[float, float]] = []
    for t in range(5000):
        c = float(rng.random())
        context: dict[str, object] = {"intent": "math", "complexity": c}
        live = rule.live
        assert live is not None
        pick = choose(live, featurize(context), rng)
        good = float(rng.random() < quality(c, pick.arm_index))
        log.append(Experience(str(t), "t", "r", float(t), pick.arm, pick.propensity,
                              live.version, context, good, COST[pick.arm_index]))  # fmt: skip
        rule.learn(log[-1])
        if rule.due():
            candidate, decision = rule.propose(log[-3000:])
            if decision.publish:
                rule.published(candidate)
                served.append(truth(candidate))
    assert len(served) >= 3
    floor = RATIO * 0.85
    assert all(q >= floor - 0.01 for q, _ in served), served  # never published below target
    final_quality, final_cost = served[-1]
    assert final_quality >= floor - 0.005
    assert final_cost < 0.7 * COST[1], served  # the easy prompts went to the weak model
    assert rule.last_gate is not None and "quality - 0.95 x strong" in rule.last_gate.reason


def test_the_exploring_start_spreads_its_budget_with_exact_propensities() -> None:
    rule = RuleLearner("t", "r", ("a", "b", "c"), LEARNING.model_copy(update={
        "initial_explore": 0.3}))  # fmt: skip
    start = rule.initial()
    assert start is not None
    probs = probabilities(start, featurize({"intent": "chat"}))[0][0]
    assert probs == pytest.approx([0.8, 0.1, 0.1])  # the static chain's first arm + 0.3 / 3
    rng = np.random.default_rng(1)
    picks = [choose(start, featurize({"intent": "chat"}), rng) for _ in range(3000)]
    share = np.mean([p.arm == "b" for p in picks])
    assert abs(share - 0.1) < 0.02
    assert sorted({round(p.propensity, 9) for p in picks}) == [0.1, 0.8]
    rule.published(start)
    rule.reset()  # the exploring start has no fitted state to resume from
    assert rule.bandit.n_.sum() == 0
    off = RuleLearner("t", "r", ("a", "b"), LEARNING.model_copy(update={"initial_explore": 0.0}))
    assert off.initial() is None


def test_the_objective_is_validated_with_errors_naming_the_key() -> None:
    with pytest.raises(ValidationError, match=r"objective\.reference 'gpt' is not in the chain"):
        Route(strategy="bandit", chain=["a", "b"],
              objective=Objective(reference="gpt", min_quality_ratio=0.9))  # fmt: skip
    with pytest.raises(ValidationError, match="only a strategy: bandit rule"):
        Route(strategy="first", chain=["a"],
              objective=Objective(reference="a", min_quality_ratio=0.9))  # fmt: skip
    with pytest.raises(ValidationError, match="min_quality_ratio"):
        objective = {"reference": "a", "min_quality_ratio": 1.5}
        Route.model_validate({"strategy": "bandit", "chain": ["a"], "objective": objective})

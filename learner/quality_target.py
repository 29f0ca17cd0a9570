"""Quality-target routing: the cheapest policy whose quality stays >= ratio x the reference's.

A `bandit` rule with `objective: {reference: strong, min_quality_ratio: 0.95}` learns each
arm's quality (the feedback part of the reward, without the cost and latency charges) per
context, and each arm's mean logged cost. It publishes a greedy policy on

    score_a(x) = quality_a(x) - lam * cost_a / cost_reference

(with two arms: "the cheaper arm whenever its predicted quality gap to the reference is
below lam x (1 - cost ratio)", RouteLLM's threshold) plus the policy's min_explore. The
threshold `lam` is calibrated online on the recent logged decisions: of the thresholds on a
grid whose policy, as served, has a paired DR estimate of quality - ratio x reference
quality with a lower confidence bound >= 0 (and ESS >= min_ess), the one with the lowest
expected cost wins. When none qualifies yet (little data), the reference model serves
everything but min_explore. The publication is egreedy with epsilon 0, so every
propensity is exact; the published theta carries the cost term in its `bias` coefficient.
"""

from __future__ import annotations

import numpy as np

from gateway.policy.bandit_features import FloatArray
from gateway.policy.bandit_scorer import BanditParams, probabilities
from gateway.policy.model import Objective, RewardPolicy
from learner.bandit_gate import GateSettings, StepDecision
from learner.bandits import LinearBandit
from learner.ope import Logged, dr_terms, mean_estimate
from learner.replay import Experience

THRESHOLDS = np.linspace(0.0, 1.5, 61)  # lam, in units of the reference's quality


def quality(experience: Experience, rewards: RewardPolicy) -> float:
    """The feedback part of an experience's reward: the charges for cost and latency added
    back (exact unless the reward was clipped at 0)."""
    charge = rewards.cost_weight * experience.cost_usd
    charge += rewards.latency_weight * experience.latency_ms / 1000
    return min(1.0, max(0.0, experience.reward + charge))


def quality_target(
    bandit: LinearBandit,
    objective: Objective,
    costs: FloatArray,
    logged: Logged,
    q: FloatArray,
    version: str,
    min_explore: float,
    live: FloatArray | None,
    settings: GateSettings,
) -> tuple[BanditParams, StepDecision]:
    """The calibrated publication and why (`logged.rewards` and `q` are qualities)."""
    ref = bandit.arms.index(objective.reference)
    bias = bandit.features.index("bias")
    top = costs[ref] if costs[ref] > 0 else max(float(costs.max()), 1e-300)
    relative = costs / top
    ratio = objective.min_quality_ratio
    reference = np.zeros((logged.n, len(bandit.arms)))
    reference[:, ref] = 1.0
    ref_terms = dr_terms(reference, logged, q)
    rows = np.arange(logged.n)

    def params(theta: FloatArray) -> BanditParams:
        return BanditParams(
            version=version, algorithm="egreedy", arms=bandit.arms, features=bandit.features,
            theta=theta, a_inv=bandit.A_inv_.copy(), exploration=0.0, min_explore=min_explore,
            counts=tuple(float(n) for n in bandit.n_),
        )  # fmt: skip

    best: tuple[float, float, BanditParams, FloatArray] | None = None
    for lam in THRESHOLDS:
        theta = bandit.theta_.copy()
        theta[:, bias] -= lam * relative
        candidate = params(theta)
        pi = probabilities(candidate, logged.X)[0]
        weights = pi[rows, logged.actions] / logged.propensities
        margin = mean_estimate(
            "dr-margin", dr_terms(pi, logged, q) - ratio * ref_terms, weights, level=settings.level
        )
        cost = float((pi * relative).sum(axis=1).mean())
        if margin.low >= 0 and margin.ess >= settings.min_ess and (best is None or cost < best[0]):
            best = (cost, float(lam), candidate, pi)
    if best is None:
        theta = np.zeros_like(bandit.theta_)
        theta[ref, bias] = 1.0
        chosen, why = params(theta), "no threshold meets the target yet: reference"
        pi = probabilities(chosen, logged.X)[0]
    else:
        cost, lam, chosen, pi = best
        why = f"threshold {lam:.3f} meets the target at relative cost {cost:.3f}"
    weights = pi[rows, logged.actions] / logged.propensities
    margin = mean_estimate(
        "dr-margin", dr_terms(pi, logged, q) - ratio * ref_terms, weights, level=settings.level
    )
    moved = 0.0 if live is None else float(0.5 * np.abs(pi - live).sum(axis=1).mean())
    facts = (
        f"quality - {ratio:g} x {objective.reference} {margin.value:+.4f} "
        f"[{margin.low:+.4f}, {margin.high:+.4f}] (n={margin.n}, ESS={margin.ess:.1f})"
    )
    if live is not None and moved < settings.min_change:
        reason = f"skipped: {why}, moves {moved:.4f} < min_change {settings.min_change:g}; {facts}"
        return chosen, StepDecision(False, reason, 0.0, margin, moved)
    return chosen, StepDecision(True, f"publish: {why}, moves {moved:.4f}; {facts}", 0.0,
                                margin, moved)  # fmt: skip

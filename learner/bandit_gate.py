"""The gate before a routing publication: paired, non-inferiority, with an evidence-sized step.

A candidate is judged as it will be served (its min_explore, floors and prior mix included)
against the live publication, on the same recent logged decisions: the per-decision DR terms
of candidate minus live (learner/ope.py `dr_terms`, one cross-fitted reward model for both),
whose mean is the estimated gain and whose normal interval (95% two-sided by default) is
narrow wherever the two policies agree, however deterministic they are.

The candidate family is a line: `prior_mix` m in [0, 1] blends the bandit's own choice with
the live publication's traffic shares (`prior_probs`), and the DR terms are linear in m, so
every step on the line is judged from two sets of terms. `max_shift` gives the base step
m_base (bandits.py: the smallest mix keeping every arm's share within max_shift of live).

Rule, per candidate:
1. refuse when the base step is worse with confidence: upper bound of its difference
   < -tolerance; or when its ESS < min_ess; or when its difference is not finite;
2. otherwise publish the largest step (smallest m in [0, m_base]) that is non-inferior with
   confidence: lower bound of its difference >= -tolerance and ESS >= min_ess. If none is,
   the base step is published: the evidence is inconclusive, not against it. So the step
   grows from max_shift up to the whole candidate as the evidence narrows the interval;
3. skip (publish nothing) when the chosen step moves less than `min_change` of traffic
   (mean total-variation distance of its choice probabilities from live's).

Why not "lower bound >= live - tolerance" on the candidate's own estimate (ope.gate): that
interval is as wide as the candidate is far from the logging policy, so nearly deterministic
candidates (ESS 60-500 of 5,000) never pass and learning freezes on an early snapshot. The
one-sided risk this rule accepts is a base step of a candidate that is worse by an amount
the data cannot yet show; the step is small, its exploration gathers the evidence, and the
next gate (paired against it) refuses what turns out worse.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from gateway.policy.bandit_features import FloatArray
from learner.ope import Estimate, Logged, dr_terms, mean_estimate

STEPS = 21  # points on the line [0, m_base] searched for the largest non-inferior step


@dataclass(frozen=True)
class GateSettings:
    tolerance: float = 0.02
    min_ess: float = 30.0
    min_change: float = 0.01
    level: float = 0.95


@dataclass(frozen=True)
class StepDecision:
    """The gate's verdict: publish (with `prior_mix`), refuse or skip, and why."""

    publish: bool
    reason: str
    prior_mix: float
    difference: Estimate | None  # candidate at prior_mix minus live, paired
    change: float  # mean share of traffic the step moves


def judge(
    logged: Logged,
    q: FloatArray,
    own: FloatArray,
    prior: FloatArray | None,
    base_mix: float,
    live: FloatArray | None,
    settings: GateSettings,
) -> StepDecision:
    """`own` [n, K]: the candidate's served probabilities at prior_mix 0; `prior`: at
    prior_mix 1 (None: no prior, base_mix must be 0); `live`: the live publication's (None:
    the logging policy, whose terms are the logged rewards)."""
    if prior is None:
        prior, base_mix = own, 0.0
    rows = np.arange(logged.n)
    own_terms, prior_terms = dr_terms(own, logged, q), dr_terms(prior, logged, q)
    base = logged.rewards if live is None else dr_terms(live, logged, q)

    def at(mix: float) -> tuple[Estimate, FloatArray]:
        pi = (1.0 - mix) * own + mix * prior
        terms = (1.0 - mix) * own_terms + mix * prior_terms - base
        weights = pi[rows, logged.actions] / logged.propensities
        return mean_estimate("dr-diff", terms, weights, level=settings.level), pi

    def change(pi: FloatArray) -> float:
        return 0.0 if live is None else float(0.5 * np.abs(pi - live).sum(axis=1).mean())

    floor = -settings.tolerance
    base_est, base_pi = at(base_mix)
    facts = _facts(base_est, base_mix)
    if not np.isfinite([base_est.value, base_est.low, base_est.high]).all():
        return StepDecision(False, f"refused: difference is not finite; {facts}", base_mix,
                            base_est, change(base_pi))  # fmt: skip
    if base_est.ess < settings.min_ess:
        return StepDecision(False, f"refused: ESS {base_est.ess:.1f} < min_ess "
                            f"{settings.min_ess:g}; {facts}", base_mix, base_est,
                            change(base_pi))  # fmt: skip
    if base_est.high < floor:
        return StepDecision(False, f"refused: worse than live with confidence (upper bound "
                            f"{base_est.high:.4f} < -tolerance {floor:.4f}); {facts}",
                            base_mix, base_est, change(base_pi))  # fmt: skip
    chosen, est, pi, why = base_mix, base_est, base_pi, "inconclusive, base step"
    for mix in np.linspace(0.0, base_mix, STEPS) if base_mix > 0 else [0.0]:
        trial, trial_pi = at(float(mix))
        if trial.low >= floor and trial.ess >= settings.min_ess:
            chosen, est, pi, why = float(mix), trial, trial_pi, "non-inferior with confidence"
            break
    moved = change(pi)
    facts = _facts(est, chosen)
    if live is not None and moved < settings.min_change:
        return StepDecision(False, f"skipped: moves {moved:.4f} of traffic < min_change "
                            f"{settings.min_change:g}; {facts}", chosen, est, moved)  # fmt: skip
    return StepDecision(True, f"publish: {why} (lower bound {est.low:.4f} vs -tolerance "
                        f"{floor:.4f}), moves {moved:.4f}; {facts}", chosen, est,
                        moved)  # fmt: skip


def _facts(est: Estimate, mix: float) -> str:
    return (
        f"candidate - live {est.value:+.4f} [{est.low:+.4f}, {est.high:+.4f}] at prior_mix "
        f"{mix:.3f} (n={est.n}, ESS={est.ess:.1f})"
    )

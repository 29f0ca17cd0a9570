"""Off-policy evaluation (OPE): a candidate routing policy's value, from the live policy's logs.

Every logged decision i carries its context x_i, the arm a_i the live (logging) policy chose,
that choice's propensity p_i = pi_log(a_i | x_i) and the reward r_i in [0, 1]. A candidate
policy pi gives w_i = pi(a_i | x_i) / p_i, the importance weight of decision i.

- IPS: mean(w_i r_i). Unbiased wherever p > 0 covers pi; its variance grows with w^2.
- SNIPS: sum(w_i r_i) / sum(w_i). Biased by O(1/n), stays in the reward range, and has much
  less variance than IPS when a few weights are large.
- DR: mean(sum_a pi(a|x_i) q(x_i, a) + w_i (r_i - q(x_i, a_i))). Unbiased if either the
  propensities or the reward model q are right; less variance than IPS when q is good. By
  default q is a per-arm ridge regression, cross-fitted on 2 folds: each half is scored by
  a model fitted on the other, so q's fitting noise doesn't leak into its own correction.

`difference` judges a candidate against the live policy paired on the same decisions: the
mean of per-decision DR term differences (`dr_terms`, one cross-fitted reward model for
both), whose interval is narrow wherever the two policies agree.

Confidence intervals are normal approximations: IPS and DR from the per-sample terms, SNIPS by
the delta method for a ratio of means. `bootstrap=B` swaps in a percentile bootstrap over B
resamples (the reward model held fixed). ESS = (sum w)^2 / sum w^2 counts how many logged
decisions the estimate effectively rests on; it is n when pi is the logging policy.

Clipping (`clip=c`, w_i -> min(w_i, c)) is the bias/variance dial: it bounds each decision's
influence (variance falls, ESS rises) but under-counts the actions the logger rarely took, a
downward bias for IPS and DR (SNIPS renormalises, so its bias can go either way). Leave it
off (the default) for an unbiased gate; set it, e.g. near the 99th percentile weight, when
ESS is too small and a conservative estimate is acceptable.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from statistics import NormalDist
from typing import NamedTuple

import numpy as np
import numpy.typing as npt

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]
PolicyProbs = Callable[[FloatArray], FloatArray]  # X [n, d] -> action probabilities [n, K]
RewardModel = Callable[[FloatArray], FloatArray]  # X [n, d] -> estimated rewards [n, K]


class _CI(NamedTuple):
    level: float
    bootstrap: int  # > 0: percentile bootstrap over this many resamples; 0: normal approximation
    seed: int


@dataclass(frozen=True)
class Logged:
    """Logged decisions: contexts X [n, d], arms [n], propensities [n], rewards [n] in [0, 1]."""

    X: FloatArray
    actions: IntArray
    propensities: FloatArray
    rewards: FloatArray
    n_actions: int

    def __post_init__(self) -> None:
        n, shapes = len(self.actions), (self.X.shape, self.propensities.shape, self.rewards.shape)
        if n == 0 or shapes != ((n, self.X.shape[-1]), (n,), (n,)) or self.actions.shape != (n,):
            raise ValueError(
                f"Logged: need n > 0 rows of X [n, d], actions, propensities and "
                f"rewards [n]; got {self.actions.shape} actions and {shapes}"
            )
        if self.actions.min() < 0 or self.actions.max() >= self.n_actions:
            raise ValueError(f"Logged.actions: arms must lie in [0, {self.n_actions})")
        if not np.all((self.propensities > 0) & (self.propensities <= 1)):
            raise ValueError("Logged.propensities: every propensity must lie in (0, 1]")
        if not np.all((self.rewards >= 0) & (self.rewards <= 1)):
            raise ValueError("Logged.rewards: every reward must lie in [0, 1]")

    @property
    def n(self) -> int:
        return len(self.actions)


@dataclass(frozen=True)
class Estimate:
    """A policy value: point estimate, confidence interval [low, high], n and the weights' ESS."""

    value: float
    low: float
    high: float
    n: int
    ess: float
    method: str = ""


@dataclass(frozen=True)
class Estimates:
    ips: Estimate
    snips: Estimate
    dr: Estimate


@dataclass(frozen=True)
class RidgeRewardModel:
    """Per-arm ridge regression of reward on [1, x], shrunk toward the pooled mean reward."""

    coef_: FloatArray  # [K, d + 1]
    mean_: float

    def __call__(self, X: FloatArray) -> FloatArray:
        Z = np.hstack([np.ones((len(X), 1)), X])
        return np.clip(Z @ self.coef_.T + self.mean_, 0.0, 1.0)


def fit_reward_model(
    X: FloatArray, A: IntArray, R: FloatArray, K: int, l2: float = 1.0
) -> RidgeRewardModel:
    """Fit one ridge regression per arm; an arm with no data predicts the pooled mean."""
    Z = np.hstack([np.ones((len(X), 1)), X])
    mean = float(R.mean())
    penalty = l2 * np.eye(Z.shape[1])
    coef = np.zeros((K, Z.shape[1]))
    for k in range(K):
        Zk, Rk = Z[A == k], R[A == k] - mean
        coef[k] = np.linalg.solve(Zk.T @ Zk + penalty, Zk.T @ Rk)
    return RidgeRewardModel(coef_=coef, mean_=mean)


def ips(
    policy_probs: PolicyProbs,
    logged: Logged,
    *,
    clip: float | None = None,
    level: float = 0.95,
    bootstrap: int = 0,
    seed: int = 0,
) -> Estimate:
    """Inverse propensity scoring: mean(w_i r_i)."""
    w = _weights(_probs(policy_probs, logged), logged, clip)
    return _estimate("ips", w * logged.rewards, None, w, _CI(level, bootstrap, seed))


def snips(
    policy_probs: PolicyProbs,
    logged: Logged,
    *,
    clip: float | None = None,
    level: float = 0.95,
    bootstrap: int = 0,
    seed: int = 0,
) -> Estimate:
    """Self-normalised IPS: sum(w_i r_i) / sum(w_i)."""
    w = _weights(_probs(policy_probs, logged), logged, clip)
    return _estimate("snips", w * logged.rewards, w, w, _CI(level, bootstrap, seed))


def doubly_robust(
    policy_probs: PolicyProbs,
    logged: Logged,
    *,
    reward_model: RewardModel | None = None,
    clip: float | None = None,
    l2: float = 1.0,
    level: float = 0.95,
    bootstrap: int = 0,
    seed: int = 0,
) -> Estimate:
    """Doubly robust. Without `reward_model`, a 2-fold cross-fitted ridge model (penalty `l2`)
    is used; a model passed in should be fitted on other data than `logged`."""
    pi = _probs(policy_probs, logged)
    return _dr(pi, logged, reward_model, clip, l2, _CI(level, bootstrap, seed))


def evaluate(
    policy_probs: PolicyProbs,
    logged: Logged,
    *,
    reward_model: RewardModel | None = None,
    clip: float | None = None,
    l2: float = 1.0,
    level: float = 0.95,
    bootstrap: int = 0,
    seed: int = 0,
) -> Estimates:
    """IPS, SNIPS and DR for one policy, calling `policy_probs` once."""
    pi = _probs(policy_probs, logged)
    w = _weights(pi, logged, clip)
    wr, ci = w * logged.rewards, _CI(level, bootstrap, seed)
    return Estimates(
        ips=_estimate("ips", wr, None, w, ci),
        snips=_estimate("snips", wr, w, w, ci),
        dr=_dr(pi, logged, reward_model, clip, l2, ci),
    )


def logged_value(logged: Logged, *, level: float = 0.95) -> Estimate:
    """The logging (live) policy's own value: the mean logged reward; ESS = n."""
    ones = np.ones(logged.n)
    return _estimate("on-policy", logged.rewards, None, ones, _CI(level, 0, 0))


def cross_fitted_rewards(logged: Logged, *, l2: float = 1.0, seed: int = 0) -> FloatArray:
    """q [n, K]: each decision's estimated reward per arm from a ridge model fitted on the
    other half of the log (2-fold cross-fitting, folds drawn with `seed`)."""
    fold = np.zeros(logged.n, dtype=bool)
    fold[np.random.default_rng(seed).permutation(logged.n)[: logged.n // 2]] = True
    q = np.empty((logged.n, logged.n_actions))
    for held in (fold, ~fold):
        fit = fit_reward_model(
            logged.X[~held], logged.actions[~held], logged.rewards[~held], logged.n_actions, l2
        )
        q[held] = fit(logged.X[held])
    return q


def dr_terms(pi: FloatArray, logged: Logged, q: FloatArray) -> FloatArray:
    """Each decision's doubly robust term for the policy with probabilities pi [n, K]; their
    mean is the DR value. Linear in pi: the terms of a mixture are the mixture of terms."""
    w = pi[np.arange(logged.n), logged.actions] / logged.propensities
    terms: FloatArray = (pi * q).sum(axis=1) + w * (
        logged.rewards - q[np.arange(logged.n), logged.actions]
    )
    return terms


def mean_estimate(
    method: str,
    terms: FloatArray,
    weights: FloatArray,
    *,
    level: float = 0.95,
    bootstrap: int = 0,
    seed: int = 0,
) -> Estimate:
    """mean(terms) with its interval (normal, or a percentile bootstrap of `bootstrap`
    resamples); ESS from the importance weights `weights`."""
    return _estimate(method, terms, None, weights, _CI(level, bootstrap, seed))


def difference(
    candidate: PolicyProbs,
    live: PolicyProbs | None,
    logged: Logged,
    *,
    l2: float = 1.0,
    level: float = 0.95,
    bootstrap: int = 0,
    seed: int = 0,
) -> Estimate:
    """DR value of `candidate` minus `live`, paired on the same logged decisions: the mean of
    the per-decision differences of their DR terms (one cross-fitted reward model for both),
    with its interval. Where the two policies agree their terms cancel, so the interval is
    far narrower than either value's own. `live=None`: the logging policy itself, whose terms
    are the logged rewards. ESS is the candidate's."""
    q = cross_fitted_rewards(logged, l2=l2, seed=seed)
    pi = _probs(candidate, logged)
    base = logged.rewards if live is None else dr_terms(_probs(live, logged), logged, q)
    return mean_estimate(
        "dr-diff",
        dr_terms(pi, logged, q) - base,
        _weights(pi, logged, None),
        level=level,
        bootstrap=bootstrap,
        seed=seed,
    )


@dataclass(frozen=True)
class GateDecision:
    publish: bool
    reason: str
    candidate_value: float
    candidate_low: float
    live_value: float
    threshold: float  # live_value - tolerance: what candidate_low must reach
    candidate_ess: float
    min_ess: float


def gate(candidate: Estimate, live: Estimate, tolerance: float, min_ess: float) -> GateDecision:
    """Publish only if the candidate is, with confidence, not worse than live by > tolerance.

    The unpaired rule, kept for comparison: the learner's bandit gate (learner/bandit_gate.py)
    judges the paired difference instead, since this one freezes learning once candidates
    become nearly deterministic (their own interval stays wider than `tolerance`).

    Rule (a non-inferiority test): publish iff both estimates rest on ESS >= min_ess and the
    candidate's lower confidence bound >= live.value - tolerance. A two-sided 95% interval
    makes this a one-sided 97.5% test, so a worse candidate passes only by bad luck, and an
    equally good one passes once its interval's half-width is below `tolerance` (more data
    or a larger tolerance). live.value is used as a point: the live policy is normally
    measured on-policy (`logged_value`) and far more precisely than the candidate.
    """
    threshold = live.value - tolerance
    facts = (
        f"candidate {candidate.method or 'estimate'} {candidate.value:.4f} "
        f"[{candidate.low:.4f}, {candidate.high:.4f}] (n={candidate.n}, "
        f"ESS={candidate.ess:.1f}); live {live.value:.4f} (n={live.n}, ESS={live.ess:.1f})"
    )

    def decide(publish: bool, why: str) -> GateDecision:
        values = (candidate.value, candidate.low, live.value, threshold, candidate.ess)
        return GateDecision(publish, f"{why}; {facts}", *values, min_ess)

    for who, est in (("candidate", candidate), ("live", live)):
        if not est.ess >= min_ess:
            return decide(
                False,
                f"refused: {who} ESS {est.ess:.1f} < min_ess {min_ess:g}, too "
                f"few logged decisions match the {who} policy to trust its value",
            )
    if not np.isfinite([candidate.low, live.value]).all():
        return decide(False, "refused: candidate lower bound or live value is not finite")
    ok = bool(candidate.low >= threshold)
    verdict, cmp = ("publish", ">=") if ok else ("refused", "<")
    return decide(
        ok,
        f"{verdict}: candidate lower bound {candidate.low:.4f} {cmp} live "
        f"{live.value:.4f} - tolerance {tolerance:g} = {threshold:.4f}",
    )


def _probs(policy_probs: PolicyProbs, logged: Logged) -> FloatArray:
    pi = np.asarray(policy_probs(logged.X), dtype=np.float64)
    if pi.shape != (logged.n, logged.n_actions):
        raise ValueError(
            f"policy_probs returned {pi.shape}, expected {(logged.n, logged.n_actions)}"
        )
    return pi


def _weights(pi: FloatArray, logged: Logged, clip: float | None) -> FloatArray:
    if clip is not None and not clip > 0:
        raise ValueError(f"clip: the weight cap must be > 0, got {clip}")
    w = pi[np.arange(logged.n), logged.actions] / logged.propensities
    return w if clip is None else np.minimum(w, clip)


def _dr(
    pi: FloatArray,
    logged: Logged,
    q_model: RewardModel | None,
    clip: float | None,
    l2: float,
    ci: _CI,
) -> Estimate:
    if q_model is not None:
        q = np.asarray(q_model(logged.X), dtype=np.float64)
    else:  # cross-fitting: score each half with the model fitted on the other half
        q = cross_fitted_rewards(logged, l2=l2, seed=ci.seed)
    w = _weights(pi, logged, clip)
    q_taken = q[np.arange(logged.n), logged.actions]
    terms = (pi * q).sum(axis=1) + w * (logged.rewards - q_taken)
    return _estimate("dr", terms, None, w, ci)


def _estimate(method: str, u: FloatArray, v: FloatArray | None, w: FloatArray, ci: _CI) -> Estimate:
    """sum(u) / sum(v) (v = None: mean(u)) with its interval; ESS from the weights w."""
    n = len(u)
    den = np.ones(n) if v is None else v
    value = float(u.sum() / den.sum()) if den.sum() > 0 else float("nan")
    ess = float(w.sum() ** 2 / (w**2).sum()) if (w**2).sum() > 0 else 0.0
    if ci.bootstrap > 0:
        low, high = _bootstrap(u, den, ci)
    else:  # delta method; reduces to std(u) / sqrt(n) when v = 1
        se = float(np.std(u - value * den, ddof=1) / np.sqrt(n) / den.mean()) if n > 1 else 0.0
        half = NormalDist().inv_cdf(0.5 + ci.level / 2) * se
        low, high = value - half, value + half
    return Estimate(value, low, high, n, ess, method)


def _bootstrap(u: FloatArray, v: FloatArray, ci: _CI) -> tuple[float, float]:
    rng = np.random.default_rng(ci.seed)
    n = len(u)
    chunk = max(1, 2_000_000 // n)  # resamples per batch, bounding memory to ~16 MB
    stats = []
    for start in range(0, ci.bootstrap, chunk):
        idx = rng.integers(0, n, size=(min(chunk, ci.bootstrap - start), n))
        stats.append(u[idx].sum(axis=1) / np.maximum(v[idx].sum(axis=1), 1e-300))
    q = np.quantile(np.concatenate(stats), [0.5 - ci.level / 2, 0.5 + ci.level / 2])
    return float(q[0]), float(q[1])

"""Off-policy evaluation against a simulated contextual bandit whose true values are known."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pytest

from learner.ope import (
    Estimate,
    Estimates,
    FloatArray,
    Logged,
    PolicyProbs,
    difference,
    doubly_robust,
    evaluate,
    fit_reward_model,
    gate,
    ips,
    logged_value,
    snips,
)

D, K = 3, 3
THETA = np.array([[1.0, -0.5, 0.3], [-0.8, 0.9, 0.0], [0.2, 0.4, -1.0]])  # [K, D]
BIAS = np.array([0.2, -0.1, 0.0])
W_LOG = np.array([[0.5, -0.5, 0.0], [0.0, 0.5, -0.5], [0.3, 0.0, 0.3]])  # [D, K]
W_TARGET = np.array([[1.5, -1.0, 0.0], [-1.0, 1.5, 0.0], [0.0, 0.0, -1.5]])


def _softmax(z: FloatArray) -> FloatArray:
    e = np.exp(z - z.max(axis=1, keepdims=True))
    probs: FloatArray = e / e.sum(axis=1, keepdims=True)
    return probs


def true_reward(X: FloatArray) -> FloatArray:
    """Mean reward of each arm in each context; rewards are Bernoulli draws of it."""
    mean: FloatArray = 1.0 / (1.0 + np.exp(-(X @ THETA.T + BIAS)))
    return mean


def logging_policy(X: FloatArray) -> FloatArray:
    """Softmax mixed with 30% uniform exploration: every propensity >= 0.1."""
    return 0.7 * _softmax(X @ W_LOG) + 0.3 / K


def target_policy(X: FloatArray) -> FloatArray:
    return _softmax(X @ W_TARGET)


def better_policy(X: FloatArray) -> FloatArray:
    return _softmax(20.0 * true_reward(X))


def worse_policy(X: FloatArray) -> FloatArray:
    return _softmax(-20.0 * true_reward(X))


def true_value(policy: PolicyProbs, n: int = 1_000_000) -> float:
    """Monte-Carlo over contexts on the exact mean rewards (no reward noise): error ~3e-4."""
    X = np.random.default_rng(12345).standard_normal((n, D))
    return float((policy(X) * true_reward(X)).sum(axis=1).mean())


def simulate(n: int, seed: int) -> Logged:
    rng = np.random.default_rng(seed)
    X = rng.standard_normal((n, D))
    p = logging_policy(X)
    actions = (rng.random((n, 1)) > p.cumsum(axis=1)).sum(axis=1)
    rewards = (rng.random(n) < true_reward(X)[np.arange(n), actions]).astype(np.float64)
    return Logged(X, actions, p[np.arange(n), actions], rewards, K)


@pytest.fixture(scope="module")
def truth() -> float:
    return true_value(target_policy)


@dataclass
class Repetitions:
    results: list[Estimates]
    clipped: list[Estimate]

    def values(self, name: str) -> FloatArray:
        return np.array([getattr(r, name).value for r in self.results])

    def covered(self, name: str, truth: float) -> float:
        return float(
            np.mean([getattr(r, name).low <= truth <= getattr(r, name).high for r in self.results])
        )


@pytest.fixture(scope="module")
def reps() -> Repetitions:
    """50 independent logs of 2,000 decisions each."""
    logs = [simulate(2000, seed) for seed in range(50)]
    return Repetitions(
        results=[evaluate(target_policy, log, seed=i) for i, log in enumerate(logs)],
        clipped=[ips(target_policy, log, clip=2.0) for log in logs],
    )


def test_estimates_match_truth_on_a_large_log(truth: float) -> None:
    logged = simulate(50_000, seed=7)
    for est in (
        ips(target_policy, logged),
        snips(target_policy, logged),
        doubly_robust(target_policy, logged),
    ):
        assert est.low <= truth <= est.high, (est, truth)
        assert abs(est.value - truth) < 0.01
        assert est.high - est.low < 0.03
        assert est.n == 50_000
        assert 0 < est.ess < est.n


def test_intervals_cover_the_truth_in_most_repetitions(reps: Repetitions, truth: float) -> None:
    for name in ("ips", "snips", "dr"):
        assert reps.covered(name, truth) >= 0.8, name
        assert abs(reps.values(name).mean() - truth) < 0.01, name


def test_doubly_robust_has_lower_variance_than_ips(reps: Repetitions) -> None:
    assert reps.values("dr").std() < 0.8 * reps.values("ips").std()
    widths = [(r.dr.high - r.dr.low) / (r.ips.high - r.ips.low) for r in reps.results]
    assert max(widths) < 1.0


def test_clipping_trades_variance_for_ess_and_bias(reps: Repetitions, truth: float) -> None:
    clipped = np.array([e.value for e in reps.clipped])
    assert clipped.std() < reps.values("ips").std()
    assert all(c.ess > r.ips.ess for c, r in zip(reps.clipped, reps.results, strict=True))
    assert clipped.mean() < truth  # rewards >= 0: clipping only removes mass


def test_ess_on_a_hand_example() -> None:
    logged = Logged(
        np.zeros((4, 1)),
        np.zeros(4, dtype=np.int64),
        np.full(4, 0.5),
        np.array([1.0, 0.0, 1.0, 0.0]),
        2,
    )
    probs = np.array([[0.5, 0.5], [0.5, 0.5], [1.0, 0.0], [0.0, 1.0]])  # w = 1, 1, 2, 0
    est = ips(lambda X: probs, logged)
    assert est.ess == pytest.approx(16 / 6)
    assert est.value == pytest.approx((1 + 0 + 2 + 0) / 4)
    assert snips(lambda X: probs, logged).value == pytest.approx(3 / 4)
    assert ips(lambda X: probs, logged, clip=1.5).ess == pytest.approx(3.5**2 / 4.25)


def test_the_logging_policy_itself_has_full_ess_and_the_mean_reward() -> None:
    logged = simulate(1000, seed=3)
    est = evaluate(logging_policy, logged)
    assert est.ips.ess == pytest.approx(1000)
    assert est.ips.value == pytest.approx(logged.rewards.mean())
    assert est.snips.value == pytest.approx(logged.rewards.mean())
    on_policy = logged_value(logged)
    assert (on_policy.low, on_policy.high) == pytest.approx((est.ips.low, est.ips.high))


def test_bootstrap_interval_agrees_with_the_normal_one(truth: float) -> None:
    logged = simulate(5000, seed=11)
    for estimator in (ips, snips):
        normal = estimator(target_policy, logged)
        boot = estimator(target_policy, logged, bootstrap=400, seed=1)
        assert boot.value == normal.value
        assert boot.low == pytest.approx(normal.low, abs=0.01)
        assert boot.high == pytest.approx(normal.high, abs=0.01)
    assert doubly_robust(target_policy, logged, bootstrap=400).low <= truth


def test_dr_with_the_true_reward_model_is_nearly_exact(truth: float) -> None:
    logged = simulate(5000, seed=5)
    oracle = doubly_robust(target_policy, logged, reward_model=true_reward)
    assert oracle.low <= truth <= oracle.high
    plain = ips(target_policy, logged)
    assert oracle.high - oracle.low < plain.high - plain.low


def test_ridge_reward_model_recovers_the_reward_ranking() -> None:
    logged = simulate(20_000, seed=2)
    model = fit_reward_model(logged.X, logged.actions, logged.rewards, K)
    X = np.random.default_rng(0).standard_normal((2000, D))
    agree = (model(X).argmax(axis=1) == true_reward(X).argmax(axis=1)).mean()
    assert agree > 0.85
    assert model(X).shape == (2000, K)
    empty = fit_reward_model(
        logged.X[logged.actions != 2],
        logged.actions[logged.actions != 2],
        logged.rewards[logged.actions != 2],
        K,
    )
    assert np.allclose(empty(X)[:, 2], empty.mean_)  # no data for arm 2: the pooled mean


def test_gate_refuses_a_clearly_worse_candidate() -> None:
    logged = simulate(5000, seed=21)
    live = logged_value(logged)
    decision = gate(doubly_robust(worse_policy, logged), live, tolerance=0.02, min_ess=100)
    assert not decision.publish
    assert decision.reason.startswith("refused: candidate lower bound")
    assert f"{live.value:.4f}" in decision.reason
    assert decision.live_value == live.value
    assert decision.threshold == pytest.approx(live.value - 0.02)


def test_gate_publishes_a_better_or_equal_candidate() -> None:
    logged = simulate(5000, seed=22)
    live = logged_value(logged)
    better = gate(doubly_robust(better_policy, logged), live, tolerance=0.02, min_ess=100)
    assert better.publish, better.reason
    assert better.candidate_value > live.value
    equal = gate(ips(logging_policy, logged), live, tolerance=0.02, min_ess=100)
    assert equal.publish, equal.reason
    assert equal.reason.startswith("publish:")


def test_gate_refuses_when_ess_is_too_small() -> None:
    logged = simulate(5000, seed=23)
    live = logged_value(logged)
    rare = ips(lambda X: np.tile([0.0, 0.0, 1.0], (len(X), 1)), logged)
    decision = gate(rare, live, tolerance=1.0, min_ess=0.9 * logged.n)
    assert not decision.publish
    assert "candidate ESS" in decision.reason and "min_ess" in decision.reason
    tiny = Estimate(value=0.9, low=0.85, high=0.95, n=5000, ess=12.0, method="dr")
    assert not gate(tiny, live, tolerance=0.0, min_ess=50).publish
    assert gate(tiny, live, tolerance=0.0, min_ess=10).publish


def test_gate_refuses_a_candidate_without_a_value() -> None:
    live = Estimate(0.5, 0.49, 0.51, 1000, 1000.0)
    empty = Estimate(float("nan"), float("nan"), float("nan"), 1000, 1000.0)
    assert not gate(empty, live, tolerance=0.1, min_ess=10).publish


def test_inputs_are_validated() -> None:
    logged = simulate(100, seed=0)
    with pytest.raises(ValueError, match="policy_probs returned"):
        ips(lambda X: np.ones((len(X), K + 1)) / (K + 1), logged)
    with pytest.raises(ValueError, match="propensities"):
        Logged(logged.X, logged.actions, np.zeros(logged.n), logged.rewards, K)
    with pytest.raises(ValueError, match="rewards"):
        Logged(logged.X, logged.actions, logged.propensities, logged.rewards + 2, K)
    with pytest.raises(ValueError, match="X \\[n, d\\]"):
        Logged(logged.X[:-1], logged.actions, logged.propensities, logged.rewards, K)
    with pytest.raises(ValueError, match="arms must lie"):
        Logged(logged.X, logged.actions + K, logged.propensities, logged.rewards, K)
    with pytest.raises(ValueError, match="clip"):
        ips(target_policy, logged, clip=0.0)


def test_paired_difference_is_unbiased_and_far_narrower_than_either_value() -> None:
    logged = simulate(5000, seed=31)

    def nudged(X: FloatArray) -> FloatArray:  # the target policy, 10% toward the better one
        return 0.9 * target_policy(X) + 0.1 * better_policy(X)

    diff = difference(nudged, target_policy, logged)
    truth = true_value(nudged) - true_value(target_policy)
    assert diff.low <= truth <= diff.high
    alone = doubly_robust(nudged, logged)
    assert diff.high - diff.low < 0.25 * (alone.high - alone.low)
    on_policy = difference(logging_policy, None, logged)  # live = the logging policy itself
    assert on_policy.low <= 0.0 <= on_policy.high

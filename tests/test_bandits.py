"""Bandit routing: the feature vector, the gateway's scorer and the learner's bandits."""

from __future__ import annotations

import json
from dataclasses import replace
from typing import Any

import numpy as np
import pytest

from gateway.events import RequestContext
from gateway.policy.bandit_features import FEATURES, D, featurize
from gateway.policy.bandit_scorer import BanditParams, choose, probabilities
from learner.bandits import EpsilonGreedy, LinearBandit, LinearThompson, LinUCB, Safeguards

ARMS = ("small", "medium", "large", "local/x:adapter@v2")
ALGORITHMS = ("linucb", "lints", "egreedy")
CLASSES: tuple[type[LinearBandit], ...] = (LinUCB, LinearThompson, EpsilonGreedy)


def contexts(n: int, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    X = np.zeros((n, D))
    X[:, 0] = 1.0
    X[np.arange(n), 1 + rng.integers(0, 10, n)] = 1.0
    X[:, 11:] = rng.random((n, D - 11))
    return X


def params(algorithm: str = "linucb", **changes: Any) -> BanditParams:
    rng = np.random.default_rng(3)
    k = len(ARMS)
    base = BanditParams(
        version="r-1",
        algorithm=algorithm,  # type: ignore[arg-type]
        arms=ARMS,
        features=FEATURES,
        theta=rng.normal(0.5, 0.2, (k, D)) / D,
        a_inv=np.stack([np.eye(D) * s for s in (0.05, 0.1, 0.2, 0.4)]),
        exploration=0.3,
    )
    return replace(base, **changes)


# features


def test_featurize_layout_and_sources_agree() -> None:
    context = RequestContext(
        intent="code", complexity=0.4, input_chars=1000, messages=3, has_tools=True
    )
    x = featurize(context)
    assert x.dtype == np.float64 and x.shape == (len(FEATURES),) == (D,)
    assert np.array_equal(x, featurize(context.model_dump()))
    named = dict(zip(FEATURES, x, strict=True))
    assert named["bias"] == 1.0 and named["intent:code"] == 1.0
    assert sum(v for k, v in named.items() if k.startswith("intent:")) == 1.0
    assert named["complexity"] == 0.4 and named["has_tools"] == 1.0
    assert named["log_input_chars"] == pytest.approx(np.log1p(1000) / 10)
    assert named["messages"] == pytest.approx(3 / 20)


def test_featurize_unknown_intents_missing_values_and_caps() -> None:
    other = FEATURES.index("intent:other")
    for intent in ("billing", None, ""):
        assert featurize({"intent": intent})[other] == 1.0
    assert (
        featurize({"intent": "multimodal", "has_images": True})[FEATURES.index("intent:multimodal")]
        == 1.0
    )
    complexity = FEATURES.index("complexity")
    assert featurize({"complexity_tier": "high"})[complexity] == 0.8
    assert featurize({})[complexity] == 0.5
    assert featurize({"complexity": 7.0})[complexity] == 1.0
    huge = featurize({"input_chars": 10**12, "messages": 500})
    assert huge[FEATURES.index("log_input_chars")] == 1.5
    assert huge[FEATURES.index("messages")] == 1.0


# scorer


@pytest.mark.parametrize("algorithm", ALGORITHMS)
def test_probabilities_sum_to_one_and_propensity_is_the_chosen_probability(
    algorithm: str,
) -> None:
    p = params(algorithm, min_explore=0.05)
    X = contexts(300)
    probs, scores = probabilities(p, X)
    assert probs.shape == scores.shape == (300, len(ARMS))
    assert np.allclose(probs.sum(axis=1), 1.0) and (probs >= 0.05 / len(ARMS) - 1e-12).all()
    rng = np.random.default_rng(1)
    for i in range(0, 300, 7):
        choice = choose(p, X[i], rng)
        assert np.allclose(choice.probs, probs[i])  # one request == the batch OPE path
        assert choice.propensity == choice.probs[choice.arm_index] > 0
        assert choice.arm == ARMS[choice.arm_index]
        assert sorted(choice.ranking()) == list(range(len(ARMS)))
        assert choice.ranking()[0] == choice.arm_index


@pytest.mark.parametrize("algorithm", ALGORITHMS)
def test_choice_frequencies_over_u_equal_the_logged_propensities(algorithm: str) -> None:
    p = params(algorithm, min_explore=0.1)
    x = contexts(1, seed=5)[0]
    n = 4000
    picks = np.array([choose(p, x, (i + 0.5) / n).arm_index for i in range(n)])
    expected = choose(p, x, 0.0).probs
    assert np.allclose(np.bincount(picks, minlength=len(ARMS)) / n, expected, atol=1.5 / n)


def test_thompson_probabilities_are_reproducible_draw_fractions() -> None:
    p = params("lints", exploration=1.0, draws=200)
    X = contexts(50)
    first, _ = probabilities(p, X)
    again, _ = probabilities(BanditParams.from_json(p.to_json()), X)
    assert np.array_equal(first, again)
    assert np.allclose(first * 200, np.round(first * 200))  # multiples of 1/draws
    other, _ = probabilities(replace(p, version="r-2"), X)  # another version, other draws
    assert not np.array_equal(first, other)


def test_linucb_splits_exact_ties_evenly() -> None:
    k = len(ARMS)
    p = params(theta=np.zeros((k, D)), a_inv=np.tile(np.eye(D), (k, 1, 1)))
    assert np.allclose(choose(p, contexts(1)[0], 0.3).probs, 1 / k)


def test_floor_arms_get_only_the_min_explore_share() -> None:
    k = len(ARMS)
    theta = np.zeros((k, D))
    theta[2, 0] = 1.0  # "large" is best everywhere
    p = params(theta=theta, floor_arms=("large",))
    assert (probabilities(p, contexts(200))[0][:, 2] == 0).all()
    explored = replace(p, min_explore=0.08)
    probs, _ = probabilities(explored, contexts(200))
    assert np.allclose(probs[:, 2], 0.08 / k) and np.allclose(probs.sum(axis=1), 1.0)


def test_prior_mix_and_allowed_mask() -> None:
    prior = (0.7, 0.1, 0.1, 0.1)
    base = params("egreedy", exploration=0.2)
    mixed = replace(base, prior_mix=0.4, prior_probs=prior)
    X = contexts(20)
    expected = 0.6 * probabilities(base, X)[0] + 0.4 * np.array(prior)
    assert np.allclose(probabilities(mixed, X)[0], expected)
    allowed = [True, False, True, True]
    probs, _ = probabilities(mixed, X, allowed)
    assert (probs[:, 1] == 0).all() and np.allclose(probs.sum(axis=1), 1.0)
    assert all(choose(mixed, x, 0.999, allowed).arm_index != 1 for x in X)
    with pytest.raises(ValueError, match="allowed"):
        probabilities(mixed, X, [False] * 4)


def test_json_round_trip_keeps_every_field() -> None:
    p = params("lints", min_explore=0.05, floor_arms=("small",), prior_mix=0.2,
               prior_probs=(0.0, 0.5, 0.25, 0.25), counts=(1.0, 2.0, 3.0, 4.5))  # fmt: skip
    q = BanditParams.from_json(p.to_json())
    assert q.to_json() == p.to_json()
    assert np.array_equal(probabilities(p, contexts(30))[0], probabilities(q, contexts(30))[0])
    assert not q.theta.flags.writeable


def _mutate(**changes: Any) -> str:
    data = json.loads(params(floor_arms=("small",)).to_json())
    data.update(changes)
    return json.dumps({k: v for k, v in data.items() if v != "<drop>"})


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("not json", "not JSON"),
        ("[1, 2]", "JSON object"),
        (_mutate(schema=2), "schema"),
        (_mutate(version="<drop>"), "missing keys version"),
        (_mutate(extra=1), "unknown keys extra"),
        (_mutate(algorithm="ucb2"), "algorithm"),
        (_mutate(arms=["a", "a", "b", "c"]), "arms"),
        (_mutate(arms="abcd"), "arms must be a list"),
        (_mutate(counts=5), "counts must be a list"),
        (_mutate(theta=[[0.0] * D] * 3), "theta"),
        (_mutate(a_inv=[[[float("nan")] * D] * D] * 4), "a_inv"),
        (_mutate(exploration=-1), "exploration"),
        (_mutate(algorithm="egreedy", exploration=1.5), "exploration"),
        (_mutate(min_explore=2), "min_explore"),
        (_mutate(floor_arms=["nope"]), "floor_arms"),
        (_mutate(floor_arms=list(ARMS)), "every arm"),
        (_mutate(prior_mix=0.5), "needs prior_probs"),
        (_mutate(prior_mix=0.5, prior_probs=[0.5, 0.5, 0.5, 0.5]), "sum to 1"),
        (_mutate(prior_mix=0.5, prior_probs=[1.0, 0.0, 0.0, 0.0]), "0 on floor_arms"),
        (_mutate(draws=0), "draws"),
        (_mutate(features=[f"f{i}" for i in range(D)]), "features"),
    ],
)
def test_bad_params_are_rejected_with_a_clear_message(text: str, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        BanditParams.from_json(text)


def test_u_must_be_in_the_unit_interval() -> None:
    with pytest.raises(ValueError, match="u must"):
        choose(params(), contexts(1)[0], 1.0)


# learner


def test_sherman_morrison_and_batch_updates_match_closed_form_ridge() -> None:
    X = contexts(600, seed=2)
    rng = np.random.default_rng(2)
    arms, rewards = rng.integers(0, 3, 600), rng.random(600)
    one = LinUCB(ARMS[:3])
    for x, a, r in zip(X, arms, rewards, strict=True):
        one.update(x, int(a), float(r))
    batch = LinUCB(ARMS[:3])
    batch.update_batch(X[:250], arms[:250], rewards[:250])
    batch.update_batch(X[250:], arms[250:], rewards[250:])
    for k in range(3):
        Xk, rk = X[arms == k], rewards[arms == k]
        theta = np.linalg.solve(Xk.T @ Xk + np.eye(D), Xk.T @ rk)
        assert np.allclose(one.theta_[k], theta) and np.allclose(batch.theta_[k], theta)
    assert np.allclose(one.n_, np.bincount(arms))


def test_discounted_update_matches_weighted_ridge() -> None:
    X = contexts(60, seed=4)
    rewards = np.random.default_rng(4).random(60)
    bandit = LinUCB(ARMS[:1], discount=0.99)  # 60 steps: the ridge term stays above half
    for x, r in zip(X, rewards, strict=True):
        bandit.update(x, 0, float(r))
    w = 0.99 ** np.arange(59, -1, -1)
    A = 0.99**60 * np.eye(D) + (X * w[:, None]).T @ X
    assert np.allclose(bandit.theta_[0], np.linalg.solve(A, X.T @ (w * rewards)))


def test_rewards_outside_the_unit_interval_are_refused() -> None:
    with pytest.raises(ValueError, match="reward"):
        LinUCB(ARMS).update(contexts(1)[0], 0, 1.5)
    with pytest.raises(ValueError, match="rewards"):
        LinUCB(ARMS).update_batch(contexts(2), [0, 1], [0.5, -0.1])


@pytest.mark.parametrize("cls", CLASSES)
def test_bandits_converge_to_the_better_arm_per_context(cls: type[LinearBandit]) -> None:
    """Arm 0 is better on low complexity, arm 1 on high; arm 2 never."""
    rng = np.random.default_rng(11)
    X = contexts(3000, seed=11)
    complexity = X[:, FEATURES.index("complexity")]
    means = np.stack([0.8 - 0.5 * complexity, 0.3 + 0.5 * complexity, 0.2 + 0 * complexity], 1)
    bandit = cls(ARMS[:3], discount=0.999)
    guard = Safeguards(min_explore=0.02)
    p = bandit.to_params("v0", guard)
    right = []
    for t, x in enumerate(X):
        if t % 50 == 0:
            p = bandit.to_params(f"v{t}", guard)
        arm = choose(p, x, rng).arm_index
        reward = float(np.clip(means[t, arm] + rng.normal(0, 0.1), 0, 1))
        bandit.update(x, arm, reward)
        right.append(arm == means[t].argmax())
    assert np.mean(right[-500:]) > 0.85


def test_from_params_resumes_the_same_estimates() -> None:
    X = contexts(200)
    bandit = LinearThompson(ARMS, 0.15, discount=0.995)
    bandit.update_batch(X, np.arange(200) % 4, np.linspace(0, 1, 200))
    again = LinearThompson.from_params(bandit.to_params("v"), discount=0.995)
    assert np.allclose(again.theta_, bandit.theta_) and again.exploration == 0.15
    assert np.allclose(again.n_, bandit.n_)
    assert LinUCB.from_params(bandit.to_params("v")).exploration == LinUCB.default_exploration


def test_reward_floor_and_max_shift_safeguards() -> None:
    X = contexts(400)
    bandit = LinUCB(ARMS, 0.0)
    rewards = np.array([0.9, 0.5, 0.05, 0.5])
    arms = np.arange(400) % 4
    bandit.update_batch(X, arms, rewards[arms])
    guard = Safeguards(min_explore=0.04, max_shift=0.2, reward_floor=0.2)
    previous = params("egreedy", exploration=0.0, prior_mix=1.0, prior_probs=(0, 0, 0, 1.0))
    new = bandit.to_params("v2", guard, X, previous)
    assert new.floor_arms == ("large",)
    shares_before = probabilities(previous, X)[0].mean(axis=0)
    shares_after = probabilities(new, X)[0].mean(axis=0)
    assert np.abs(shares_after - shares_before).max() <= 0.2 + 1e-9
    assert 0 < new.prior_mix < 1
    unguarded = bandit.to_params("v3", Safeguards(min_explore=0.04), X, previous)
    assert unguarded.prior_mix == 0 and unguarded.floor_arms == ()
    everything_low = bandit.to_params("v4", Safeguards(reward_floor=0.99), X)
    assert everything_low.floor_arms == ("medium", "large", "local/x:adapter@v2")
    assert bandit.to_params("v5", guard, X[:0], previous).prior_mix == 0  # no contexts

"""Score a bandit rule's arms for one request from the learner's published parameters.

The learner (learner/bandits.py) fits one ridge regression of reward on the context per arm
and publishes `BanditParams` as JSON; every replica loads them (`BanditParams.from_json`,
which raises ValueError on anything malformed or fitted on other `FEATURES`: the rule then
serves its static chain) and calls `choose(params, featurize(context), u)` per request.
numpy only, one code path for one request and for a batch (`probabilities`, which is what
off-policy evaluation calls), so the logged propensity is the probability the policy had.

Choice probabilities for a context x, in this order:

1. the algorithm's distribution over the eligible arms (all arms but `floor_arms`):
   - linucb: argmax of theta_k.x + alpha * sqrt(x' A_inv_k x), ties split evenly;
   - egreedy: 1 - epsilon on the argmax of theta_k.x (ties split), epsilon spread evenly;
   - lints: Thompson sampling. Each arm's sampled reward is N(theta_k.x, v^2 x' A_inv_k x);
     P(arm) is estimated from `draws` joint draws of fixed standard normals Z [draws, K],
     seeded from the version string, so probabilities are a deterministic, reproducible
     function of x (within 1/draws of true Thompson sampling). The arm is then drawn from
     those probabilities with `u`, which makes the logged propensity exact for the policy
     that actually ran.
2. `prior_mix` blends in `prior_probs`, the previous publication's traffic shares: this is
   how the learner enforces `max_shift` (it picks the weight; the scorer just mixes).
3. `min_explore` spreads that much probability evenly over every arm, floored ones included:
   a floored arm (estimated below the policy's reward floor) is never chosen on merit, only
   through this small exploration share, which keeps every propensity > 0 for off-policy
   evaluation and lets a recovered model be noticed. Set min_explore to 0 to exclude them.
4. `allowed` (optional, per request) zeroes arms the request may not use, and renormalises.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, fields
from typing import Any, Literal, cast, get_args

import numpy as np
import numpy.typing as npt

from gateway.policy.bandit_features import FEATURES, FloatArray

Algorithm = Literal["linucb", "lints", "egreedy"]
ALGORITHMS: tuple[str, ...] = get_args(Algorithm)
SCHEMA = 1
_TIE = 1e-12
_CHUNK = 2048  # contexts per vectorised block in `probabilities`


@dataclass(frozen=True, eq=False)
class BanditParams:
    """One publication for one (tenant, rule). `exploration` is alpha (linucb), the posterior
    scale v (lints) or epsilon (egreedy). Arrays are float64 and read-only."""

    version: str
    algorithm: Algorithm
    arms: tuple[str, ...]
    features: tuple[str, ...]
    theta: FloatArray  # [K, d]: each arm's ridge estimate of mean reward given x
    a_inv: FloatArray  # [K, d, d]: each arm's inverse design matrix
    exploration: float
    min_explore: float = 0.0
    floor_arms: tuple[str, ...] = ()
    prior_mix: float = 0.0
    prior_probs: tuple[float, ...] | None = None
    counts: tuple[float, ...] | None = None  # effective observations per arm (for display)
    draws: int = 256  # lints: joint draws behind each probability estimate
    _eligible: npt.NDArray[np.bool_] = field(init=False, repr=False)
    _prior: FloatArray = field(init=False, repr=False)
    _a_flat: FloatArray = field(init=False, repr=False)
    _z: FloatArray = field(init=False, repr=False)

    def __post_init__(self) -> None:
        try:
            _validate(self)
        except (TypeError, ValueError) as exc:
            raise ValueError(f"bandit params {self.version!r}: {exc}") from None
        k, d = self.theta.shape
        eligible = np.array([arm not in self.floor_arms for arm in self.arms])
        prior = np.array(self.prior_probs if self.prior_probs is not None else [1.0 / k] * k)
        z = np.zeros((0, k))
        if self.algorithm == "lints":
            seed = hashlib.blake2b(self.version.encode(), digest_size=8).digest()
            z = np.random.default_rng(int.from_bytes(seed, "big")).standard_normal((self.draws, k))
        for name, value in (("_eligible", eligible), ("_prior", prior / prior.sum()), ("_z", z)):
            value.setflags(write=False)
            object.__setattr__(self, name, value)
        object.__setattr__(self, "_a_flat", self.a_inv.reshape(k, d * d))

    def to_json(self) -> str:
        data: dict[str, Any] = {"schema": SCHEMA}
        for f in fields(self):
            if f.init:
                value = getattr(self, f.name)
                data[f.name] = value.tolist() if isinstance(value, np.ndarray) else value
        return json.dumps(data)

    @classmethod
    def from_json(
        cls,
        data: str | bytes | Mapping[str, Any],
        expected_features: Sequence[str] | None = FEATURES,
    ) -> BanditParams:
        """Parse and validate a publication; ValueError says what is wrong. Parameters fitted
        on features other than `expected_features` are refused (pass None to skip that)."""
        try:
            raw = json.loads(data) if isinstance(data, str | bytes) else dict(data)
        except ValueError as exc:
            raise ValueError(f"bandit params: not JSON ({exc})") from None
        if not isinstance(raw, dict):
            raise ValueError("bandit params: expected a JSON object")
        if raw.pop("schema", None) != SCHEMA:
            raise ValueError(f"bandit params: schema must be {SCHEMA}")
        names = {f.name for f in fields(cls) if f.init}
        if unknown := sorted(set(raw) - names):
            raise ValueError(f"bandit params: unknown keys {', '.join(unknown)}")
        required = ("version", "algorithm", "arms", "features", "theta", "a_inv", "exploration")
        if missing := [key for key in required if key not in raw]:
            raise ValueError(f"bandit params: missing keys {', '.join(missing)}")
        params = cls(**raw)
        if expected_features is not None and params.features != tuple(expected_features):
            raise ValueError(
                f"bandit params {params.version!r}: fitted on features {list(params.features)}, "
                f"this gateway computes {list(expected_features)}"
            )
        return params


def _validate(p: BanditParams) -> None:
    if not isinstance(p.version, str) or not p.version:
        raise ValueError("version must be a non-empty string")
    if p.algorithm not in ALGORITHMS:
        raise ValueError(f"algorithm must be one of {', '.join(ALGORITHMS)}, not {p.algorithm!r}")
    for name in ("arms", "features", "floor_arms", "prior_probs", "counts"):
        value = getattr(p, name)
        if isinstance(value, list):  # from JSON, or a caller's list
            object.__setattr__(p, name, value := tuple(value))
        optional = name in ("prior_probs", "counts")
        if not isinstance(value, tuple) and not (optional and value is None):
            raise ValueError(f"{name} must be a list")
    k, d = len(p.arms), len(p.features)
    for name, names in (("arms", p.arms), ("features", p.features)):
        if not names or len(set(names)) != len(names) or not all(isinstance(n, str) for n in names):
            raise ValueError(f"{name} must be a non-empty list of distinct strings")
    for name, shape in (("theta", (k, d)), ("a_inv", (k, d, d))):
        array = np.array(getattr(p, name), dtype=np.float64)
        if array.shape != shape or not np.isfinite(array).all():
            raise ValueError(f"{name} must be finite numbers shaped {list(shape)}")
        array.setflags(write=False)
        object.__setattr__(p, name, array)
    _number(p, "exploration", 0.0, 1.0 if p.algorithm == "egreedy" else 1e6)
    _number(p, "min_explore", 0.0, 1.0)
    _number(p, "prior_mix", 0.0, 1.0)
    if not isinstance(p.draws, int) or not 1 <= p.draws <= 4096:
        raise ValueError("draws must be an integer in [1, 4096]")
    if len(set(p.floor_arms)) != len(p.floor_arms) or not set(p.floor_arms) <= set(p.arms):
        raise ValueError("floor_arms must be distinct names from arms")
    if len(p.floor_arms) == k:
        raise ValueError("floor_arms may not hold every arm")
    for name in ("prior_probs", "counts"):
        values = getattr(p, name)
        if values is not None and (
            len(values) != k or not all(isinstance(v, int | float) and v >= 0 for v in values)
        ):
            raise ValueError(f"{name} must be {k} numbers >= 0")
    if p.prior_mix > 0 and p.prior_probs is None:
        raise ValueError("prior_mix > 0 needs prior_probs")
    if p.prior_probs is not None:
        if abs(sum(p.prior_probs) - 1.0) > 1e-6:
            raise ValueError("prior_probs must sum to 1")
        if any(p.prior_probs[p.arms.index(arm)] > 0 for arm in p.floor_arms):
            raise ValueError("prior_probs must be 0 on floor_arms")


def _number(p: BanditParams, name: str, low: float, high: float) -> None:
    value = getattr(p, name)
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ValueError(f"{name} must be a number")
    if not low <= value <= high:
        raise ValueError(f"{name} must lie in [{low:g}, {high:g}], got {value!r}")


@dataclass(frozen=True, slots=True)
class Choice:
    """The arm picked for one request, its exact propensity, every arm's probability and the
    algorithm's score (linucb: the upper confidence bound; otherwise the estimated reward)."""

    arm_index: int
    arm: str
    propensity: float
    probs: FloatArray
    scores: FloatArray

    def ranking(self) -> tuple[int, ...]:
        """Arm indices for a fallback chain: the chosen arm, then the rest by score."""
        rest = [int(i) for i in np.argsort(-self.scores, kind="stable") if i != self.arm_index]
        return (self.arm_index, *rest)


def probabilities(
    params: BanditParams,
    X: npt.ArrayLike,
    allowed: npt.ArrayLike | None = None,
) -> tuple[FloatArray, FloatArray]:
    """Choice probabilities and scores, each [n, K], for contexts X [n, d] (or one [d])."""
    X = np.asarray(X, dtype=np.float64)
    X = X.reshape(1, -1) if X.ndim == 1 else X
    if X.shape[1:] != (len(params.features),):
        raise ValueError(f"contexts must have {len(params.features)} features, got {X.shape}")
    if len(X) > _CHUNK:
        parts = [
            probabilities(params, X[i : i + _CHUNK], allowed) for i in range(0, len(X), _CHUNK)
        ]
        return np.concatenate([p for p, _ in parts]), np.concatenate([s for _, s in parts])
    n, k = len(X), len(params.arms)
    # einsum, not BLAS matmul: OpenBLAS's threads, woken by other numpy work in the process,
    # put 2-3x p99 spikes on these tiny products; einsum's own loops cost ~2 us more p50
    mean = np.einsum("nd,kd->nk", X, params.theta)
    eligible = params._eligible
    if params.algorithm == "egreedy":
        scores, eps = mean, params.exploration
        probs = (1.0 - eps) * _greedy(scores, eligible) + eps * eligible / eligible.sum()
    else:
        outer = (X[:, :, None] * X[:, None, :]).reshape(n, -1)
        var = np.einsum("ni,ki->nk", outer, params._a_flat)
        sd = np.sqrt(np.maximum(var, 0.0))
        if params.algorithm == "linucb":
            scores = mean + params.exploration * sd
            probs = _greedy(scores, eligible)
        else:
            scores = mean
            draws = mean[:, None, :] + (params.exploration * sd)[:, None, :] * params._z
            if not eligible.all():
                draws = np.where(eligible, draws, -np.inf)
            winners = draws.argmax(axis=2) + (np.arange(n) * k)[:, None]
            probs = np.bincount(winners.ravel(), minlength=n * k).reshape(n, k) / params.draws
    if params.prior_mix > 0:
        probs = (1.0 - params.prior_mix) * probs + params.prior_mix * params._prior
    if params.min_explore > 0:
        probs = (1.0 - params.min_explore) * probs + params.min_explore / k
    if allowed is not None:
        mask = np.asarray(allowed, dtype=bool)
        if not mask.any():
            raise ValueError("allowed must leave at least one arm")
        probs = probs * mask
        total = probs.sum(axis=1, keepdims=True)
        probs = np.where(total > 0, probs / np.where(total > 0, total, 1.0), mask / mask.sum())
    return cast(FloatArray, probs), cast(FloatArray, scores)


def _greedy(scores: FloatArray, eligible: npt.NDArray[np.bool_]) -> FloatArray:
    masked = scores if eligible.all() else np.where(eligible, scores, -np.inf)
    top = masked >= masked.max(axis=1, keepdims=True) - _TIE
    return cast(FloatArray, top / top.sum(axis=1, keepdims=True))


def choose(
    params: BanditParams,
    x: npt.ArrayLike,
    u: float | np.random.Generator,
    allowed: npt.ArrayLike | None = None,
) -> Choice:
    """Pick an arm for context x: `u` in [0, 1) (e.g. `strategies.sticky_unit(...)` for
    sticky assignment) or a Generator to draw it from. The propensity is exact."""
    point = u.random() if isinstance(u, np.random.Generator) else float(u)
    if not 0.0 <= point < 1.0:
        raise ValueError(f"u must lie in [0, 1), got {point}")
    all_probs, all_scores = probabilities(params, x, allowed)
    probs, scores = all_probs[0], all_scores[0]
    cdf = np.cumsum(probs)
    index = int(np.searchsorted(cdf, point * cdf[-1], side="right"))
    if index >= len(probs) or probs[index] <= 0:  # only at the float edge of the cdf
        index = int(np.flatnonzero(probs)[-1])
    return Choice(index, params.arms[index], float(probs[index]), probs, scores)

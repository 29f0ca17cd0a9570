"""Held-out evaluation of a reward model: pairwise accuracy and calibration (ECE).

The model's probability that the chosen response wins is `p = sigmoid(s_chosen - s_rejected)`.
Pairwise accuracy counts `s_chosen > s_rejected` (a tie counts half). Every pair counts in
both orientations for calibration, (p, outcome 1) and (1 - p, outcome 0), so the outcomes
are not all 1 and the measure does not depend on which side was listed first; the expected
calibration error is then the usual binned one: with `bins` equal-width bins over [0, 1],
`sum_b (n_b / N) * |mean outcome_b - mean p_b|`.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

from learner.reward_model.base import PreferencePair, RewardModel


def sigmoid(x: float) -> float:
    if x >= 0:
        return 1.0 / (1.0 + math.exp(-x))
    z = math.exp(x)
    return z / (1.0 + z)


def expected_calibration_error(
    probabilities: Sequence[float], outcomes: Sequence[int], bins: int = 10
) -> float:
    """Binned ECE of predicted probabilities against 0/1 outcomes (bins of equal width)."""
    if len(probabilities) != len(outcomes):
        raise ValueError("probabilities and outcomes differ in length")
    if not probabilities:
        return 0.0
    totals = [[0, 0.0, 0.0] for _ in range(bins)]  # count, sum p, sum outcome
    for p, y in zip(probabilities, outcomes, strict=True):
        b = min(int(p * bins), bins - 1)
        totals[b][0] += 1
        totals[b][1] += p
        totals[b][2] += y
    n = len(probabilities)
    return sum(abs(s_y - s_p) / n for count, s_p, s_y in totals if count)


def pair_scores(
    model: RewardModel, pairs: Sequence[PreferencePair]
) -> tuple[list[float], list[float]]:
    scores = model.score_many(
        [(p.prompt, p.chosen) for p in pairs] + [(p.prompt, p.rejected) for p in pairs]
    )
    return scores[: len(pairs)], scores[len(pairs) :]


def evaluate(
    model: RewardModel, heldout: Sequence[PreferencePair], bins: int = 10
) -> dict[str, float]:
    """{"pairwise_accuracy", "ece", "n"} on held-out pairs."""
    chosen, rejected = pair_scores(model, heldout)
    wins = sum(
        1.0 if c > r else 0.5 if c == r else 0.0 for c, r in zip(chosen, rejected, strict=True)
    )
    p = [sigmoid(c - r) for c, r in zip(chosen, rejected, strict=True)]
    ece = expected_calibration_error(p + [1 - q for q in p], [1] * len(p) + [0] * len(p), bins)
    n = len(heldout)
    return {"pairwise_accuracy": wins / n if n else 0.0, "ece": ece, "n": n}

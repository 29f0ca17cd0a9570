"""Feedback to reward: one number in [0, 1] per interaction, by the tenant's policy.

Signals rank by how much they say. An explicit one (the latest thumb, score or
correction) decides alone. Otherwise a retry of the same prompt soon after counts against
the answer, then clicks and dwell time count for it. With no signal at all the policy's
default applies (or the event is left out). A request the gateway could not serve
(status >= 500) earns 0. Finally cost and latency are charged at the policy's weights.
"""

from __future__ import annotations

from collections.abc import Sequence

from gateway.events import Feedback, InteractionEvent
from gateway.policy.model import RewardPolicy

EXPLICIT = ("thumbs", "score", "correction")


def signal_value(feedback: Feedback, policy: RewardPolicy) -> float:
    """What one piece of feedback says about the answer, in [0, 1]."""
    if feedback.kind == "thumbs":
        return policy.thumbs_up if feedback.value > 0 else policy.thumbs_down
    if feedback.kind == "score":
        low, high = policy.score_range
        return _clip((feedback.value - low) / (high - low))
    if feedback.kind == "correction":
        return policy.correction
    if feedback.kind == "click":
        return policy.click if feedback.value > 0 else 0.0
    return _clip(feedback.value / policy.dwell_full_s)  # dwell seconds


def reward(
    event: InteractionEvent,
    feedback: Sequence[Feedback],
    retried: bool,
    policy: RewardPolicy,
) -> float | None:
    """The reward for `event`, or None when it has no signal and the policy has no default."""
    if event.status >= 500:
        base: float | None = 0.0
    else:
        base = _quality(feedback, retried, policy)
    if base is None:
        return None
    charge = policy.cost_weight * event.cost_usd + policy.latency_weight * event.latency_ms / 1000
    return _clip(base - charge)


def _quality(feedback: Sequence[Feedback], retried: bool, policy: RewardPolicy) -> float | None:
    explicit = [f for f in feedback if f.kind in EXPLICIT]
    if explicit:
        return signal_value(max(explicit, key=lambda f: f.ts), policy)
    if retried:
        return policy.retry
    implicit = [signal_value(f, policy) for f in feedback]
    if implicit:
        return max(implicit)
    return policy.default


def _clip(value: float) -> float:
    return min(1.0, max(0.0, value))

"""Every signal kind becomes the reward the policy says."""

from __future__ import annotations

import pytest

from gateway.events import Feedback, InteractionEvent
from gateway.policy.model import RewardPolicy
from learner.rewards import reward

POLICY = RewardPolicy(default=0.6, dwell_full_s=30, score_range=(1, 5))


def event(**extra: object) -> InteractionEvent:
    fields: dict[str, object] = {
        "request_id": "r1",
        "tenant": "t",
        "ts": 100.0,
        "endpoint": "chat/completions",
        "model": "auto",
        "status": 200,
    }
    fields.update(extra)
    return InteractionEvent.model_validate(fields)


def fb(kind: str, value: float, ts: float = 101.0) -> Feedback:
    return Feedback.model_validate(
        {
            "feedback_id": f"{kind}{ts}",
            "request_id": "r1",
            "tenant": "t",
            "kind": kind,
            "value": value,
            "ts": ts,
        }
    )


@pytest.mark.parametrize(
    ("signals", "expected"),
    [
        ([fb("thumbs", 1)], 1.0),
        ([fb("thumbs", -1)], 0.0),
        ([fb("thumbs", 0)], 0.0),
        ([fb("score", 4)], 0.75),
        ([fb("score", 9)], 1.0),
        ([fb("correction", 1)], 0.2),
        ([fb("click", 1)], 0.8),
        ([fb("dwell", 15)], 0.5),
        ([fb("dwell", 300)], 1.0),
        ([fb("click", 1), fb("dwell", 3)], 0.8),  # the strongest implicit signal
        ([fb("thumbs", 1, ts=101), fb("thumbs", -1, ts=105)], 0.0),  # the latest thumb
        ([fb("click", 1), fb("thumbs", -1)], 0.0),  # explicit beats implicit
        ([], 0.6),  # the policy's default
    ],
)
def test_signals(signals: list[Feedback], expected: float) -> None:
    assert reward(event(), signals, retried=False, policy=POLICY) == pytest.approx(expected)


def test_retry_counts_against_the_answer_unless_explicit_feedback_says_otherwise() -> None:
    assert reward(event(), [fb("click", 1)], retried=True, policy=POLICY) == pytest.approx(0.1)
    assert reward(event(), [fb("thumbs", 1)], retried=True, policy=POLICY) == 1.0


def test_failures_costs_latency_and_no_default() -> None:
    assert reward(event(status=502), [fb("thumbs", 1)], False, POLICY) == 0.0
    charged = RewardPolicy(cost_weight=10.0, latency_weight=0.1)
    slow = event(cost_usd=0.01, latency_ms=2000)
    assert reward(slow, [fb("thumbs", 1)], False, charged) == pytest.approx(1 - 0.1 - 0.2)
    assert reward(event(), [], False, RewardPolicy(default=None)) is None

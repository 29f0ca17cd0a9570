"""The learner's consumption across a crash: nothing lost, nothing counted twice."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

from gateway.config import FlywheelConfig
from gateway.events import Feedback, InteractionEvent
from gateway.store import open_store
from learner.service import GROUP, Learner, LearnerOptions

POLICY = """tenant: t
virtual_models: [auto]
learning: {publish_every: 1000, reward: {horizon_s: 0.05, default: 0.5}}
rules:
  - name: r
    route: {strategy: bandit, chain: [a, b]}
"""


def config(tmp_path: Path) -> FlywheelConfig:
    (tmp_path / "policies").mkdir(exist_ok=True)
    (tmp_path / "policies" / "t.yaml").write_text(POLICY)
    return FlywheelConfig.model_validate(
        {"store": f"sqlite:///{tmp_path / 'store.db'}", "policies_dir": str(tmp_path / "policies")}
    )


def event(i: int) -> InteractionEvent:
    return InteractionEvent.model_validate(
        {"request_id": f"req-{i}", "tenant": "t", "ts": time.time(), "endpoint": "chat/completions",
         "model": "auto", "status": 200,
         "routing": {"strategy": "bandit", "rule": "r", "arm": "ab"[i % 2], "propensity": 0.5},
         "context": {"intent": "chat", "complexity": 0.3}}
    )  # fmt: skip


def thumbs(i: int) -> Feedback:
    return Feedback.model_validate(
        {"feedback_id": f"fb-{i}", "request_id": f"req-{i}", "tenant": "t", "kind": "thumbs",
         "value": 1, "ts": time.time()}
    )  # fmt: skip


async def settle(learner: Learner) -> None:
    for _ in range(5):
        await learner.step()
        await asyncio.sleep(0.06)


async def test_restart_redelivers_unacked_entries_and_counts_each_decision_once(
    tmp_path: Path,
) -> None:
    cfg = config(tmp_path)
    options = LearnerOptions(state_dir=tmp_path / "state", consumer="c1", block_ms=10)
    writer = open_store(cfg.store or "")
    await writer.start()
    await writer.put_events([event(i) for i in range(10)])
    for i in range(10):
        await writer.put_feedback(thumbs(i))

    first = Learner(cfg, options, open_store(cfg.store or ""))
    await first.start()
    await settle(first)
    assert first.rules[("t", "r")].learned == 10

    # More decisions arrive; the learner reads them, then dies before acking.
    await writer.put_events([event(i) for i in range(10, 20)])
    await writer.put_events([event(3)])  # a duplicate delivery of an old decision
    delivered = await first.store.read("events", GROUP, "c1", 100)
    assert len(delivered) == 10
    await first.close()

    second = Learner(cfg, options, open_store(cfg.store or ""))
    await second.start()
    assert second.rules[("t", "r")].learned == 10  # rebuilt from the replay buffer
    await settle(second)
    rule = second.rules[("t", "r")]
    assert rule.learned == 20  # the unacked ten were redelivered; nothing twice
    assert second.replay.counts()["experience"] == 20
    assert second.replay.counts()["pending"] == 0
    rewards = {e.request_id: e.reward for e in second.replay.experiences("t", "r")}
    assert rewards["req-3"] == 1.0 and rewards["req-15"] == 0.5  # thumbs vs the default
    await second.close()
    await writer.close()


def test_a_malformed_stream_entry_is_skipped_and_counted() -> None:
    from gateway.store import StreamEntry
    from learner.metrics import LearnerMetrics
    from learner.service import _parse_all

    metrics = LearnerMetrics()
    good = StreamEntry("2", event(1).model_dump_json().encode())
    parsed = _parse_all(InteractionEvent, [StreamEntry("1", b"{not json"), good], metrics)
    assert [e.request_id for e in parsed] == ["req-1"]
    assert metrics.malformed._value.get() == 1

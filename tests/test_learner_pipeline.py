"""A training run end to end on a real SQLite store: snapshot -> job -> registered candidate."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from gateway.adapters import find
from gateway.events import Feedback, InteractionEvent
from gateway.store import open_store
from learner.datasets import load_snapshot
from learner.pipeline import TrainRequest, reward_models_dir, train
from learner.replay import Experience, ReplayBuffer
from tests.support.tiny_model import build_tiny_model

TOPICS = ["tides", "bread", "volcanoes", "jet lag", "compound interest", "rainbows",
          "sourdough", "glaciers", "caching", "eclipses", "coffee", "magnets"]  # fmt: skip


def interaction(i: int, topic: str, good: bool, ts: float) -> tuple[InteractionEvent, Feedback]:
    answer = (f"Summary: {topic} in one line. Then two short sentences about {topic}."
              if good else f"Well, so, {topic} is a long story and honestly " * 4)  # fmt: skip
    event = InteractionEvent.model_validate({
        "request_id": f"r{i}", "tenant": "t", "ts": ts, "endpoint": "chat/completions",
        "model": "auto", "status": 200, "user": f"u{i}",
        "context": {"intent": "billing" if i < 8 else "chat"},
        "routing": ({"strategy": "bandit", "rule": "r", "arm": "a", "propensity": 0.5}
                if i % 2 == 0 else {"strategy": "first", "rule": "default"}),
        "request": {"model": "auto",
                    "messages": [{"role": "user", "content": f"Tell me about {topic}."}]},
        "response": {"choices": [{"index": 0, "message": {"role": "assistant",
                                                          "content": answer}}]},
    })  # fmt: skip
    feedback = Feedback.model_validate({"feedback_id": f"f{i}", "request_id": f"r{i}",
                                        "tenant": "t", "kind": "thumbs",
                                        "value": 1 if good else -1, "ts": ts + 1})  # fmt: skip
    return event, feedback


async def test_reward_model_and_sft_runs_register_a_candidate(tmp_path: Path) -> None:
    store = open_store(f"sqlite:///{tmp_path / 'store.db'}")
    await store.start()
    replay = ReplayBuffer(tmp_path / "replay.db")
    now = time.time() - 1000
    records = [interaction(2 * k + g, topic, bool(g), now + 2 * k + g)
               for k, topic in enumerate(TOPICS) for g in (0, 1)]  # fmt: skip
    await store.put_events([e for e, _ in records])
    for _, feedback in records:
        await store.put_feedback(feedback)
    # The thumbs-down answers were a bandit's decisions, with rewards; the thumbs-up ones a
    # static route's, which the replay buffer only indexes: pairs need both.
    failed = records[0][0].model_copy(update={"request_id": "failed", "status": 502})
    unlogged = records[0][0].model_copy(update={"request_id": "unlogged", "request": None})
    replay.add([e for e, _ in records] + [failed, unlogged], [])
    assert replay.logged_since("t", 0) == len(records)  # what a snapshot could use
    for event, feedback in records[::2]:
        value = 1.0 if feedback.value > 0 else 0.0
        experience = Experience(event.request_id, "t", "r", event.ts, "a", 0.5, None, {}, value)
        replay.finish([(event.request_id, experience)])
    base = build_tiny_model(tmp_path / "tiny")
    out = tmp_path / "learner"
    rm = await train(TrainRequest("reward_model", "t", base, out_root=out), store, replay,
                     lambda: False)  # fmt: skip
    if rm.status == "no_data":
        pytest.fail(f"no preference pairs from the logged interactions: {rm}")
    assert rm.status == "trained" and rm.detail["pairs"] > 0
    snapshot = load_snapshot(out / "snapshots" / rm.snapshot)
    used = {i for p in snapshot.pairs for i in p.request_ids}
    assert used & {e.request_id for e, _ in records[::2]}  # decisions
    assert used & {e.request_id for e, _ in records[1::2]}  # static traffic, indexed only
    assert (reward_models_dir(out, "t") / rm.snapshot / "reward_model.json").exists()
    billing = await train(TrainRequest("reward_model", "t", base, out_root=out, intent="billing"),
                          store, replay, lambda: False)  # fmt: skip
    billed = load_snapshot(out / "snapshots" / billing.snapshot)
    assert billed.pairs and {i for p in billed.pairs for i in p.request_ids} <= {
        f"r{i}" for i in range(8)
    }
    sft = await train(TrainRequest("sft", "t", base, out_root=out, steps=2), store, replay,
                      lambda: False)  # fmt: skip
    assert sft.status == "registered", sft
    assert sft.detail["registered"] == "t-sft-v1"
    record = await find(store, sft.detail["registered"])
    assert record is not None and record.needs_approval and record.status == "candidate"
    assert record.created_by == f"job:sft-{sft.snapshot}" and record.tenants == ["t"]
    assert (Path(record.location) / "adapter_config.json").is_file()
    await store.close()


def test_a_task_adapter_trains_on_its_intent_only() -> None:
    request = TrainRequest("sft", "Acme Corp", Path("base"), intent="billing/refunds")
    assert request.adapter_name.startswith("acme-corp-billing-refunds-sft-")
    assert TrainRequest("rl", "t", Path("base")).adapter_name == "t-rl"
    # Names that would collide without the hash: case, and tenant vs tenant + intent.
    names = {TrainRequest("sft", t, Path("b"), intent=i).adapter_name
             for t, i in [("acme", None), ("Acme", None), ("acme-support", None),
                          ("acme", "support"), ("x" * 120, None)]}  # fmt: skip
    assert len(names) == 5 and all(n.endswith(("-sft", "-sft-" + n[-6:])) for n in names)
    assert all(len(n) <= 100 for n in names)

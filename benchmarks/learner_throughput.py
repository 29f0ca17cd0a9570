"""`flywheel bench learner-throughput`: the learner's end-to-end throughput on one core.

N bandit decisions and one thumbs-up/down each are written to a fresh SQLite store; then
the learner consumes both streams (consumer group, acks), commits them to its replay
buffer, finalises each decision into an experience with its reward, and updates the
rule's bandit. Reported: decisions per second through all of that, stream entries per
second, and the bandit update alone. With `--json` the last line is one JSON object.

    python -m benchmarks.learner_throughput [--events 20000] [--json]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import tempfile
import time
from pathlib import Path

import numpy as np

from gateway.config import FlywheelConfig
from gateway.events import Feedback, InteractionEvent
from gateway.policy.bandit_features import featurize
from gateway.store import open_store
from learner.bandits import LinUCB
from learner.service import Learner, LearnerOptions

POLICY = """tenant: bench
virtual_models: [auto]
learning: {publish_every: 1000000, reward: {horizon_s: 0.01}}
rules:
  - name: r
    route: {strategy: bandit, chain: [a, b, c]}
"""


def _event(i: int, now: float) -> InteractionEvent:
    return InteractionEvent.model_validate(
        {"request_id": f"req-{i}", "tenant": "bench", "ts": now, "endpoint": "chat/completions",
         "model": "auto", "status": 200, "latency_ms": 120.0, "cost_usd": 0.0001,
         "routing": {"strategy": "bandit", "rule": "r", "arm": "abc"[i % 3], "propensity": 0.4},
         "context": {"intent": "chat", "complexity": (i % 10) / 10, "input_chars": 200 + i % 500,
                     "messages": 1 + i % 4}}
    )  # fmt: skip


def _feedback(i: int, now: float) -> Feedback:
    return Feedback.model_validate(
        {"feedback_id": f"fb-{i}", "request_id": f"req-{i}", "tenant": "bench",
         "kind": "thumbs", "value": 1 if i % 3 else -1, "ts": now}
    )  # fmt: skip


async def measure(n: int) -> dict[str, float]:
    work = Path(tempfile.mkdtemp(prefix="flywheel-learner-bench-"))
    (work / "policies").mkdir()
    (work / "policies" / "bench.yaml").write_text(POLICY)
    url = f"sqlite:///{work / 'store.db'}"
    config = FlywheelConfig.model_validate({"store": url, "policies_dir": str(work / "policies")})
    store = open_store(url)
    await store.start()
    now = time.time()
    for start in range(0, n, 1000):
        await store.put_events([_event(i, now) for i in range(start, min(n, start + 1000))])
    for i in range(n):
        await store.put_feedback(_feedback(i, now))
    await store.close()
    options = LearnerOptions(state_dir=work / "state", block_ms=0, batch=2000)
    learner = Learner(config, options, open_store(url))
    await learner.start()
    await asyncio.sleep(0.02)  # past the horizon
    started = time.perf_counter()
    while learner.replay.counts()["experience"] < n:
        await learner.step()
    seconds = time.perf_counter() - started
    await learner.close()
    bandit = LinUCB(("a", "b", "c"))
    xs = [featurize({"intent": "chat", "complexity": (i % 10) / 10}) for i in range(n)]
    rng = np.random.default_rng(1)
    arms, rewards = rng.integers(0, 3, n), rng.random(n)
    update_started = time.perf_counter()
    for x, arm, value in zip(xs, arms, rewards, strict=True):
        bandit.update(x, int(arm), float(value))
    update_s = time.perf_counter() - update_started
    return {
        "events": n,
        "seconds": round(seconds, 3),
        "events_per_s": round(n / seconds),
        "stream_entries_per_s": round(2 * n / seconds),
        "bandit_updates_per_s": round(n / update_s),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="flywheel bench learner-throughput", description=__doc__)
    parser.add_argument("--events", type=int, default=20_000)
    parser.add_argument("--json", action="store_true", help="last line: one JSON object")
    args = parser.parse_args(argv)
    figures = asyncio.run(measure(args.events))
    print(f"learner, SQLite store, one process ({args.events:,} decisions + as many feedback)")
    print(f"  end to end:     {figures['events_per_s']:>9,} decisions/s "
          f"({figures['stream_entries_per_s']:,} stream entries/s)")  # fmt: skip
    print(f"  bandit update:  {figures['bandit_updates_per_s']:>9,} updates/s")
    target = figures["events_per_s"] >= 10_000
    print(f"  target >= 10k decisions/s: {'PASS' if target else 'MISS'}")
    if args.json:
        print(json.dumps(figures))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

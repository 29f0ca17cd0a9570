"""The training scheduler: due runs start, never two of one kind, kill switches hold them."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from gateway.policy.library import parse_policy
from learner.scheduler import Scheduler

POLICY = """tenant: {tenant}
virtual_models: [auto]
learning:
  jobs:
    reward_model: {{min_new: 100, every_s: 60}}
    rl: {{min_new: 100, every_s: 60, needs_approval: false, intent: billing}}
rules:
  - name: r
    route: {{strategy: first, chain: [m]}}
"""


class FakeJob:
    def __init__(self, args: list[str]) -> None:
        self.args = args
        self.returncode: int | None = None

    def poll(self) -> int | None:
        return self.returncode


def test_runs_start_when_due_one_per_kind_and_not_when_killed(tmp_path: Path) -> None:
    jobs: list[FakeJob] = []

    def spawn(args: list[str]) -> Any:
        jobs.append(FakeJob(args))
        return jobs[-1]

    scheduler = Scheduler(tmp_path, spawn=spawn)
    policies = {t: parse_policy(POLICY.format(tenant=t), f"{t}.yaml") for t in ("a", "b")}
    alive = lambda tenant, kind: False  # noqa: E731
    assert scheduler.tick(policies, {"a": 50, "b": 50}, alive, now=1000) == []  # not enough data
    # rl waits for a reward model; one reward_model run at a time across tenants
    assert scheduler.tick(policies, {"a": 150, "b": 150}, alive, now=1000) == [
        ("a", "reward_model")
    ]
    assert "--tenant" in jobs[0].args and "reward-model" in jobs[0].args
    assert scheduler.tick(policies, {"a": 300, "b": 300}, alive, now=1010) == []  # still running
    jobs[0].returncode = 0
    saved = tmp_path / "reward_models" / "snap1"
    saved.mkdir(parents=True)
    (saved / "reward_model.json").write_text("{}")
    started = scheduler.tick(policies, {"a": 300, "b": 300}, alive, now=1020)
    assert started == [("a", "rl"), ("b", "reward_model")]
    assert str(saved) in jobs[1].args and "--no-approval" in jobs[1].args
    assert jobs[1].args[jobs[1].args.index("--intent") + 1] == "billing"  # one task's adapter
    assert "--intent" not in jobs[0].args
    killed = lambda tenant, kind: True  # noqa: E731
    for job in jobs:
        job.returncode = 0
    assert scheduler.tick(policies, {"a": 900, "b": 900}, killed, now=5000) == []

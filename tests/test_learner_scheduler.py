"""The training scheduler: due runs start, never two of one kind, kill switches hold them."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from gateway.policy.library import parse_policy
from learner.pipeline import reward_models_dir
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


def new(count: int) -> Callable[[str, float], int]:
    """Every tenant has `count` logged interactions since any time asked about."""
    return lambda tenant, since: count


def test_runs_start_when_due_one_per_kind_and_not_when_killed(tmp_path: Path) -> None:
    jobs: list[FakeJob] = []

    def spawn(args: list[str]) -> Any:
        jobs.append(FakeJob(args))
        return jobs[-1]

    scheduler = Scheduler(tmp_path, spawn=spawn)
    policies = {t: parse_policy(POLICY.format(tenant=t), f"{t}.yaml") for t in ("a", "b")}
    alive = lambda tenant, kind: False  # noqa: E731
    assert scheduler.tick(policies, new(50), alive, now=1000) == []  # not enough data
    # rl waits for a reward model; one reward_model run at a time across tenants
    assert scheduler.tick(policies, new(150), alive, now=1000) == [("a", "reward_model")]
    assert "--tenant" in jobs[0].args and "reward-model" in jobs[0].args
    assert scheduler.tick(policies, new(300), alive, now=1010) == []  # still running
    jobs[0].returncode = 0
    saved = reward_models_dir(tmp_path, "a") / "snap1"  # a's: b's rl keeps waiting
    saved.mkdir(parents=True)
    (saved / "reward_model.json").write_text("{}")
    started = scheduler.tick(policies, new(300), alive, now=1020)
    assert started == [("a", "rl"), ("b", "reward_model")]
    assert str(saved) in jobs[1].args and "--no-approval" in jobs[1].args
    assert jobs[1].args[jobs[1].args.index("--intent") + 1] == "billing"  # one task's adapter
    assert "--intent" not in jobs[0].args
    killed = lambda tenant, kind: True  # noqa: E731
    for job in jobs:
        job.returncode = 0
    assert scheduler.tick(policies, new(900), killed, now=5000) == []


def test_the_last_start_of_each_run_survives_a_restart(tmp_path: Path) -> None:
    policies = {"a": parse_policy(POLICY.format(tenant="a"), "a.yaml")}
    asked: list[float] = []

    def arrived(tenant: str, since: float) -> int:
        asked.append(since)
        return 500

    first = Scheduler(tmp_path, spawn=lambda args: FakeJob(args))  # type: ignore[arg-type,return-value]
    assert first.tick(policies, arrived, lambda t, k: False, now=1000) == [("a", "reward_model")]
    again = Scheduler(tmp_path, spawn=lambda args: FakeJob(args))  # type: ignore[arg-type,return-value]
    assert again.tick(policies, arrived, lambda t, k: False, now=1030) == []  # every_s: 60
    assert again.tick(policies, arrived, lambda t, k: False, now=1070) == [("a", "reward_model")]
    assert 1000 in asked  # the restarted scheduler counts new data from the last start

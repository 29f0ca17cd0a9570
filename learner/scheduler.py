"""Starts training runs when enough new data has arrived, never two of one kind at once.

Each tenant policy lists the kinds it wants (`learning.jobs`: reward_model, sft, rl) with
how many new logged interactions (answered requests whose content the tenant logs, from
the replay buffer's index) must arrive since that kind's last run and how long to wait
between runs. A due run is started as its own process (`flywheel learner train ...`), so
the learner's loop never waits on training; its kill switch (`job:<kind>`, the tenant's,
global) keeps new runs from starting, and the running job polls it itself. An rl run
waits until the tenant has a reward model of its own.
"""

from __future__ import annotations

import json
import logging
import subprocess
import sys
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

from gateway.policy.model import JobSchedule, Policy
from learner.pipeline import reward_models_dir

log = logging.getLogger("flywheel.learner")
KINDS = ("reward_model", "sft", "rl")
Spawn = Callable[[list[str]], "subprocess.Popen[bytes]"]


STATE_FILE = "schedule.json"  # when each (tenant, kind) last started, across restarts


@dataclass
class Scheduler:
    state_dir: Path
    config_path: Path | None = None
    spawn: Spawn = field(default=lambda args: subprocess.Popen(args))
    running: dict[str, subprocess.Popen[bytes]] = field(default_factory=dict)  # kind -> job
    last: dict[tuple[str, str], float] = field(default_factory=dict)  # -> when it started
    started: list[tuple[str, str]] = field(default_factory=list)  # (tenant, kind), for status

    def __post_init__(self) -> None:
        path = self.state_dir / STATE_FILE
        try:
            saved = json.loads(path.read_text()) if path.exists() else []
            self.last = {(str(t), str(k)): float(at) for t, k, at in saved} | self.last
        except (OSError, ValueError, TypeError) as exc:
            log.warning("ignoring unreadable %s: %s", path, exc)

    def tick(
        self,
        policies: Mapping[str, Policy],
        arrived: Callable[[str, float], int],
        killed: Callable[[str, str], bool],
        now: float | None = None,
    ) -> list[tuple[str, str]]:
        """Start what is due; the (tenant, kind) pairs started. `arrived(tenant, since)`
        counts the tenant's logged interactions newer than `since` (the replay buffer's)."""
        now = time.time() if now is None else now
        for kind, job in list(self.running.items()):
            if job.poll() is not None:
                log.info("training run %s ended with %s", kind, job.returncode)
                del self.running[kind]
        begun: list[tuple[str, str]] = []
        for tenant, policy in sorted(policies.items()):
            for kind, schedule in policy.learning.jobs.items():
                last = self.last.get((tenant, kind), 0.0)
                if kind in self.running or now - last < schedule.every_s:
                    continue
                new = arrived(tenant, last)
                if new < schedule.min_new or killed(tenant, kind):
                    continue
                reward_model = self.reward_model(tenant)
                if kind == "rl" and reward_model is None:
                    continue
                command = self._command(tenant, kind, schedule, reward_model)
                self.running[kind] = self.spawn(command)
                self.last[(tenant, kind)] = now
                self._save()
                begun.append((tenant, kind))
                log.info("training run %s for %s started (%d new interactions)", kind, tenant, new)
        self.started += begun
        return begun

    def _save(self) -> None:
        self.state_dir.mkdir(parents=True, exist_ok=True)
        rows = [[tenant, kind, at] for (tenant, kind), at in sorted(self.last.items())]
        tmp = self.state_dir / f"{STATE_FILE}.tmp"
        tmp.write_text(json.dumps(rows))
        tmp.replace(self.state_dir / STATE_FILE)

    def reward_model(self, tenant: str) -> Path | None:
        """The newest reward model a run saved for the tenant."""
        root = reward_models_dir(self.state_dir, tenant)
        found = [p for p in root.glob("*/reward_model.json")] if root.is_dir() else []
        return max(found, key=lambda p: p.stat().st_mtime).parent if found else None

    def _command(
        self, tenant: str, kind: str, schedule: JobSchedule, reward_model: Path | None
    ) -> list[str]:
        args = [sys.executable, "-m", "gateway", "learner", "train", kind.replace("_", "-")]
        args += ["--tenant", tenant, "--state-dir", str(self.state_dir)]
        args += ["--steps", str(schedule.steps)]
        if schedule.intent is not None:
            args += ["--intent", schedule.intent]
        if self.config_path is not None:
            args += ["--config", str(self.config_path)]
        if reward_model is not None:
            args += ["--reward-model", str(reward_model)]
        if not schedule.needs_approval:
            args.append("--no-approval")
        return args

"""One training run end to end: snapshot -> job -> gates -> registered candidate.

`flywheel learner train {reward-model,sft,rl} --tenant T [--intent I]` (and the scheduler)
run this, for a tenant or one of its tasks:
the tenant's logged interactions the replay buffer indexes (the newest 50k, whatever
routed them) and its decisions, with their rewards, are collected from the store
(redacted text only) into a dataset snapshot; the job trains on its train
split; an adapter then goes through the gates on the held-out prompts against the base
model, and one that passes is registered as a candidate waiting for an operator's
approval (`created_by: job:<kind>-<snapshot>`, the gate report attached). A reward model
is saved under `<out>/reward_models/<tenant>-<hash>/<snapshot>/` for the tenant's RL jobs
and the worker's
`--reward-model`.
"""

from __future__ import annotations

import hashlib
import logging
import re
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Literal

from gateway.adapters import registry
from gateway.store import Store
from gateway.transcript import prompt_text
from learner.datasets import (
    Snapshot,
    build_snapshot,
    collect,
    replay_rewards,
    write_snapshot,
)
from learner.replay import ReplayBuffer

log = logging.getLogger("flywheel.learner")
Kind = Literal["reward_model", "sft", "rl"]


@dataclass
class TrainRequest:
    kind: Kind
    tenant: str
    base_dir: Path  # the local base model's Hugging Face directory
    base_name: str = "smollm2-135m"  # its served name (adapters are registered for it)
    out_root: Path = Path(".flywheel/learner")
    steps: int = 20
    reward_model_dir: Path | None = None  # rl: the reward model to optimise
    needs_approval: bool = True
    intent: str | None = None  # train on one task's traffic only (the classifier's intent)

    @property
    def adapter_name(self) -> str:
        """`<tenant>-<kind>`, or `<tenant>-<intent>-<kind>` for one task's adapter, as a
        registry name; a short hash of (tenant, intent) is appended when the readable part
        could be another tenant's (case or characters changed, cut, or an intent)."""
        tenant, intent = _slug(self.tenant, 40), _slug(self.intent or "", 30)
        name = "-".join(p for p in (tenant, intent, self.kind) if p)
        if self.intent or tenant != self.tenant:
            name += f"-{_digest(self.tenant, self.intent or '')}"
        return name


def reward_models_dir(out_root: Path, tenant: str) -> Path:
    """Where a tenant's reward models are saved, one directory per snapshot: a tenant's
    reward model, trained on its data, only ever drives its own RL runs and gates."""
    return out_root / "reward_models" / f"{_slug(tenant, 40) or 'tenant'}-{_digest(tenant)}"


def _digest(*parts: str) -> str:
    """Six hex digits that tell apart names whose readable part may coincide."""
    return hashlib.sha256("\0".join(parts).encode()).hexdigest()[:6]


def _slug(text: str, limit: int) -> str:
    return re.sub(r"[^a-z0-9._-]+", "-", text.lower()).strip("-._")[:limit].strip("-._")


@dataclass
class TrainOutcome:
    kind: Kind
    snapshot: str
    status: str  # trained | stopped | failed | no_data | gates_failed | registered
    detail: dict[str, Any]


async def train(
    request: TrainRequest, store: Store, replay: ReplayBuffer, killed: Callable[[], bool]
) -> TrainOutcome:
    snapshot = await _snapshot(request, store, replay)
    if request.kind == "reward_model":
        return _reward_model(request, snapshot)
    result = _adapter_job(request, snapshot, killed)
    if result is None:
        return TrainOutcome(request.kind, snapshot.id, "no_data", {})
    if result.status != "completed" or result.adapter_dir is None:
        return TrainOutcome(request.kind, snapshot.id, result.status, {"error": result.error})
    report = _gates(request, snapshot, result.adapter_dir)
    detail: dict[str, Any] = {"adapter": str(result.adapter_dir), "metrics": result.metrics}
    if report is not None:
        detail["gates"] = report.to_dict()
        if not report.passed:
            log.info("gates refused %s: %s", result.adapter_dir, report.summary())
            return TrainOutcome(request.kind, snapshot.id, "gates_failed", detail)
    record = await registry.register(
        store, name=request.adapter_name, base_model=request.base_name,
        location=str(result.adapter_dir), actor="learner",
        created_by=f"job:{request.kind}-{snapshot.id}", tenants=[request.tenant],
        needs_approval=request.needs_approval, gate_report=detail.get("gates"),
        metrics={k: float(v) for k, v in result.metrics.items() if isinstance(v, int | float)},
    )  # fmt: skip
    detail["registered"] = record.id
    return TrainOutcome(request.kind, snapshot.id, "registered", detail)


async def _snapshot(request: TrainRequest, store: Store, replay: ReplayBuffer) -> Snapshot:
    rewards = replay_rewards(replay, request.tenant)
    request_ids = list(dict.fromkeys([*replay.logged(request.tenant), *rewards]))
    interactions = await collect(store, request_ids, rewards)
    if request.intent is not None:
        interactions = [i for i in interactions if i.intent == request.intent]
    snapshot = build_snapshot(interactions)
    write_snapshot(snapshot, request.out_root / "snapshots")
    return snapshot


def _reward_model(request: TrainRequest, snapshot: Snapshot) -> TrainOutcome:
    from learner.reward_model import EmbeddingRewardModel, PreferencePair, evaluate

    def pairs(split: str) -> list[PreferencePair]:
        return [
            PreferencePair(prompt_text(p.prompt), p.chosen, p.rejected)
            for p in snapshot.pairs
            if p.split == split
        ]

    train_pairs, heldout = pairs("train"), pairs("heldout")
    if not train_pairs:
        return TrainOutcome("reward_model", snapshot.id, "no_data", {})
    model = EmbeddingRewardModel().fit(train_pairs)
    directory = model.save(reward_models_dir(request.out_root, request.tenant) / snapshot.id)
    metrics = dict(evaluate(model, heldout)) if heldout else {}
    detail = {"dir": str(directory), "heldout": metrics, "pairs": len(train_pairs)}
    return TrainOutcome("reward_model", snapshot.id, "trained", detail)


def _adapter_job(request: TrainRequest, snapshot: Snapshot, killed: Callable[[], bool]) -> Any:
    out = request.out_root / "jobs" / f"{request.kind}-{snapshot.id}"
    if request.kind == "sft":
        from learner.jobs.sft import SFTJob, SFTJobConfig

        rows = [
            {"messages": [*(asdict(t) for t in e.prompt),
                          {"role": "assistant", "content": e.completion}]}
            for e in snapshot.sft
            if e.split == "train"
        ]  # fmt: skip
        if not rows:
            return None
        config = SFTJobConfig(base_model=request.base_dir, output_dir=out,
                              served_base_name=request.base_name, max_steps=request.steps,
                              snapshot_id=snapshot.id)  # fmt: skip
        return SFTJob(config).run(rows, killed)
    from learner.jobs.rewards import Reward
    from learner.jobs.rl import GRPOJob, RLJobConfig
    from learner.reward_model import load_reward_model

    if request.reward_model_dir is None:
        raise ValueError("an rl job needs a reward model (--reward-model DIR)")
    prompts = [[asdict(t) for t in p.prompt] for p in snapshot.prompts if p.split == "train"]
    if not prompts:
        return None
    scorer = load_reward_model(request.reward_model_dir)
    rl_config = RLJobConfig(base_model=request.base_dir, output_dir=out,
                            served_base_name=request.base_name, max_steps=request.steps,
                            snapshot_id=snapshot.id)  # fmt: skip
    return GRPOJob(rl_config, [Reward.model(scorer)]).run(prompts, killed)


def _gates(request: TrainRequest, snapshot: Snapshot, adapter: Path) -> Any:
    from learner.gates import HeldOut, LocalGenerator, load_with_adapters, run_gates

    heldout = [HeldOut([asdict(t) for t in p.prompt]) for p in snapshot.prompts
               if p.split == "heldout"][:32]  # fmt: skip
    if not heldout or request.reward_model_dir is None:
        return None  # nothing to judge on: the operator's approval is the only gate
    from learner.reward_model import load_reward_model

    scorer = load_reward_model(request.reward_model_dir)
    model, tokenizer = load_with_adapters(request.base_dir, {"candidate": adapter})
    candidate = LocalGenerator(model, tokenizer, adapter="candidate")
    base = LocalGenerator(model, tokenizer, adapter=None)
    return run_gates(heldout, candidate, base, scorer.score, kl=candidate.kl_to_base,
                     names=("candidate", "base"))  # fmt: skip

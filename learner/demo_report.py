"""The demo's outputs: per-step GRPO curves from MLflow as PNGs, and the registry + canary."""

from __future__ import annotations

import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from gateway.adapters import registry
from gateway.policy.model import Canary
from gateway.store import open_store
from learner.canary import CanaryDecision, CanaryMonitor
from learner.gates import GateReport

ADAPTER = "demo"
JOB = "job:demo-rl"
OPERATOR = "demo"


def step_metrics(tracking_uri: str, run_id: str) -> dict[str, list[tuple[int, float]]]:
    """Every reward and KL metric of the GRPO run, per step (MLflow's history)."""
    from mlflow.tracking import MlflowClient

    client = MlflowClient(tracking_uri)
    keys = client.get_run(run_id).data.metrics.keys()
    out: dict[str, list[tuple[int, float]]] = {}
    for key in sorted(keys):
        if key == "kl" or key == "reward" or (key.startswith("rewards.") and key.endswith("mean")):
            history = client.get_metric_history(run_id, key)
            out[key] = sorted((int(m.step), float(m.value)) for m in history)
    return out


def save_curves(curves: dict[str, list[tuple[int, float]]], out: Path) -> list[Path]:
    """reward_curve.png (total and per reward) and kl_curve.png."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    paths = []
    for name, keys, title in (
        ("reward_curve.png", [k for k in curves if k != "kl"], "GRPO reward per step"),
        ("kl_curve.png", ["kl"], "KL(policy || base) per step"),
    ):
        fig, ax = plt.subplots(figsize=(6, 3.5))
        for key in keys:
            points = curves.get(key, [])
            if points:
                ax.plot([s for s, _ in points], [v for _, v in points], marker="o", label=key)
        ax.set_xlabel("step")
        ax.set_title(title)
        if any(curves.get(k) for k in keys):
            ax.legend(fontsize=7)
        fig.tight_layout()
        path = out / name
        fig.savefig(path, dpi=100)
        plt.close(fig)
        paths.append(path)
    return paths


async def registry_and_canary(
    store_path: Path,
    base_name: str,
    identity_adapter: Path,
    candidate_adapter: Path,
    report: GateReport,
    live: dict[str, Sequence[tuple[float, float]]],
    metrics: dict[str, float],
) -> tuple[list[str], str | None]:
    """Register v1 (a zero LoRA: the base model's behaviour) as active and the trained
    adapter as a job's candidate needing approval; approve it as the operator when the gates
    passed; then let the `CanaryMonitor` start the canary, feed it the synthetic users'
    live ratings (`live[version]`: (rating, latency ms) per answer) and decide.
    Returns the log lines and the promoted adapter id (None unless promoted)."""
    store = open_store(f"sqlite:///{store_path}")
    lines: list[str] = []
    try:
        await store.start()
        base = await registry.register(
            store,
            name=ADAPTER,
            base_model=base_name,
            location=str(identity_adapter),
            actor=OPERATOR,
            metrics={"note_zero_lora": 1.0},
        )
        await registry.promote(store, ADAPTER, base.version, actor=OPERATOR)
        lines.append(f"registered {base.id} (zero LoRA = the base model) and made it active")
        cand = await registry.register(
            store,
            name=ADAPTER,
            base_model=base_name,
            location=str(candidate_adapter),
            actor=JOB,
            created_by=JOB,
            metrics=metrics,
            needs_approval=True,
            gate_report=report.to_dict(),
        )
        lines.append(f"registered {cand.id} by {JOB}, needs approval")
        if not report.passed:
            lines.append(f"gates rejected {cand.id} ({', '.join(report.failed)}): not approved")
            return lines, None
        await registry.approve(store, ADAPTER, cand.version, actor=OPERATOR)
        lines.append(f"approved {cand.id} as operator {OPERATOR!r} (the demo plays the operator)")
        n = min(len(v) for v in live.values())
        monitor = CanaryMonitor(store, Canary(share=0.5, min_requests=n))
        decisions: list[CanaryDecision] = await monitor.decide()
        for version, judged in (("candidate", cand.id), ("base", base.id)):
            for rating, latency_ms in live[version]:
                monitor.observe(judged, rating, 200, latency_ms)
        decisions += await monitor.decide()
        lines += [f"canary {d.action} {d.adapter}: {d.reason}" for d in decisions]
        final = await registry.get(store, cand.id)
        lines.append(f"{cand.id} is now {final.status}")
        return lines, cand.id if final.status == "active" else None
    finally:
        await store.close()


def timed(fn: Any, *args: Any) -> tuple[Any, float]:
    start = time.monotonic()
    value = fn(*args)
    return value, (time.monotonic() - start) * 1000

"""`flywheel learner demo`: the whole learning loop on one CPU thread with SmolLM2-135M.

1. Synthetic users (`learner.demo_data.user_rating`) prefer answers that open with a one-line
   summary and stay under 80 words, which the base model rarely gives.
2. Logged traffic: the base model answers each prompt twice (sampled); the users rate the
   answers; `learner.datasets.build_snapshot` turns the rated interactions into preference
   pairs, scored samples and prompts, the newest prompts held out.
3. Reward model: the embedding tier fitted on the training pairs (and scored samples);
   held-out pairwise accuracy.
4. RL: a `GRPOJob` LoRA adapter with the reward model's score plus the programmatic
   `one_line_summary` and `no_repetition` rewards, on the training prompts. Without the
   latter, stronger settings found the reward model's blind spot: loops it scores well,
   which the gates' repetition audit then rejected.
5. Gates: `run_gates` on the held-out prompts, candidate vs the base model, with KL.
6. Registry and canary in a temporary SQLite store: v1 is a zero LoRA (the base model's
   behaviour) made active; the trained adapter is registered as the job's candidate, approved
   by the demo acting as the operator (only if the gates passed), put into canary by the
   `CanaryMonitor`, which is fed the users' ratings of sampled answers of both versions on
   the held-out prompts and promotes it or rolls it back.
7. Before/after reward on the held-out prompts, the gate report, reward and KL curves (PNG).

`--json` makes the last stdout line one JSON object (see `main`).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shutil
import tempfile
import time
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

DEFAULT_MODEL = Path(".flywheel/models/smollm2-135m")
DEFAULT_OUT = Path(".flywheel/demo")


@dataclass(frozen=True)
class Settings:
    steps: int
    seed: int
    prompts: int  # logged prompts (the newest quarter held out)
    samples: int  # sampled base answers per logged prompt
    traffic_tokens: int
    rl_batch: int  # prompts per GRPO step
    rl_generations: int  # completions per prompt
    rl_tokens: int
    learning_rate: float
    beta: float
    gate_tokens: int
    canary_samples: int  # sampled answers per held-out prompt and version
    screen_pii: bool = True
    repetition_weight: float = 1.0  # of the `no_repetition` reward beside the reward model


def settings(quick: bool, steps: int | None, seed: int) -> Settings:
    if quick:
        return Settings(steps or 2, seed, 12, 2, 32, 1, 4, 8, 1e-2, 0.02, 12, 1, False)
    return Settings(steps or 15, seed, 40, 4, 48, 2, 4, 32, 1.5e-3, 0.02, 64, 2)


def run(base_model: Path, out: Path, s: Settings, served_name: str) -> dict[str, Any]:
    """The loop; returns the result dict (the `--json` line)."""
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    import torch
    from tqdm import tqdm

    from gateway.transcript import prompt_text
    from learner import demo_report as rep
    from learner.demo_data import PROMPTS, traffic_snapshot, user_rating
    from learner.gates import GateConfig, HeldOut, LocalGenerator, load_with_adapters, run_gates
    from learner.jobs.base import lora_config, seed_everything
    from learner.jobs.rewards import Reward, no_repetition, one_line_summary
    from learner.jobs.rl import GRPOJob, RLJobConfig
    from learner.reward_model import EmbeddingRewardModel, PreferencePair, ScoredSample, evaluate

    start = time.monotonic()
    torch.set_num_threads(1)
    out.mkdir(parents=True, exist_ok=True)
    bar = tqdm(total=7, desc="demo", unit="phase")

    def phase(name: str) -> None:
        bar.set_description(name)

    # 2. logged traffic, rated by the synthetic users
    phase("traffic")
    seed_everything(s.seed)
    logged = list(PROMPTS[: s.prompts])
    model, tokenizer = load_with_adapters(base_model, {})
    base = LocalGenerator(model, tokenizer, None, batch_size=16)
    flat = base.generate([p for p in logged for _ in range(s.samples)], s.traffic_tokens, False)
    answers = [flat[i * s.samples : (i + 1) * s.samples] for i in range(len(logged))]
    snapshot, _ = traffic_snapshot(logged, answers, pii_types=None if s.screen_pii else ())
    train_prompts = [prompt_text(p.prompt) for p in snapshot.prompts if p.split == "train"]
    heldout_prompts = [prompt_text(p.prompt) for p in snapshot.prompts if p.split == "heldout"]
    pairs = {
        split: [
            PreferencePair(prompt_text(p.prompt), p.chosen, p.rejected)
            for p in snapshot.pairs
            if p.split == split
        ]
        for split in ("train", "heldout")
    }
    scored = [
        ScoredSample(prompt_text(x.prompt), x.response, x.reward)
        for x in snapshot.scored
        if x.split == "train"
    ]
    del model, base
    bar.update()

    # 3. reward model
    phase("reward model")
    rm = EmbeddingRewardModel(name="demo-rm").fit(pairs["train"], scored)
    rm.save(out / "reward_model")
    rm_eval = evaluate(rm, pairs["heldout"])
    bar.update()

    # 4. RL
    phase("grpo")
    job_dir = out / "rl-job"
    shutil.rmtree(job_dir, ignore_errors=True)
    config = RLJobConfig(
        base_model=base_model,
        output_dir=job_dir,
        served_base_name=served_name,
        seed=s.seed,
        max_steps=s.steps,
        learning_rate=s.learning_rate,
        batch_size=s.rl_batch,
        num_generations=s.rl_generations,
        max_completion_length=s.rl_tokens,
        beta=s.beta,
        save_steps=10_000,
        resume=False,
        progress=False,
        run_name="demo-rl",
        tracking_uri=(out / "mlruns").absolute().as_uri(),
        snapshot_id=snapshot.id,
    )
    rewards = [
        Reward.model(rm, 1.0),
        replace(one_line_summary(), weight=0.5),
        replace(no_repetition(), weight=s.repetition_weight),
    ]
    result = GRPOJob(config, rewards).run(train_prompts, lambda: False)
    if result.status != "completed" or result.adapter_dir is None:
        raise RuntimeError(f"the GRPO job {result.status}: {result.error}")
    curves = rep.step_metrics(result.tracking_uri, result.run_id)
    curve_files = rep.save_curves(curves, out)
    bar.update()

    # 5. gates: the candidate vs the base model on the held-out prompts
    phase("gates")
    torch.set_num_threads(1)
    seed_everything(s.seed)
    model, tokenizer = load_with_adapters(base_model, {"candidate": result.adapter_dir})
    cand_gen = Recording(LocalGenerator(model, tokenizer, "candidate", batch_size=16))
    base_gen = Recording(LocalGenerator(model, tokenizer, None, batch_size=16))
    gate_config = GateConfig(max_new_tokens=s.gate_tokens, seed=s.seed)
    report = run_gates(
        [HeldOut(p) for p in heldout_prompts],
        cand_gen,
        base_gen,
        rm.score,
        gate_config,
        kl=cand_gen.inner.kl_to_base,
        names=("candidate", "base"),
    )
    (out / "gate_report.json").write_text(json.dumps(report.to_dict(), indent=2, default=str))
    (out / "gate_report.txt").write_text(report.summary() + "\n")
    before = [user_rating(p, a) for p, a in zip(heldout_prompts, base_gen.last, strict=True)]
    after = [user_rating(p, a) for p, a in zip(heldout_prompts, cand_gen.last, strict=True)]
    bar.update()

    # 6. live judgements for the canary: sampled answers of both versions, rated
    phase("canary traffic")
    live: dict[str, list[tuple[float, float]]] = {}
    for version, gen in (("candidate", cand_gen.inner), ("base", base_gen.inner)):
        seed_everything(s.seed + 1)
        asked = [p for p in heldout_prompts for _ in range(s.canary_samples)]
        said, ms = rep.timed(gen.generate, asked, s.gate_tokens, False)
        latency = ms / max(len(asked), 1) * min(len(asked), gen.batch_size)
        live[version] = [(user_rating(p, a), latency) for p, a in zip(asked, said, strict=True)]
    bar.update()
    phase("registry + canary")
    identity = _identity_adapter(base_model, config, out / "identity-adapter", lora_config)
    job_metrics = {"reward_candidate": report.reward_candidate, "kl": report.kl or 0.0}
    with tempfile.TemporaryDirectory(prefix="flywheel-demo-") as tmp:
        log, promoted = asyncio.run(
            rep.registry_and_canary(
                Path(tmp) / "store.db",
                served_name,
                identity,
                result.adapter_dir,
                report,
                {k: v for k, v in live.items()},
                job_metrics,
            )
        )
    bar.update()
    phase("report")
    bar.update()
    bar.close()
    wall = time.monotonic() - start
    mean = _mean
    print(
        f"logged: {len(logged)} prompts x {s.samples} answers; snapshot {snapshot.id}: "
        f"{len(pairs['train'])} train / {len(pairs['heldout'])} held-out pairs, "
        f"{len(train_prompts)} train / {len(heldout_prompts)} held-out prompts"
    )
    print(
        f"reward model (embedding tier): held-out pairwise accuracy "
        f"{rm_eval['pairwise_accuracy']:.3f} on {int(rm_eval['n'])} pairs, ECE {rm_eval['ece']:.3f}"
    )
    print(
        f"GRPO: {result.global_step} steps in {result.wall_s:.0f} s, adapter {result.adapter_dir}"
    )
    for key, points in curves.items():
        if points:
            print(
                f"  {key}: step {points[0][0]} {points[0][1]:.3f} -> step {points[-1][0]} "
                f"{points[-1][1]:.3f}"
            )
    print(
        f"held-out ({len(heldout_prompts)} prompts, greedy): users' mean rating "
        f"{mean(before):.3f} -> {mean(after):.3f}; reward model mean "
        f"{report.reward_baseline:.3f} -> {report.reward_candidate:.3f}"
    )
    print(report.summary())
    for line in log:
        print(line)
    print(f"artifacts: {', '.join(str(p) for p in curve_files)}, {out / 'gate_report.json'}")
    print(f"wall time {wall:.0f} s")
    return {
        "heldout_reward_before": mean(before),
        "heldout_reward_after": mean(after),
        "kl": float(report.kl or 0.0),
        "rm_pairwise_accuracy": float(rm_eval["pairwise_accuracy"]),
        "gates_passed": bool(report.passed),
        "promoted_adapter": promoted,
        "wall_seconds": round(wall, 2),
    }


class Recording:
    """A gate generator that keeps its last outputs (for the users' before/after ratings)."""

    def __init__(self, inner: Any) -> None:
        self.inner = inner
        self.last: list[str] = []

    def generate(self, prompts: Any, max_new_tokens: int, greedy: bool = True) -> list[str]:
        self.last = list(self.inner.generate(prompts, max_new_tokens, greedy))
        return self.last


def _mean(values: list[float]) -> float:
    return round(sum(values) / len(values), 4) if values else 0.0


def _identity_adapter(base_model: Path, config: Any, out: Path, make_config: Any) -> Path:
    """A LoRA with B = 0 (PEFT's init): exactly the base model, registrable as v1."""
    import torch
    from peft import get_peft_model
    from transformers import AutoModelForCausalLM

    model = AutoModelForCausalLM.from_pretrained(str(base_model), dtype=torch.float32)
    shutil.rmtree(out, ignore_errors=True)
    get_peft_model(model, make_config(config)).save_pretrained(str(out))
    return out


def parse(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="flywheel learner demo", description=__doc__.split("\n")[0]
    )
    parser.add_argument("--steps", type=int, default=None, help="GRPO steps (default 15)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT, help="artifacts directory")
    parser.add_argument("--quick", action="store_true", help="a tiny configuration (tests)")
    parser.add_argument("--json", action="store_true", help="last stdout line: a JSON summary")
    parser.add_argument("--base-model", type=Path, default=None, help="a local HF model dir")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    """Entry point of `flywheel learner demo`; 0 on a completed loop, 1 on a failure."""
    import sys

    args = parse(list(sys.argv[1:] if argv is None else argv))
    base_model = args.base_model
    if base_model is None:
        from local_worker.model_files import resolve

        base_model = resolve("smollm2-135m").path
    served = "smollm2-135m" if args.base_model is None else Path(base_model).name
    try:
        result = run(
            Path(base_model), args.out, settings(args.quick, args.steps, args.seed), served
        )
    except Exception as exc:  # the command's boundary: say what failed
        print(f"demo failed: {type(exc).__name__}: {exc}", file=sys.stderr)
        return 1
    (args.out / "demo_result.json").write_text(json.dumps(result, indent=2) + "\n")
    if args.json:
        print(json.dumps(result))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

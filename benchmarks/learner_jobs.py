"""`flywheel bench learner`: wall time and peak memory of each learner job on SmolLM2-135M.

Each job runs in its own subprocess (fp32, one torch thread), so its peak RSS is its own
(`os.wait4`'s ru_maxrss). Jobs: the reward model's fast tier (MiniLM + logistic head, fit +
eval) and transformer tier (LoRA RewardTrainer, a short run), both scored by held-out
pairwise accuracy and ECE on the demo users' preference as scripted pairs
(`learner.demo_data.summary_pairs`: a one-line summary then a short answer, over a long
ramble without one); SFT, GRPO and KTO LoRA runs on the same data. GRPO runs with the
demo's settings (steps, lr, beta, rollouts); its adapter is scored on held-out prompts:
mean reward (fast reward model + brevity + one-line summary) of greedy base vs adapter
completions, and KL to the base.

    python -m benchmarks.learner_jobs [--quick] [--jobs rm_fast,sft,...] [--json]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING, Any

from tqdm import tqdm

from learner.demo import settings

if TYPE_CHECKING:
    from learner.reward_model import PreferencePair

MODEL = Path(".flywheel/models/smollm2-135m")
JOBS = ("rm_fast", "rm_transformer", "sft", "grpo", "kto")
RL = settings(quick=False, steps=None, seed=0)  # the demo's GRPO: lr, beta, rollouts, steps
#                  rm_transformer steps, sft steps, grpo steps, kto steps (full, quick)
STEPS = {"rm_transformer": (10, 3), "sft": (20, 5), "grpo": (RL.steps, 3), "kto": (8, 3)}


def preference_data(seed: int = 0) -> dict[str, list[PreferencePair]]:
    """Every support topic x phrasing once; every 4th topic's pairs are held out."""
    from learner.demo_data import ASKS, TOPICS, summary_pairs

    heldout = TOPICS[3::4]
    train = [t for t in TOPICS if t not in heldout]
    return {
        "train": summary_pairs(len(train) * len(ASKS), seed, train),
        "heldout": summary_pairs(len(heldout) * len(ASKS), seed + 1, heldout),
    }


def _rewards(work: Path, train: list[PreferencePair]) -> list[Any]:
    from learner.jobs.rewards import Reward, brevity, one_line_summary
    from learner.reward_model import EmbeddingRewardModel, load_reward_model

    saved = work / "rm_fast"
    model = load_reward_model(saved) if saved.is_dir() else EmbeddingRewardModel().fit(train)
    return [Reward.model(model), brevity(200), one_line_summary(120)]


def run_child(job: str, work: Path, quick: bool) -> dict[str, Any]:
    """One job in this process; returns its figures (the parent adds wall and RSS)."""
    import time

    import torch

    torch.set_num_threads(1)
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    data = preference_data()
    train, heldout = data["train"], data["heldout"]
    steps = STEPS.get(job, (0, 0))[1 if quick else 0]
    if job in ("rm_fast", "rm_transformer"):
        from learner.reward_model import (
            EmbeddingRewardModel,
            TransformerRewardConfig,
            TransformerRewardModel,
            evaluate,
        )

        started = time.perf_counter()
        model: Any = (
            EmbeddingRewardModel()
            if job == "rm_fast"
            else TransformerRewardModel(MODEL, config=TransformerRewardConfig(max_steps=steps))
        )
        model.fit(train)
        fit_s = time.perf_counter() - started
        scores = evaluate(model, heldout)
        if job == "rm_fast":
            model.save(work / "rm_fast")
        return {"steps": steps or None, "train_s": fit_s, "accuracy": scores["pairwise_accuracy"],
                "ece": scores["ece"], "heldout_pairs": scores["n"]}  # fmt: skip
    from learner.jobs.base import JobConfig

    common: dict[str, Any] = {"base_model": MODEL, "output_dir": work / job, "max_steps": steps,
                              "tracking_uri": (work / "mlruns").as_uri(), "progress": False,
                              "save_steps": 10_000, "threads": 1}  # fmt: skip
    config: JobConfig
    if job == "sft":
        from learner.jobs.sft import SFTJob, SFTJobConfig

        config = SFTJobConfig(**common)
        examples = [{"prompt": p.prompt, "completion": p.chosen} for p in train]
        result = SFTJob(config).run(examples, lambda: False)
    elif job == "kto":
        from learner.jobs.kto import KTOJob, KTOJobConfig

        config = KTOJobConfig(**common)
        rows = [{"prompt": p.prompt, "completion": text, "label": label} for p in train
                for text, label in ((p.chosen, True), (p.rejected, False))]  # fmt: skip
        result = KTOJob(config).run(rows, lambda: False)
    else:
        from learner.jobs.rl import GRPOJob, RLJobConfig

        rewards = _rewards(work, train)
        config = RLJobConfig(**common, learning_rate=RL.learning_rate, beta=RL.beta,
                             batch_size=RL.rl_batch, num_generations=RL.rl_generations,
                             max_completion_length=RL.rl_tokens)  # fmt: skip
        result = GRPOJob(config, rewards).run([p.prompt for p in train], lambda: False)
    out: dict[str, Any] = {"steps": result.global_step, "train_s": result.wall_s,
                           "status": result.status, "error": result.error}  # fmt: skip
    if job == "grpo" and result.adapter_dir is not None:
        out.update(rl_eval(result.adapter_dir, rewards, [p.prompt for p in heldout[::3]]))
    return out


def rl_eval(adapter: Path, rewards: list[Any], prompts: list[str]) -> dict[str, float]:
    """Greedy completions, base vs adapter, on held-out prompts: reward gain and KL."""
    import torch
    from peft import PeftModel
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from learner.gates_metrics import chat_ids, kl_to_base

    tokenizer = AutoTokenizer.from_pretrained(str(MODEL))
    base = AutoModelForCausalLM.from_pretrained(str(MODEL), dtype=torch.float32)
    model: Any = PeftModel.from_pretrained(base, str(adapter)).eval()

    def generate(prompt: str) -> str:
        ids = torch.tensor([chat_ids(tokenizer, prompt)])
        with torch.inference_mode():
            out = model.generate(input_ids=ids, max_new_tokens=32, do_sample=False,
                                 pad_token_id=tokenizer.eos_token_id)  # fmt: skip
        return str(tokenizer.decode(out[0, ids.shape[1] :], skip_special_tokens=True))

    tuned = [generate(p) for p in prompts]
    with model.disable_adapter():
        plain = [generate(p) for p in prompts]

    def mean_reward(texts: list[str]) -> float:
        per: list[float] = [sum(r.weight * v for r, v in zip(rewards, vs, strict=True))
               for vs in zip(*(r.fn(prompts, texts) for r in rewards), strict=True)]  # fmt: skip
        return sum(per) / len(per)

    base_r, tuned_r = mean_reward(plain), mean_reward(tuned)
    return {"reward_base": base_r, "reward_adapter": tuned_r, "reward_gain": tuned_r - base_r,
            "kl_to_base": kl_to_base(model, tokenizer, prompts, tuned),
            "heldout_prompts": len(prompts)}  # fmt: skip


def spawn(job: str, work: Path, quick: bool, log: Path) -> dict[str, Any]:
    """Run one job in a fresh interpreter; wall time and its own peak RSS via wait4."""
    import time

    argv = [sys.executable, "-m", "benchmarks.learner_jobs", "--child", job, "--work", str(work)]
    env = {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1",
           "TOKENIZERS_PARALLELISM": "false", "HF_HUB_OFFLINE": "1"}  # fmt: skip
    started = time.perf_counter()
    with log.open("ab") as err:
        proc = subprocess.Popen([*argv, *(["--quick"] if quick else [])], stdout=subprocess.PIPE,
                                stderr=err, env=env)  # fmt: skip
        assert proc.stdout is not None
        stdout = proc.stdout.read().decode()
        _, status, usage = os.wait4(proc.pid, 0)
    proc.returncode = os.waitstatus_to_exitcode(status)
    wall = time.perf_counter() - started
    lines = stdout.strip().splitlines()
    figures: dict[str, Any] = {"status": "failed", "error": f"exit {proc.returncode}, see {log}"}
    if proc.returncode == 0 and lines:
        figures = {"status": "completed", **json.loads(lines[-1])}
    return {"job": job, **figures, "process_s": wall, "peak_rss_mb": usage.ru_maxrss / 1024}


def _fmt(value: Any, spec: str) -> str:
    return format(value, spec) if isinstance(value, int | float) else "-"


def table(rows: list[dict[str, Any]]) -> str:
    head = f"{'job':<15} {'steps':>5} {'train s':>8} {'process s':>9} {'peak RSS MB':>11}  result"
    lines = [head]
    for r in rows:
        if r["status"] != "completed":
            note = f"{r['status']}: {r.get('error')}"
        elif "accuracy" in r:
            note = f"held-out acc {r['accuracy']:.3f}, ECE {r['ece']:.3f} ({r['heldout_pairs']})"
        elif "reward_gain" in r:
            note = (f"held-out reward {r['reward_base']:.3f} -> {r['reward_adapter']:.3f} "
                    f"({r['reward_gain']:+.3f}), KL {r['kl_to_base']:.4f}")  # fmt: skip
        else:
            note = "completed"
        lines.append(f"{r['job']:<15} {_fmt(r.get('steps'), '>5d')} "
                     f"{_fmt(r.get('train_s'), '>8.1f')} {r['process_s']:>9.1f} "
                     f"{r['peak_rss_mb']:>11.0f}  {note}")  # fmt: skip
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="flywheel bench learner", description=__doc__)
    parser.add_argument("--quick", action="store_true", help="fewer steps per job")
    parser.add_argument("--jobs", default=",".join(JOBS), help=f"subset of {','.join(JOBS)}")
    parser.add_argument("--json", action="store_true", help="last line: one JSON object")
    parser.add_argument("--child", choices=JOBS, help=argparse.SUPPRESS)
    parser.add_argument("--work", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        print(json.dumps(run_child(args.child, args.work, args.quick)))
        return 0
    jobs = [j.strip() for j in args.jobs.split(",") if j.strip()]
    if unknown := set(jobs) - set(JOBS):
        parser.error(f"unknown jobs: {', '.join(sorted(unknown))}")
    if not MODEL.is_dir():
        print(f"{MODEL} not found: run from the repo root with the model downloaded")
        return 2
    rows: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory(prefix="flywheel-bench-learner-") as tmp:
        work, log = Path(tmp), Path(tempfile.gettempdir()) / "flywheel-bench-learner.log"
        log.write_text("")
        for job in (bar := tqdm(jobs, desc="learner jobs", unit="job", file=sys.stderr)):
            bar.set_postfix_str(job)
            rows.append(spawn(job, work, args.quick, log))
    data = preference_data()
    print(f"learner jobs on SmolLM2-135M, fp32, one torch thread, one process per job "
          f"({'quick' if args.quick else 'full'}; {len(data['train'])} train / "
          f"{len(data['heldout'])} held-out preference pairs)")  # fmt: skip
    print(table(rows))
    if args.json:
        print(json.dumps({"quick": args.quick, "jobs": rows}))
    return 0 if all(r["status"] == "completed" for r in rows) else 1


if __name__ == "__main__":
    raise SystemExit(main())

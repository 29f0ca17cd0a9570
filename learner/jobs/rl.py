"""PPO-style RL of a LoRA adapter with TRL's GRPOTrainer, on prompts from logged traffic.

Each step samples `num_generations` completions per prompt, scores them with the job's
rewards (a reward model plus programmatic checks, weighted and summed), turns the scores
into group-relative advantages, and takes a clipped policy-gradient step (`epsilon`) with a
`beta`-weighted KL penalty to the reference: the base model, i.e. this same model with the
adapter disabled, so no second copy is loaded. Reward and KL are logged every step.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from datasets import Dataset
from transformers import Trainer
from trl.trainer.grpo_config import GRPOConfig
from trl.trainer.grpo_trainer import GRPOTrainer

from learner.jobs.base import (
    JobConfig,
    JobResult,
    Killed,
    content_id,
    load_base,
    lora_config,
    run_job,
    training_kwargs,
)
from learner.jobs.rewards import Reward

Message = dict[str, str]
Prompt = str | Sequence[Message]


@dataclass
class RLJobConfig(JobConfig):
    # LoRA: at 1e-5, 6 steps left SmolLM2-135M's greedy answers unchanged (KL ~1e-6); the
    # demo's 1.5e-3 moves them in 15 steps (benchmarks/README.md). 1e-3 itself is untuned.
    learning_rate: float = 1e-3
    batch_size: int = 1  # prompts per step; each gets `num_generations` completions
    num_generations: int = 4
    max_completion_length: int = 64
    temperature: float = 1.0
    beta: float = 0.04  # KL coefficient to the base model (adapter disabled)
    epsilon: float = 0.2  # PPO clip range
    num_iterations: int = 1  # policy updates per batch of rollouts
    loss_type: str = "dapo"  # TRL's: grpo | dr_grpo | dapo | bnpo | ...
    scale_rewards: str = "group"  # group | batch | none


def rl_rows(prompts: Sequence[Prompt]) -> list[dict[str, list[Message]]]:
    rows = []
    for index, prompt in enumerate(prompts):
        if isinstance(prompt, str):
            messages = [{"role": "user", "content": prompt}]
        else:
            messages = [{"role": str(m["role"]), "content": str(m["content"])} for m in prompt]
        if not messages or messages[-1]["role"] != "user":
            raise ValueError(f"prompt {index}: must be a string or end with a user message")
        rows.append({"prompt": messages})
    if not rows:
        raise ValueError("no prompts")
    return rows


class GRPOJob:
    """`GRPOJob(config, rewards).run(prompts, killed)`; publishes an adapter unless killed."""

    kind = "rl"

    def __init__(self, config: RLJobConfig, rewards: Sequence[Reward]) -> None:
        if not rewards:
            raise ValueError("an RL job needs at least one reward")
        self.config = config
        self.rewards = list(rewards)

    def run(self, prompts: Sequence[Prompt], killed: Killed) -> JobResult:
        rows = rl_rows(prompts)
        snapshot = self.config.snapshot_id or content_id(rows)
        params = {
            "prompts": len(rows),
            "trainer": "trl.GRPOTrainer",
            "rewards": ",".join(f"{r.name}*{r.weight:g}" for r in self.rewards),
        }
        return run_job(
            self.kind, self.config, lambda: self._trainer(rows), killed, snapshot, params
        )

    def _trainer(self, rows: list[dict[str, list[Message]]]) -> Trainer:
        config = self.config
        model, tokenizer = load_base(config)
        kwargs = training_kwargs(config)
        kwargs["per_device_train_batch_size"] = config.batch_size * config.num_generations
        args = GRPOConfig(
            **kwargs,
            num_generations=config.num_generations,
            max_completion_length=config.max_completion_length,
            temperature=config.temperature,
            beta=config.beta,
            epsilon=config.epsilon,
            num_iterations=config.num_iterations,
            loss_type=config.loss_type,
            scale_rewards=config.scale_rewards,
            reward_weights=[r.weight for r in self.rewards],
            log_completions=False,
        )
        return GRPOTrainer(
            model=model,
            reward_funcs=[r.as_trl() for r in self.rewards],  # type: ignore[misc]
            args=args,
            train_dataset=Dataset.from_list(rows),
            processing_class=tokenizer,
            peft_config=lora_config(config),
        )

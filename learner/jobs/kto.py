"""KTO on unpaired thumbs: answers rated up are desirable, rated down undesirable.

A thin job over TRL's KTOTrainer with LoRA; the reference is the base model (the adapter
disabled). An example is `{"prompt": str, "completion": str, "label": bool}`.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from datasets import Dataset
from transformers import Trainer
from trl.trainer.kto_config import KTOConfig
from trl.trainer.kto_trainer import KTOTrainer

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


@dataclass
class KTOJobConfig(JobConfig):
    learning_rate: float = 5e-5
    beta: float = 0.1
    desirable_weight: float = 1.0
    undesirable_weight: float = 1.0


def kto_rows(examples: Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]:
    rows = []
    for index, example in enumerate(examples):
        prompt, completion, label = (example.get(k) for k in ("prompt", "completion", "label"))
        if not (
            isinstance(prompt, str) and isinstance(completion, str) and isinstance(label, bool)
        ):
            raise ValueError(f"example {index}: needs string prompt/completion and a bool label")
        rows.append(
            {
                "prompt": [{"role": "user", "content": prompt}],
                "completion": [{"role": "assistant", "content": completion}],
                "label": label,
            }
        )
    if len({row["label"] for row in rows}) < 2:
        raise ValueError("KTO needs both thumbs-up and thumbs-down examples")
    return rows


class KTOJob:
    kind = "kto"

    def __init__(self, config: KTOJobConfig) -> None:
        self.config = config

    def run(self, examples: Sequence[Mapping[str, Any]], killed: Killed) -> JobResult:
        rows = kto_rows(examples)
        snapshot = self.config.snapshot_id or content_id(rows)
        params = {"examples": len(rows), "trainer": "trl.KTOTrainer"}
        return run_job(
            self.kind, self.config, lambda: self._trainer(rows), killed, snapshot, params
        )

    def _trainer(self, rows: list[dict[str, Any]]) -> Trainer:
        config = self.config
        model, tokenizer = load_base(config)
        args = KTOConfig(
            **training_kwargs(config),
            max_length=config.max_length,
            beta=config.beta,
            desirable_weight=config.desirable_weight,
            undesirable_weight=config.undesirable_weight,
        )
        return KTOTrainer(
            model=model,
            args=args,
            train_dataset=Dataset.from_list(rows),
            processing_class=tokenizer,
            peft_config=lora_config(config),
        )

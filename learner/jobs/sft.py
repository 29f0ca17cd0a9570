"""LoRA SFT on curated chat examples (corrections, thumbs-up answers) with TRL's SFTTrainer.

An example is either `{"messages": [..., {"role": "assistant", "content": ...}]}` (the last
message is the target) or `{"prompt": str, "completion": str}`. Both become TRL's
conversational prompt-completion rows, so the model's own chat template is applied exactly as
the local worker applies it when serving, and the loss covers the answer only.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from datasets import Dataset
from transformers import Trainer
from trl.trainer.sft_config import SFTConfig
from trl.trainer.sft_trainer import SFTTrainer

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

Message = dict[str, str]


@dataclass
class SFTJobConfig(JobConfig):
    learning_rate: float = 2e-4
    completion_only_loss: bool = True


def sft_rows(examples: Sequence[Mapping[str, Any]]) -> list[dict[str, list[Message]]]:
    """Curated examples as conversational prompt/completion rows; bad ones raise ValueError."""
    rows = []
    for index, example in enumerate(examples):
        if "messages" in example:
            messages = [_message(m, index) for m in example["messages"]]
            if len(messages) < 2 or messages[-1]["role"] != "assistant":
                raise ValueError(
                    f"example {index}: the last of 2+ messages must be the assistant's"
                )
            rows.append({"prompt": messages[:-1], "completion": messages[-1:]})
        elif isinstance(example.get("prompt"), str) and isinstance(example.get("completion"), str):
            rows.append(
                {
                    "prompt": [{"role": "user", "content": example["prompt"]}],
                    "completion": [{"role": "assistant", "content": example["completion"]}],
                }
            )
        else:
            raise ValueError(f"example {index}: needs `messages` or string `prompt`/`completion`")
    if not rows:
        raise ValueError("no training examples")
    return rows


def _message(value: Any, index: int) -> Message:
    if not isinstance(value, Mapping) or not isinstance(value.get("content"), str):
        raise ValueError(f"example {index}: a message needs a `role` and string `content`")
    if value.get("role") not in ("system", "user", "assistant"):
        raise ValueError(f"example {index}: unknown role {value.get('role')!r}")
    return {"role": str(value["role"]), "content": value["content"]}


class SFTJob:
    """`SFTJob(config).run(examples, killed)` trains and (if not killed) publishes an adapter."""

    kind = "sft"

    def __init__(self, config: SFTJobConfig) -> None:
        self.config = config

    def run(self, examples: Sequence[Mapping[str, Any]], killed: Killed) -> JobResult:
        rows = sft_rows(examples)
        snapshot = self.config.snapshot_id or content_id(rows)
        params = {"examples": len(rows), "trainer": "trl.SFTTrainer"}
        return run_job(
            self.kind, self.config, lambda: self._trainer(rows), killed, snapshot, params
        )

    def _trainer(self, rows: list[dict[str, list[Message]]]) -> Trainer:
        config = self.config
        model, tokenizer = load_base(config)
        args = SFTConfig(
            **training_kwargs(config),
            max_length=config.max_length,
            completion_only_loss=config.completion_only_loss,
            packing=False,
            dataset_num_proc=None,
        )
        return SFTTrainer(
            model=model,
            args=args,
            train_dataset=Dataset.from_list(rows),
            processing_class=tokenizer,
            peft_config=lora_config(config),
        )

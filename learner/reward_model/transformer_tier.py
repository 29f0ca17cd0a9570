"""The transformer tier: a causal LM with a scalar head and a LoRA, trained by TRL's RewardTrainer.

The base (a local Hugging Face causal LM directory, e.g. `.flywheel/models/smollm2-135m`)
is loaded as `AutoModelForSequenceClassification(num_labels=1)`: a fresh linear `score`
head reads the hidden state of the last non-pad token. A PEFT LoRA (task SEQ_CLS, so the
head is trained and saved in full beside the LoRA matrices) is fitted with TRL's
Bradley-Terry loss `-log sigmoid(r_chosen - r_rejected)`. The text scored is the prompt
and response in the tokenizer's chat template (user, assistant turns); the dataset is
tokenized here with that same function, so training and scoring read identical tokens.
The score is the head's raw output (a logit, not squashed). CPU, fp32, no downloads.
"""

from __future__ import annotations

import tempfile
import threading
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from learner.reward_model.base import (
    PreferencePair,
    RewardModelError,
    ScoredSample,
    pairs_from_scored,
    require_pairs,
    write_manifest,
)

TIER = "transformer"
ADAPTER_DIR = "adapter"
TOKENIZER_DIR = "tokenizer"


@dataclass
class TransformerRewardConfig:
    max_steps: int = 200  # optimizer steps, each `batch_size * grad_accum` pairs
    # 4 pairs a forward pass, 2 accumulated: 8 pairs a step. Batch 8 in one pass peaked at
    # 6 GB on SmolLM2-135M with long responses (benchmarks/README.md, bench learner).
    batch_size: int = 4
    grad_accum: int = 2
    learning_rate: float = 5e-4
    max_length: int = 512  # tokens; longer texts are cut from the left (the response's end stays)
    lora_r: int = 8
    lora_alpha: int = 16
    lora_dropout: float = 0.0
    target_modules: list[str] = field(default_factory=lambda: ["q_proj", "v_proj"])
    seed: int = 0
    threads: int = 1
    score_batch: int = 16


class TransformerRewardModel:
    tier = TIER

    def __init__(
        self,
        base: Path,
        name: str = "reward-transformer",
        config: TransformerRewardConfig | None = None,
    ) -> None:
        self.base = Path(base)
        self.name = name
        self.config = config or TransformerRewardConfig()
        self.model_: Any = None
        self.tokenizer_: Any = None
        self.train_seconds_: float | None = None
        self._lock = threading.Lock()

    def fit(
        self, pairs: Sequence[PreferencePair], scored: Sequence[ScoredSample] = ()
    ) -> TransformerRewardModel:
        """Train a fresh LoRA and head; scored samples join as pairs within a prompt."""
        import time

        import torch
        from datasets import Dataset
        from peft import LoraConfig, TaskType
        from transformers.trainer_callback import PrinterCallback
        from trl.trainer.reward_config import RewardConfig
        from trl.trainer.reward_trainer import RewardTrainer

        all_pairs = [*pairs, *pairs_from_scored(scored)]
        require_pairs(all_pairs)
        cfg = self.config
        torch.set_num_threads(cfg.threads)
        tokenizer = self._load_tokenizer(self.base)
        model = _load_base(self.base, tokenizer)
        self.tokenizer_ = tokenizer
        rows = [
            {
                "chosen_ids": self._ids(p.prompt, p.chosen),
                "rejected_ids": self._ids(p.prompt, p.rejected),
            }
            for p in all_pairs
        ]
        lora = LoraConfig(
            task_type=TaskType.SEQ_CLS,
            r=cfg.lora_r,
            lora_alpha=cfg.lora_alpha,
            lora_dropout=cfg.lora_dropout,
            target_modules=list(cfg.target_modules),
        )
        started = time.perf_counter()
        with tempfile.TemporaryDirectory(prefix="flywheel-rm-") as out:
            args = RewardConfig(
                output_dir=out,
                max_steps=cfg.max_steps,
                per_device_train_batch_size=cfg.batch_size,
                gradient_accumulation_steps=cfg.grad_accum,
                learning_rate=cfg.learning_rate,
                max_length=None,  # already cut in _ids
                seed=cfg.seed,
                bf16=False,
                fp16=False,
                activation_checkpointing=False,  # (was gradient_checkpointing)
                use_cpu=True,
                report_to=[],
                save_strategy="no",
                logging_strategy="no",
                disable_tqdm=True,
                dataloader_num_workers=0,
                lr_scheduler_type="constant",
            )
            trainer = RewardTrainer(
                model=model,
                args=args,
                train_dataset=Dataset.from_list(rows),
                processing_class=tokenizer,
                peft_config=lora,
            )
            trainer.remove_callback(PrinterCallback)  # the learner logs; no prints on stdout
            trainer.train()
        self.train_seconds_ = time.perf_counter() - started
        trained: Any = trainer.model
        self.model_ = trained.eval()
        return self

    def _load_tokenizer(self, path: Path) -> Any:
        from transformers import AutoTokenizer

        tokenizer = AutoTokenizer.from_pretrained(str(path))
        if tokenizer.pad_token is None:
            tokenizer.pad_token = tokenizer.eos_token
        tokenizer.truncation_side = "left"
        return tokenizer

    def _ids(self, prompt: str, response: str) -> list[int]:
        tokenizer = self.tokenizer_
        if tokenizer.chat_template:
            messages = [
                {"role": "user", "content": prompt},
                {"role": "assistant", "content": response},
            ]
            text = tokenizer.apply_chat_template(messages, tokenize=False)
        else:
            text = f"{prompt}\n\n{response}{tokenizer.eos_token or ''}"
        ids = tokenizer(text, add_special_tokens=False)["input_ids"]
        return list(ids[-self.config.max_length :])

    def score(self, prompt: str, response: str) -> float:
        return self.score_many([(prompt, response)])[0]

    def score_many(self, pairs: Sequence[tuple[str, str]]) -> list[float]:
        import torch

        if self.model_ is None:
            raise RewardModelError("the reward model is not fitted")
        out: list[float] = []
        step = self.config.score_batch
        with self._lock, torch.inference_mode():
            for start in range(0, len(pairs), step):
                ids = [self._ids(p, r) for p, r in pairs[start : start + step]]
                out.extend(self._forward(ids))
        return out

    def _forward(self, ids: list[list[int]]) -> list[float]:
        import torch

        width = max(len(row) for row in ids)
        pad = int(self.tokenizer_.pad_token_id)
        # Right padding: the head reads the last non-pad token, as in training.
        input_ids = torch.tensor([row + [pad] * (width - len(row)) for row in ids])
        mask = torch.tensor([[1] * len(row) + [0] * (width - len(row)) for row in ids])
        logits = self.model_(input_ids=input_ids, attention_mask=mask).logits
        return [float(v) for v in logits[:, 0].tolist()]

    def save(self, directory: Path) -> Path:
        if self.model_ is None:
            raise RewardModelError("the reward model is not fitted")
        self.model_.save_pretrained(str(directory / ADAPTER_DIR))
        self.tokenizer_.save_pretrained(str(directory / TOKENIZER_DIR))
        return write_manifest(
            directory,
            TIER,
            self.name,
            base_model=str(self.base.resolve()),
            files={"adapter": ADAPTER_DIR, "tokenizer": TOKENIZER_DIR},
            config=asdict(self.config),
            score="raw head output (Bradley-Terry logit)",
        )

    @classmethod
    def load(cls, directory: Path, manifest: dict[str, Any]) -> TransformerRewardModel:
        from peft import PeftModel

        try:
            config = TransformerRewardConfig(**manifest.get("config", {}))
            model = cls(Path(manifest["base_model"]), str(manifest["name"]), config)
            files = manifest["files"]
            model.tokenizer_ = model._load_tokenizer(directory / files["tokenizer"])
            base = _load_base(model.base, model.tokenizer_)
            peft = PeftModel.from_pretrained(base, str(directory / files["adapter"]))
        except (OSError, KeyError, TypeError, ValueError) as exc:
            raise RewardModelError(f"{directory}: cannot load the reward model: {exc}") from exc
        model.model_ = peft.eval()
        return model


def _load_base(path: Path, tokenizer: Any) -> Any:
    import torch
    from transformers import AutoModelForSequenceClassification
    from trl.trainer.reward_trainer import suppress_seqcls_warning

    if not (path / "config.json").is_file():
        raise RewardModelError(f"{path}: not a Hugging Face model directory")
    with suppress_seqcls_warning():  # a fresh `score` head and no `lm_head` are expected
        model = AutoModelForSequenceClassification.from_pretrained(
            str(path), num_labels=1, dtype=torch.float32
        )
    model.config.pad_token_id = tokenizer.pad_token_id
    return model

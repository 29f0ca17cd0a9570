"""What every training job shares: its config, its result, seeding, and the run loop.

A job trains a LoRA adapter on a local base model with a TRL trainer, checkpointing under
`output_dir/checkpoints` (resumed from the latest one when `resume` is set) and logging to
MLflow. Only a completed run publishes: the adapter is written to `output_dir/adapter.tmp`
and renamed to `output_dir/adapter`, so a reader never sees half an adapter. A run whose kill
switch flips is `stopped`, publishes nothing, and the last good adapter keeps serving.
"""

from __future__ import annotations

import hashlib
import json
import os
import random
import resource
import shutil
import time
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np
import torch
import transformers
from peft import LoraConfig, PeftModel
from transformers import (
    AutoModelForCausalLM,
    AutoTokenizer,
    PreTrainedModel,
    PrinterCallback,
    Trainer,
)
from transformers.tokenization_utils_base import PreTrainedTokenizerBase
from transformers.trainer_utils import get_last_checkpoint

from learner.jobs.killswitch import KillSwitchCallback, KillSwitchTripped
from learner.jobs.tracking import (
    DEFAULT_EXPERIMENT,
    DEFAULT_TRACKING_URI,
    MlflowMetricsCallback,
    Tracker,
)

JobStatus = Literal["completed", "stopped", "failed"]
Killed = Callable[[], bool]


@dataclass
class JobConfig:
    base_model: Path  # a local Hugging Face model directory
    output_dir: Path  # checkpoints/ and the published adapter/ go here
    served_base_name: str | None = None  # adapter_config's base_model_name_or_path
    seed: int = 0
    max_steps: int = 20  # optimizer steps; -1 runs `epochs` instead
    epochs: float = 1.0
    learning_rate: float = 2e-4
    lr_scheduler: str = "constant"
    batch_size: int = 4
    grad_accum: int = 1
    max_length: int = 512  # prompt + completion tokens
    lora_r: int = 8
    lora_alpha: int = 16
    lora_dropout: float = 0.0
    target_modules: tuple[str, ...] = ("q_proj", "v_proj")
    save_steps: int = 50
    save_total_limit: int = 2
    resume: bool = True  # continue from the latest checkpoint in output_dir/checkpoints
    tracking_uri: str = DEFAULT_TRACKING_URI
    experiment: str = DEFAULT_EXPERIMENT
    run_name: str | None = None
    snapshot_id: str | None = None  # the training data's id; a content hash when None
    kill_poll_s: float = 0.5
    threads: int = 1
    use_cpu: bool = True  # fp32 on CPU; False lets accelerate pick the device
    progress: bool = True  # the Trainer's tqdm bar
    extra_tags: dict[str, str] = field(default_factory=dict)

    @property
    def checkpoint_dir(self) -> Path:
        return Path(self.output_dir) / "checkpoints"

    @property
    def adapter_dir(self) -> Path:
        return Path(self.output_dir) / "adapter"


@dataclass
class JobResult:
    kind: str  # sft | rl | kto
    status: JobStatus
    adapter_dir: Path | None  # the published adapter; None unless completed
    metrics: dict[str, float]  # the last logged value of each metric, plus train summary
    wall_s: float
    peak_rss_mb: float  # this process's high-water mark (ru_maxrss)
    snapshot_id: str
    global_step: int
    run_id: str
    tracking_uri: str
    stopped_by_kill_switch: bool = False
    error: str | None = None


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)
    transformers.set_seed(seed)


def content_id(rows: object) -> str:
    """A stable id for a training set: `sha256:` and 16 hex digits of its JSON."""
    digest = hashlib.sha256(json.dumps(rows, sort_keys=True, default=str).encode()).hexdigest()
    return f"sha256:{digest[:16]}"


def lora_config(config: JobConfig) -> LoraConfig:
    return LoraConfig(
        r=config.lora_r,
        lora_alpha=config.lora_alpha,
        lora_dropout=config.lora_dropout,
        target_modules=list(config.target_modules),
        task_type="CAUSAL_LM",
    )


def training_kwargs(config: JobConfig) -> dict[str, Any]:
    """TrainingArguments shared by every TRL config: fp32, no checkpointing, offline."""
    return {
        "output_dir": str(config.checkpoint_dir),
        "seed": config.seed,
        "data_seed": config.seed,
        "max_steps": config.max_steps,
        "num_train_epochs": config.epochs,
        "learning_rate": config.learning_rate,
        "lr_scheduler_type": config.lr_scheduler,
        "per_device_train_batch_size": config.batch_size,
        "gradient_accumulation_steps": config.grad_accum,
        "logging_steps": 1,
        "save_strategy": "steps",
        "save_steps": config.save_steps,
        "save_total_limit": config.save_total_limit,
        "report_to": "none",
        "use_cpu": config.use_cpu,
        "bf16": False,
        "fp16": False,
        "gradient_checkpointing": False,
        "disable_tqdm": not config.progress,
        "dataloader_num_workers": 0,
    }


def load_base(config: JobConfig) -> tuple[PreTrainedModel, PreTrainedTokenizerBase]:
    model = AutoModelForCausalLM.from_pretrained(str(config.base_model), dtype=torch.float32)
    tokenizer = AutoTokenizer.from_pretrained(str(config.base_model))
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    return model, tokenizer


def run_job(
    kind: str,
    config: JobConfig,
    build: Callable[[], Trainer],
    killed: Killed,
    snapshot: str,
    params: Mapping[str, Any],
) -> JobResult:
    """Build the trainer, train (resuming if asked) until done or killed, publish, report."""
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    start = time.monotonic()
    torch.set_num_threads(config.threads)
    seed_everything(config.seed)
    tags = {"flywheel.job": kind, "flywheel.snapshot": snapshot, **config.extra_tags}
    tracker = Tracker(config.tracking_uri, config.experiment, config.run_name or kind, tags)
    tracker.log_params({**_flat(asdict(config)), **params, "snapshot_id": snapshot})
    switch = KillSwitchCallback(killed, config.kill_poll_s)
    status: JobStatus = "completed"
    error: str | None = None
    trainer: Trainer | None = None
    try:
        if switch.check():
            raise KillSwitchTripped("kill switch on before training started")
        trainer = build()
        trainer.remove_callback(PrinterCallback)  # per-step dicts on stdout: MLflow has them
        trainer.add_callback(MlflowMetricsCallback(tracker))
        trainer.add_callback(switch)
        switch.start(trainer.model)
        checkpoint = _last_checkpoint(config) if config.resume else None
        output = trainer.train(resume_from_checkpoint=checkpoint)
        tracker.log_metrics(output.metrics, trainer.state.global_step)
    except KillSwitchTripped:
        switch.tripped.set()
    except Exception as exc:  # the job boundary: any failure becomes a `failed` result
        status, error = "failed", f"{type(exc).__name__}: {exc}"
    finally:
        switch.close()
    if status == "completed" and switch.tripped.is_set():
        status = "stopped"
    adapter: Path | None = None
    if status == "completed" and trainer is not None and trainer.model is not None:
        adapter = publish_adapter(trainer.model, config)
        tracker.log_artifacts(adapter, "adapter")
        tracker.set_tags({"flywheel.adapter_dir": str(adapter)})
    tracker.set_tags({"flywheel.status": status, **({"flywheel.error": error} if error else {})})
    tracker.finish(status)
    return JobResult(
        kind=kind,
        status=status,
        adapter_dir=adapter,
        metrics=_last_metrics(trainer),
        wall_s=time.monotonic() - start,
        peak_rss_mb=resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
        snapshot_id=snapshot,
        global_step=trainer.state.global_step if trainer is not None else 0,
        run_id=tracker.run_id,
        tracking_uri=tracker.uri,
        stopped_by_kill_switch=status == "stopped",
        error=error,
    )


def publish_adapter(model: torch.nn.Module, config: JobConfig) -> Path:
    """Save a standard PEFT adapter dir for the served base name, atomically."""
    if not isinstance(model, PeftModel):
        raise TypeError("the trained model is not a PEFT model")
    final, staging = config.adapter_dir, config.adapter_dir.with_name("adapter.tmp")
    shutil.rmtree(staging, ignore_errors=True)
    model.save_pretrained(str(staging))
    config_file = staging / "adapter_config.json"
    adapter_config = json.loads(config_file.read_text())
    served = config.served_base_name or Path(config.base_model).name
    adapter_config["base_model_name_or_path"] = served
    config_file.write_text(json.dumps(adapter_config, indent=2, sort_keys=True))
    shutil.rmtree(final, ignore_errors=True)
    staging.rename(final)
    return final


def _last_checkpoint(config: JobConfig) -> str | None:
    if not config.checkpoint_dir.is_dir():
        return None
    found: str | None = get_last_checkpoint(str(config.checkpoint_dir))  # type: ignore[no-untyped-call]
    return found


def _last_metrics(trainer: Trainer | None) -> dict[str, float]:
    metrics: dict[str, float] = {}
    for entry in trainer.state.log_history if trainer is not None else []:
        for key, value in entry.items():
            if isinstance(value, int | float) and key not in ("step", "epoch"):
                metrics[key] = float(value)
    return metrics


def _flat(values: Mapping[str, Any]) -> dict[str, Any]:
    return {key: value for key, value in values.items() if not isinstance(value, dict)}

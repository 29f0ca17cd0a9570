"""Stop a training run within a second of its kill switch being flipped.

The switch is read on every step and, between steps, by a watcher thread every `poll_s`.
Once it reads on, the trainer is told to stop at the end of the step, and the next forward
pass of a decoder layer raises `KillSwitchTripped`, so a long step (a GRPO rollout, a big
batch) ends early too. Raising is safe here because a stopped job publishes nothing: the
half-done step is thrown away and the last checkpoint stays as it was. A backward pass
already under way is not interrupted.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Any

import torch
from transformers import TrainerCallback, TrainerControl, TrainerState, TrainingArguments


class KillSwitchTripped(RuntimeError):
    """Raised inside a forward pass once the job's kill switch is on."""


class KillSwitchCallback(TrainerCallback):
    def __init__(self, killed: Callable[[], bool], poll_s: float = 0.5) -> None:
        self.killed = killed
        self.poll_s = poll_s
        self.tripped = threading.Event()
        self.tripped_at: float | None = None
        self._done = threading.Event()
        self._thread: threading.Thread | None = None
        self._hooks: list[torch.utils.hooks.RemovableHandle] = []

    # The watcher thread and the forward hooks.

    def start(self, model: torch.nn.Module | None = None) -> None:
        """Start watching; with a model, interrupt its forward passes once tripped."""
        if model is not None:
            for module in model.modules():
                if isinstance(module, torch.nn.ModuleList):
                    self._hooks += [layer.register_forward_pre_hook(self._hook) for layer in module]
        self._thread = threading.Thread(target=self._watch, name="kill-switch", daemon=True)
        self._thread.start()

    def close(self) -> None:
        self._done.set()
        if self._thread is not None:
            self._thread.join()
        for handle in self._hooks:
            handle.remove()
        self._hooks.clear()

    def check(self) -> bool:
        if not self.tripped.is_set() and self.killed():
            self._trip()
        return self.tripped.is_set()

    def _trip(self) -> None:
        self.tripped_at = time.monotonic()
        self.tripped.set()

    def _watch(self) -> None:
        while not self._done.wait(self.poll_s):
            if self.check():
                return

    def _hook(self, module: torch.nn.Module, args: Any) -> None:
        if self.tripped.is_set():
            raise KillSwitchTripped("kill switch flipped during training")

    # Trainer events.

    def _stop_if_killed(self, control: TrainerControl) -> None:
        if self.check():
            control.should_training_stop = True
            control.should_save = False

    def on_train_begin(
        self, args: TrainingArguments, state: TrainerState, control: TrainerControl, **kw: Any
    ) -> None:
        self._stop_if_killed(control)

    def on_step_begin(
        self, args: TrainingArguments, state: TrainerState, control: TrainerControl, **kw: Any
    ) -> None:
        self._stop_if_killed(control)

    def on_substep_end(
        self, args: TrainingArguments, state: TrainerState, control: TrainerControl, **kw: Any
    ) -> None:
        self._stop_if_killed(control)

    def on_step_end(
        self, args: TrainingArguments, state: TrainerState, control: TrainerControl, **kw: Any
    ) -> None:
        self._stop_if_killed(control)

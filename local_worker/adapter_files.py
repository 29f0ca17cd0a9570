"""Reading and checking a LoRA adapter directory completely, before the model is touched.

An adapter is accepted only if it is exactly a LoRA delta on this base model:
- `adapter_config.json` says LoRA for a causal LM, with a rank `r` in 1..max_lora_rank, a
  positive finite `lora_alpha`, `fan_in_fan_out` false, no `bias` training, and none of the
  options that add or replace base weights or change shapes per module (`modules_to_save`,
  `trainable_token_indices`, `layer_replication`, `rank_pattern`, `alpha_pattern`, DoRA,
  LoRA bias, `target_parameters`);
- every tensor in `adapter_model.safetensors` is a `lora_A.weight` / `lora_B.weight` of a
  linear layer of the base (not its output embedding), shaped `[r, in_features]` and
  `[out_features, r]`, floating point and finite, both present for each module, and each
  module is one the config's `target_modules` names.

Anything else (a `lm_head.weight`, an embedding, a bias) is refused: loading it would
overwrite the shared base model. Messages name the problem and never a filesystem path.
The loaded tensors come back with the result, so the loader never reads the files again.
"""

from __future__ import annotations

import json
import math
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError, safe_open

from local_worker.adapter_errors import AdapterError

CONFIG_FILE = "adapter_config.json"
WEIGHTS_FILE = "adapter_model.safetensors"
MAX_CONFIG_BYTES = 1024 * 1024
PREFIX = "base_model.model."
_KEY = re.compile(r"^base_model\.model\.(?P<module>[\w.]+)\.lora_(?P<part>[AB])\.weight$")
_FLOAT_DTYPES = {"F16", "BF16", "F32", "F64"}
# Config options that would add or replace base weights, or give modules other shapes.
_UNSUPPORTED = (
    "modules_to_save",
    "trainable_token_indices",
    "layer_replication",
    "rank_pattern",
    "alpha_pattern",
    "use_dora",
    "lora_bias",
    "target_parameters",
    "megatron_config",
)


@dataclass(frozen=True)
class AdapterSpec:
    """A checked adapter: what the loader needs, nothing read twice."""

    rank: int
    alpha: float
    use_rslora: bool
    modules: tuple[str, ...]  # full names of the base modules it adapts
    tensors: dict[str, torch.Tensor]  # PEFT's saved keys (base_model.model.<module>.lora_X.weight)

    @property
    def nbytes(self) -> int:
        return sum(t.numel() * t.element_size() for t in self.tensors.values())


def read_adapter(
    directory: Path, allowed: dict[str, tuple[int, int]], max_rank: int
) -> AdapterSpec:
    """Check the adapter in `directory` against the base's linear layers it may adapt
    (name -> (in_features, out_features)); AdapterError if it does not fit."""
    config = _read_config(directory / CONFIG_FILE)
    rank, alpha, use_rslora, targets = _check_config(config, max_rank)
    weights = directory / WEIGHTS_FILE
    if not weights.is_file():
        raise AdapterError("The adapter has no adapter_model.safetensors.")
    try:
        with safe_open(str(weights), framework="pt") as handle:
            keys = list(handle.keys())
            modules = _check_headers(handle, keys, rank, allowed)
            _check_targets(modules, targets)
            tensors = {key: handle.get_tensor(key) for key in keys}
    except (SafetensorError, OSError, ValueError) as exc:
        raise AdapterError(f"The adapter's weights cannot be read: {_reason(exc)}") from None
    for key, tensor in tensors.items():
        if not bool(torch.isfinite(tensor).all()):
            raise AdapterError(f"The adapter's tensor {key} holds NaN or infinite values.")
    return AdapterSpec(rank, alpha, use_rslora, tuple(sorted(modules)), tensors)


def _read_config(path: Path) -> dict[str, Any]:
    if not path.is_file():
        raise AdapterError("The adapter has no adapter_config.json: not a PEFT adapter directory.")
    try:
        if path.stat().st_size > MAX_CONFIG_BYTES:
            raise AdapterError("The adapter's adapter_config.json is too large.")
        config = json.loads(path.read_bytes())
    except (OSError, ValueError) as exc:
        raise AdapterError(f"The adapter's adapter_config.json is not valid JSON: {exc}") from None
    if not isinstance(config, dict) or config.get("peft_type") != "LORA":
        raise AdapterError("The adapter is not a LoRA adapter (peft_type must be LORA).")
    return config


def _check_config(config: dict[str, Any], max_rank: int) -> tuple[int, float, bool, list[str]]:
    task = config.get("task_type")
    if task not in (None, "CAUSAL_LM"):
        raise AdapterError(f"The adapter's task_type is {task!r}; this worker serves CAUSAL_LM.")
    rank = config.get("r")
    if not isinstance(rank, int) or isinstance(rank, bool) or not 1 <= rank <= max_rank:
        raise AdapterError(
            f"The adapter's rank r={rank!r} is not allowed: it must be an integer from 1 to "
            f"{max_rank} (the worker's max_lora_rank)."
        )
    alpha = config.get("lora_alpha", 8)
    if not isinstance(alpha, int | float) or isinstance(alpha, bool):
        raise AdapterError("The adapter's lora_alpha must be a number.")
    if not (math.isfinite(alpha) and alpha > 0):
        raise AdapterError("The adapter's lora_alpha must be a positive finite number.")
    for key in _UNSUPPORTED:
        if config.get(key):
            raise AdapterError(f"The adapter sets {key}, which this worker does not load.")
    if config.get("fan_in_fan_out"):
        raise AdapterError("The adapter sets fan_in_fan_out, which this worker does not load.")
    if config.get("bias", "none") != "none":
        raise AdapterError("The adapter trains biases (bias must be 'none').")
    use_rslora = config.get("use_rslora", False)
    if not isinstance(use_rslora, bool):
        raise AdapterError("The adapter's use_rslora must be true or false.")
    targets = config.get("target_modules")
    if not (
        isinstance(targets, list) and targets and all(isinstance(t, str) and t for t in targets)
    ):  # a regular expression (PEFT allows one) is refused: it can take unbounded time
        raise AdapterError("The adapter's target_modules must be a list of module names.")
    return rank, float(alpha), use_rslora, targets


def _check_headers(
    handle: Any, keys: list[str], rank: int, allowed: dict[str, tuple[int, int]]
) -> set[str]:
    """Every tensor a LoRA A or B of an allowed module, with the right shape; the modules."""
    if not keys:
        raise AdapterError("The adapter holds no tensors.")
    parts: dict[str, set[str]] = {}
    for key in keys:
        match = _KEY.match(key)
        if match is None:
            raise AdapterError(
                f"The adapter holds {key}, which is not a LoRA tensor (lora_A or lora_B "
                "weight of a linear layer); it would change the base model."
            )
        module_name, part = match["module"], match["part"]
        features = allowed.get(module_name)
        if features is None:
            raise AdapterError(
                f"The adapter targets {module_name}, which is not a linear layer of the base "
                "model that adapters may change."
            )
        piece = handle.get_slice(key)
        if piece.get_dtype() not in _FLOAT_DTYPES:
            raise AdapterError(f"The adapter's tensor {key} is {piece.get_dtype()}, not float.")
        shape = list(piece.get_shape())
        want = [rank, features[0]] if part == "A" else [features[1], rank]
        if shape != want:
            raise AdapterError(
                f"The adapter's {key} has shape {shape} where rank r={rank} on the base "
                f"model needs {want}: it was built with another rank or for another base model."
            )
        parts.setdefault(module_name, set()).add(part)
    for module_name, seen in parts.items():
        if seen != {"A", "B"}:
            raise AdapterError(f"The adapter has lora_A or lora_B alone for {module_name}.")
    return set(parts)


def _check_targets(modules: set[str], targets: list[str]) -> None:
    """The config's target_modules name exactly the modules the tensors adapt."""
    for module in sorted(modules):
        if not any(module == t or module.endswith(f".{t}") for t in targets):
            raise AdapterError(f"The adapter's target_modules does not name {module}.")
    for target in targets:
        if not any(m == target or m.endswith(f".{target}") for m in modules):
            raise AdapterError(
                f"The adapter's target_modules names {target}, for which it holds no weights."
            )


def _reason(exc: BaseException) -> str:
    """An error's text without file names (safetensors and OSError may include them)."""
    if isinstance(exc, OSError):
        return exc.strerror or type(exc).__name__
    return str(exc).splitlines()[0][:200] if str(exc) else type(exc).__name__

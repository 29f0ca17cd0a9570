"""LoRA adapters on the worker: validation, loading through PEFT, an LRU bound, lazy loads.

An adapter is a standard PEFT directory (adapter_config.json + adapter_model.safetensors),
the same one vLLM's `--enable-lora` loads. Adapters come from `POST /v1/load_lora_adapter`
or, on first use, from the adapter registry in the store (`name-vN` ids). Loading runs on
the generation thread between decoding steps; at most `max_loras` stay loaded, the least
recently used adapter that no request in flight needs is unloaded to make room. A
directory that is corrupt or built for another base model is refused with the reason, and
nothing about the adapters already loaded changes.
"""

from __future__ import annotations

import json
import logging
import time
from collections import OrderedDict
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

from safetensors import safe_open

from local_worker.engine import Engine, Job

log = logging.getLogger("flywheel.local_worker")
Lookup = Callable[[str], Awaitable[str | None]]  # adapter name -> location, or None


class AdapterError(Exception):
    """The adapter directory cannot be used (400); the message says why."""


class UnknownAdapter(Exception):
    """No adapter by that name is loaded, known or registered (404)."""


class Adapters:
    def __init__(self, engine: Engine, max_loras: int = 4, lookup: Lookup | None = None) -> None:
        self.engine = engine
        self.max_loras = max_loras
        self.lookup = lookup
        self.paths: dict[str, str] = {}  # every adapter we know where to find
        self.loaded: OrderedDict[str, float] = OrderedDict()  # name -> load seconds, LRU order
        self.peak_loaded = 0
        engine.prepare = self._prepare

    # --- event loop ----------------------------------------------------------------------

    async def load(self, name: str, path: str) -> float:
        """Validate and load now; the seconds it took. Raises AdapterError."""
        if name in self.paths and name in self.loaded:
            raise AdapterError(f"The lora adapter '{name}' has already been loaded.")
        seconds = await self.engine.call(lambda: self._load(name, path))
        self.paths[name] = path
        return seconds

    async def unload(self, name: str) -> None:
        if name not in self.paths and name not in self.loaded:
            raise UnknownAdapter(f"The lora adapter '{name}' cannot be found.")
        self.paths.pop(name, None)
        await self.engine.call(lambda: self._unload(name))

    async def resolve(self, name: str) -> None:
        """Make sure the adapter can be found; the generation thread loads it when admitted."""
        if name in self.paths:
            return
        location = await self.lookup(name) if self.lookup is not None else None
        if location is None:
            raise UnknownAdapter(f"The model '{name}' does not exist.")
        self.paths[name] = location

    def names(self) -> list[str]:
        return sorted(set(self.paths) | set(self.loaded))

    # --- generation thread ---------------------------------------------------------------

    def _prepare(self, job: Job) -> None:
        if job.adapter is None:
            return
        if job.adapter in self.loaded:
            self.loaded.move_to_end(job.adapter)
            return
        path = self.paths.get(job.adapter)
        if path is None:
            raise UnknownAdapter(f"The model '{job.adapter}' does not exist.")
        self._load(job.adapter, path)

    def _load(self, name: str, location: str) -> float:
        started = time.perf_counter()
        path = Path(location).expanduser()
        validate(path, _base_of(self.engine.model))
        self._evict(keep=name)
        model = self.engine.model
        try:
            if hasattr(model, "load_adapter") and hasattr(model, "peft_config"):
                model.load_adapter(str(path), adapter_name=name, is_trainable=False)
            else:
                from peft import PeftModel

                model = PeftModel.from_pretrained(model, str(path), adapter_name=name)
        except Exception as exc:
            if hasattr(model, "peft_config") and name in model.peft_config:
                model.delete_adapter(name)
            raise AdapterError(
                f"The lora adapter '{name}' at {path} cannot be loaded: {exc}"
            ) from exc
        model.eval()
        self.engine.model, self.engine.lora = model, True
        self.engine.prefixes.forget(name)
        seconds = time.perf_counter() - started
        self.loaded[name] = seconds
        self.peak_loaded = max(self.peak_loaded, len(self.loaded))
        log.info("adapter loaded name=%s path=%s seconds=%.3f", name, path, seconds)
        return seconds

    def _unload(self, name: str) -> None:
        if name in self.loaded:
            if name in self.engine.adapters_in_use():
                raise AdapterError(f"The lora adapter '{name}' is serving requests; try again.")
            model = self.engine.model
            model.delete_adapter(name)
            del self.loaded[name]
            self.engine.prefixes.forget(name)
            if self.loaded:  # PEFT keeps pointing at a deleted active adapter
                model.set_adapter(next(iter(self.loaded)))
            else:  # back to the plain model: no LoRA layers left in the forward pass
                self.engine.model, self.engine.lora = model.unload(), False
            log.info("adapter unloaded name=%s", name)

    def _evict(self, keep: str) -> None:
        busy = self.engine.adapters_in_use() | {keep}
        while len(self.loaded) >= self.max_loras:
            idle = [n for n in self.loaded if n not in busy]
            if not idle:
                return  # every loaded adapter is in use: exceed the bound until some finish
            self._unload(idle[0])


def _base_of(model: Any) -> Any:
    return model.get_base_model() if hasattr(model, "get_base_model") else model


def validate(path: Path, base: Any) -> None:
    """Refuse a directory that is not a LoRA adapter for this base model, naming why."""
    if not path.is_dir():
        raise AdapterError(f"The lora adapter directory {path} does not exist.")
    config_file = path / "adapter_config.json"
    if not config_file.is_file():
        raise AdapterError(f"{path} has no adapter_config.json: not a PEFT adapter directory.")
    try:
        config = json.loads(config_file.read_text(encoding="utf-8"))
    except (ValueError, UnicodeDecodeError) as exc:
        raise AdapterError(f"{config_file} is not valid JSON: {exc}") from None
    if not isinstance(config, dict) or config.get("peft_type") != "LORA":
        raise AdapterError(f"{config_file} is not a LoRA adapter (peft_type must be LORA).")
    weights = path / "adapter_model.safetensors"
    if not weights.is_file():
        raise AdapterError(f"{path} has no adapter_model.safetensors.")
    modules = dict(base.named_modules())
    try:
        with safe_open(str(weights), framework="pt") as tensors:
            for key in tensors.keys():
                _check_tensor(key, tensors.get_slice(key).get_shape(), modules)
    except AdapterError:
        raise
    except Exception as exc:
        raise AdapterError(f"{weights} cannot be read: {exc}") from None


def _check_tensor(key: str, shape: list[int], modules: dict[str, Any]) -> None:
    name = key.removeprefix("base_model.model.")
    for suffix in (".lora_A.weight", ".lora_B.weight"):
        if name.endswith(suffix):
            module_name = name.removesuffix(suffix)
            module = modules.get(module_name)
            if module is None:
                raise AdapterError(
                    f"The adapter targets {module_name}, which the base model lacks."
                )
            want_in, want_out = (
                getattr(module, "in_features", None),
                getattr(module, "out_features", None),
            )
            got = shape[1] if suffix == ".lora_A.weight" else shape[0]
            want = want_in if suffix == ".lora_A.weight" else want_out
            if want is not None and got != want:
                raise AdapterError(
                    f"The adapter's {module_name} expects {got} features where the base model "
                    f"has {want}: it was built for another base model."
                )

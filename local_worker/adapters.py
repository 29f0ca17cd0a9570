"""LoRA adapters on the worker: which are known, which are loaded, an LRU bound, lazy loads.

An adapter is a standard PEFT directory (adapter_config.json + adapter_model.safetensors),
the same one vLLM's `--enable-lora` loads. Adapters come from `POST /v1/load_lora_adapter`
or, on first use, from the adapter registry in the store (`name-vN` ids); either way the
directory must lie under the worker's adapters roots (`adapter_paths`). Loading runs on
the generation thread between decoding steps: the directory is read and checked completely
first (`adapter_files`), then attached (`lora_model`), and a failure at any point leaves the
serving model as it was. At most `max_loras` stay loaded; the least recently used adapter
that no request in flight needs is unloaded to make room.
"""

from __future__ import annotations

import logging
import re
import time
from collections import OrderedDict
from collections.abc import Awaitable, Callable

from local_worker import lora_model
from local_worker.adapter_errors import AdapterBusy, AdapterError, UnknownAdapter
from local_worker.adapter_files import CONFIG_FILE, WEIGHTS_FILE, read_adapter
from local_worker.adapter_paths import AdapterRoots
from local_worker.engine import Engine, Job

__all__ = ["AdapterBusy", "AdapterError", "Adapters", "Lookup", "UnknownAdapter"]

log = logging.getLogger("flywheel.local_worker")
Lookup = Callable[[str], Awaitable[str | None]]  # adapter name -> location, or None
NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,99}$")  # the registry's names and ids fit
DEFAULT_MAX_RANK = 64


class Adapters:
    def __init__(
        self,
        engine: Engine,
        roots: AdapterRoots,
        max_loras: int = 4,
        lookup: Lookup | None = None,
        max_rank: int = DEFAULT_MAX_RANK,
    ) -> None:
        self.engine = engine
        self.roots = roots
        self.max_loras = max_loras
        self.max_rank = max_rank
        self.lookup = lookup
        self.targets = lora_model.linear_layers(engine.model)  # what adapters may change
        self.paths: dict[str, str] = {}  # every adapter we know where to find
        self.loaded: OrderedDict[str, float] = OrderedDict()  # name -> load seconds, LRU order
        self.peak_loaded = 0
        self.failed_loads = 0
        engine.prepare = self._prepare

    # --- event loop ----------------------------------------------------------------------

    async def load(self, name: str, location: str) -> float:
        """Check and load now; the seconds it took. Raises AdapterError."""
        if not NAME.match(name):
            raise AdapterError(
                "lora_name must be 1-100 letters, digits, '.', '_' or '-', starting with a "
                "letter or digit."
            )
        if name in self.loaded:
            raise AdapterError(f"The lora adapter '{name}' has already been loaded.")
        self.roots.confine(location)  # refused here, before the generation thread is asked
        seconds = await self.engine.call(lambda: self._load(name, location))
        self.paths[name] = location
        return seconds

    async def unload(self, name: str) -> None:
        if name not in self.paths and name not in self.loaded:
            raise UnknownAdapter(f"The lora adapter '{name}' cannot be found.")
        await self.engine.call(lambda: self._unload(name))
        self.paths.pop(name, None)

    async def resolve(self, name: str) -> None:
        """Make sure the adapter can be found; the generation thread loads it when admitted."""
        if name in self.paths:
            return
        location = await self.lookup(name) if self.lookup is not None else None
        if location is None:
            raise UnknownAdapter(f"The model '{name}' does not exist.")
        self.roots.confine(location)
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
        location = self.paths.get(job.adapter)
        if location is None:
            raise UnknownAdapter(f"The model '{job.adapter}' does not exist.")
        self._load(job.adapter, location)

    def _load(self, name: str, location: str) -> float:
        started = time.perf_counter()
        if name in self.loaded:  # a second load of the same name raced the first
            raise AdapterError(f"The lora adapter '{name}' has already been loaded.")
        directory = self.roots.confine(location)
        for file in (CONFIG_FILE, WEIGHTS_FILE):  # a link inside may point out of the root
            self.roots.confine(str(directory / file))
        try:
            if not directory.is_dir():
                raise AdapterError("no such directory under the adapters root.")
            spec = read_adapter(directory, self.targets, self.max_rank)
        except AdapterError as exc:
            self.failed_loads += 1
            raise AdapterError(f"The lora adapter '{name}' cannot be loaded: {exc}") from None
        self._evict(keep=name)
        try:
            self.engine.model = lora_model.attach(self.engine.model, name, spec)
        except lora_model.AttachError as exc:
            self.failed_loads += 1
            self.engine.model = exc.model  # as it was before the attempt
            self.engine.lora = lora_model.has_adapters(exc.model)
            raise AdapterError(f"The lora adapter '{name}' cannot be loaded: {exc}") from None
        self.engine.lora = True
        self.engine.prefixes.forget(name)
        seconds = time.perf_counter() - started
        self.loaded[name] = seconds
        self.peak_loaded = max(self.peak_loaded, len(self.loaded))
        log.info("adapter loaded name=%s rank=%d seconds=%.3f", name, spec.rank, seconds)
        return seconds

    def _unload(self, name: str) -> None:
        if name not in self.loaded:
            return
        if name in self.engine.adapters_in_use():
            raise AdapterBusy(f"The lora adapter '{name}' is serving requests; try again.")
        self.engine.model = lora_model.detach(self.engine.model, name)
        self.engine.lora = lora_model.has_adapters(self.engine.model)
        del self.loaded[name]
        self.engine.prefixes.forget(name)
        log.info("adapter unloaded name=%s", name)

    def _evict(self, keep: str) -> None:
        busy = self.engine.adapters_in_use() | {keep}
        while len(self.loaded) >= self.max_loras:
            idle = [n for n in self.loaded if n not in busy]
            if not idle:
                return  # every loaded adapter is in use: exceed the bound until some finish
            self._unload(idle[0])

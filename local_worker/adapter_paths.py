"""Where the worker may read adapters from: directories under its adapters roots.

A location (from `POST /v1/load_lora_adapter` or the adapter registry) is resolved with
symlinks followed and must land inside one of the roots; `..`, absolute paths elsewhere and
links that point out are refused. The refusal reads the same whether or not the target
exists, so the worker cannot be used to probe the filesystem. Roots are resolved once at
start; a root that does not exist yet is fine (the learner creates it on its first run).
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from pathlib import Path

from local_worker.adapter_errors import AdapterError

OUTSIDE = "The lora adapter path is not allowed: adapters are read from the worker's adapters root."


class AdapterRoots:
    def __init__(self, roots: Iterable[str | os.PathLike[str]]) -> None:
        self.roots = tuple(Path(r).expanduser().resolve() for r in roots)

    def confine(self, location: str) -> Path:
        """The real directory `location` names, if it lies under a root; else AdapterError.

        Relative locations are read from the worker's working directory (the learner
        records them relative to the same one under `flywheel up`)."""
        if "\x00" in location or "://" in location:
            raise AdapterError(OUTSIDE)
        try:
            real = Path(location).expanduser().resolve()
        except (OSError, RuntimeError, ValueError):  # a symlink loop, a bad user name
            raise AdapterError(OUTSIDE) from None
        if not any(real != root and real.is_relative_to(root) for root in self.roots):
            raise AdapterError(OUTSIDE)
        return real

    def __repr__(self) -> str:
        return f"AdapterRoots({', '.join(str(r) for r in self.roots)})"

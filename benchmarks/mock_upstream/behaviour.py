"""How each mock model behaves: latency, pacing, size limits and injected failures.

`ModelBehaviour` is one model's knobs, `MockConfig` the whole startup configuration
(loaded strictly from YAML or a dict: unknown keys are errors that name the key), and
`BehaviourTable` the live state the server consults on every request: the current
behaviours, the queue of forced failures and the seeded random source for `failure_rate`.
"""

from __future__ import annotations

import dataclasses
import random
from collections import deque
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

FAILURE_KINDS = frozenset(
    {"400", "500", "429", "timeout", "drop", "context_length_exceeded", "drop_mid_stream"}
)
CONFIG_KEYS = frozenset({"default", "models", "seed", "api_key", "log_size"})


class BehaviourError(ValueError):
    """A behaviour, config or forced failure that does not validate; the message names it."""


@dataclass(frozen=True, slots=True)
class ModelBehaviour:
    """One model's behaviour. Times in milliseconds unless the name says otherwise."""

    latency_ms: float = 0.0  # non-stream: delay before the whole answer
    ttft_ms: float = 0.0  # stream: delay before the first chunk
    tokens_per_s: float = 0.0  # stream: pace of chunks after the first; 0 = unpaced
    output_tokens: int = 20
    context_window: int = 0  # 0 = unlimited
    failure_rate: float = 0.0  # 0..1, drawn from the table's seeded RNG
    failure_kind: str = "500"  # one of FAILURE_KINDS
    retry_after_s: float = 1.0  # 429: the Retry-After header
    hang_s: float = 30.0  # timeout: how long to sleep before answering
    fail_after_chunks: int = 3  # drop_mid_stream: chunks sent before the abort
    reply: str = ""  # a fixed answer text (one token per word) instead of "<model> tok0 ..."

    def merged(self, patch: Mapping[str, Any]) -> ModelBehaviour:
        """A copy with `patch` applied; every key and value is validated first."""
        return dataclasses.replace(self, **_validated(patch))

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


_FIELD_TYPES: dict[str, str] = {f.name: str(f.type) for f in dataclasses.fields(ModelBehaviour)}


def _validated(patch: Mapping[str, Any]) -> dict[str, Any]:
    if not isinstance(patch, Mapping):
        raise BehaviourError("a behaviour must be a mapping of field to value")
    out: dict[str, Any] = {}
    for name, value in patch.items():
        kind = _FIELD_TYPES.get(name)
        if kind is None:
            known = ", ".join(sorted(_FIELD_TYPES))
            raise BehaviourError(f"unknown behaviour field {name!r} (known: {known})")
        out[name] = _coerce(name, kind, value)
    return out


def _coerce(name: str, kind: str, value: Any) -> Any:
    if name == "failure_kind":
        return failure_kind(value)
    if name == "reply":
        if not isinstance(value, str):
            raise BehaviourError(f"behaviour field 'reply' must be a string, got {value!r}")
        return value
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise BehaviourError(f"behaviour field {name!r} must be a number, got {value!r}")
    if kind == "int" and value != int(value):
        raise BehaviourError(f"behaviour field {name!r} must be an integer, got {value!r}")
    if value < 0:
        raise BehaviourError(f"behaviour field {name!r} must be >= 0, got {value!r}")
    if name == "failure_rate" and value > 1:
        raise BehaviourError(f"behaviour field 'failure_rate' must be in [0, 1], got {value!r}")
    return int(value) if kind == "int" else float(value)


def failure_kind(value: Any) -> str:
    """Validate a failure kind; YAML's `500` (an int) is accepted as "500"."""
    kind = str(value) if isinstance(value, str | int) and not isinstance(value, bool) else ""
    if kind not in FAILURE_KINDS:
        raise BehaviourError(
            f"unknown failure kind {value!r} (known: {', '.join(sorted(FAILURE_KINDS))})"
        )
    return kind


@dataclass(slots=True)
class MockConfig:
    """Startup configuration. Model entries loaded from a dict or YAML start from `default`."""

    default: ModelBehaviour = field(default_factory=ModelBehaviour)
    models: dict[str, ModelBehaviour] = field(default_factory=dict)
    seed: int | None = 0
    api_key: str | None = None
    log_size: int = 10_000

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> MockConfig:
        if not isinstance(data, Mapping):
            raise BehaviourError("the mock config must be a mapping")
        unknown = set(data) - CONFIG_KEYS
        if unknown:
            raise BehaviourError(f"unknown mock config key(s): {', '.join(sorted(unknown))}")
        default = ModelBehaviour().merged(data.get("default") or {})
        models_raw = data.get("models") or {}
        if not isinstance(models_raw, Mapping):
            raise BehaviourError("'models' must map model names to behaviours")
        models = {str(name): default.merged(patch or {}) for name, patch in models_raw.items()}
        seed = data.get("seed", 0)
        if seed is not None and (isinstance(seed, bool) or not isinstance(seed, int)):
            raise BehaviourError(f"'seed' must be an integer or null, got {seed!r}")
        log_size = data.get("log_size", 10_000)
        if isinstance(log_size, bool) or not isinstance(log_size, int) or log_size < 0:
            raise BehaviourError(f"'log_size' must be an integer >= 0, got {log_size!r}")
        api_key = data.get("api_key")
        if api_key is not None and not isinstance(api_key, str):
            raise BehaviourError("'api_key' must be a string")
        return cls(default, models, seed, api_key, log_size)


def load_config(path: str | Path) -> MockConfig:
    """Read a YAML config: `{default: {...}, models: {name: {...}}, seed: 0}`."""
    data = yaml.safe_load(Path(path).read_text("utf-8")) or {}
    return MockConfig.from_dict(data)


@dataclass(slots=True)
class _Forced:
    kind: str
    remaining: int


class BehaviourTable:
    """Live behaviours plus the failure decision for each request."""

    def __init__(self, config: MockConfig) -> None:
        self._config = config
        self.default = config.default
        self.models: dict[str, ModelBehaviour] = {}
        self._forced: dict[str, deque[_Forced]] = {}
        self._rng = random.Random(config.seed)
        self.reset()

    def reset(self) -> None:
        """Back to the startup behaviours, no forced failures, the RNG reseeded."""
        self.default = self._config.default
        self.models = dict(self._config.models)
        self._forced.clear()
        self._rng.seed(self._config.seed)

    def get(self, model: str) -> ModelBehaviour:
        return self.models.get(model, self.default)

    def configure(self, name: str, patch: Mapping[str, Any]) -> ModelBehaviour:
        """Merge `patch` into model `name` (or into the default for `default`)."""
        if name == "default":
            self.default = self.default.merged(patch)
            return self.default
        merged = self.get(name).merged(patch)
        self.models[name] = merged
        return merged

    def force(self, model: str, kind: object, count: object) -> None:
        """Queue `count` failures of `kind` for the next requests to `model`."""
        if isinstance(count, bool) or not isinstance(count, int) or count < 1:
            raise BehaviourError(f"'count' must be an integer >= 1, got {count!r}")
        self._forced.setdefault(model, deque()).append(_Forced(failure_kind(kind), count))

    def pending(self, model: str) -> int:
        return sum(f.remaining for f in self._forced.get(model, ()))

    def failure_for(self, model: str, behaviour: ModelBehaviour) -> str | None:
        """The failure this request gets, if any: forced ones first, then `failure_rate`.

        Runs on the event loop without awaiting, so taking from the queue is atomic.
        """
        queue = self._forced.get(model)
        if queue:
            head = queue[0]
            head.remaining -= 1
            if head.remaining <= 0:
                queue.popleft()
            return head.kind
        rate = behaviour.failure_rate
        if rate > 0 and self._rng.random() < rate:
            return behaviour.failure_kind
        return None

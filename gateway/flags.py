"""Feature flags and kill switches, evaluated from the process's replica of the store.

Flags (hash `flags`, one JSON document per flag)::

    {"value": true | "string", "rollout_percent": 25.0 | null, "tenants": {"acme": false}}

A tenant override wins; otherwise, with a rollout, a request is in the rollout when the
sticky hash of (flag, user-or-request key) falls under the percentage, and gets
`value` (else the flag's `off` value: false, or null for string flags).

Kill switches (hash `kill`): fields `global`, `tenant:<name>`, `job:<kind>` (kinds:
bandit, reward_model, sft, rl) set to "on". While the store was never reached, every
switch reads as on: the safe side is static routing and no learning.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import Any

import orjson

from gateway.store_sync import StoreSync

FLAGS = "flags"
KILL = "kill"
JOB_KINDS = ("bandit", "reward_model", "sft", "rl")


def kill_field(scope: str, target: str | None = None) -> str:
    """`global`, `tenant:<name>` or `job:<kind>`; raises ValueError for anything else."""
    if scope == "global" and not target:
        return "global"
    if scope == "tenant" and target:
        return f"tenant:{target}"
    if scope == "job" and target in JOB_KINDS:
        return f"job:{target}"
    raise ValueError(
        "a kill switch is 'global', 'tenant <name>' or 'job <kind>' with kind one of "
        + ", ".join(JOB_KINDS)
    )


def sticky_bucket(flag: str, key: str) -> float:
    """A stable position in [0, 100) for (flag, key): the same key always lands the same."""
    digest = hashlib.blake2b(f"{flag}\x00{key}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big") / 2**64 * 100


@dataclass(frozen=True, slots=True)
class FlagSpec:
    value: bool | str
    rollout_percent: float | None = None
    tenants: dict[str, bool | str] | None = None

    @classmethod
    def parse(cls, raw: str) -> FlagSpec:
        data: dict[str, Any] = orjson.loads(raw)
        return cls(data["value"], data.get("rollout_percent"), data.get("tenants"))

    def dump(self) -> str:
        return orjson.dumps(
            {
                "value": self.value,
                "rollout_percent": self.rollout_percent,
                "tenants": self.tenants or {},
            }
        ).decode()

    def evaluate(self, name: str, tenant: str | None, key: str | None) -> bool | str | None:
        if tenant is not None and self.tenants and tenant in self.tenants:
            return self.tenants[tenant]
        if self.rollout_percent is None:
            return self.value
        if key is not None and sticky_bucket(name, key) < self.rollout_percent:
            return self.value
        return False if isinstance(self.value, bool) else None


class Flags:
    def __init__(self, sync: StoreSync | None) -> None:
        self._sync = sync
        self._parsed: dict[str, FlagSpec] = {}
        self._raw: dict[str, str] = {}

    def _specs(self) -> dict[str, FlagSpec]:
        raw = self._sync.get(FLAGS) if self._sync is not None else {}
        if raw is not self._raw:
            parsed = {}
            for name, text in raw.items():
                try:
                    parsed[name] = FlagSpec.parse(text)
                except (orjson.JSONDecodeError, KeyError, TypeError):
                    continue  # a malformed flag reads as unset
            self._raw, self._parsed = raw, parsed
        return self._parsed

    def get(
        self,
        name: str,
        tenant: str | None = None,
        key: str | None = None,
        default: bool | str | None = None,
    ) -> bool | str | None:
        spec = self._specs().get(name)
        return default if spec is None else spec.evaluate(name, tenant, key)

    def all(self) -> dict[str, FlagSpec]:
        return dict(self._specs())

    def killed(self, tenant: str | None = None, job: str | None = None) -> bool:
        """Is learning/dynamic routing off here? True when the store was never reached."""
        if self._sync is None or not self._sync.known(KILL):
            return True
        switches = self._sync.get(KILL)
        if switches.get("global") == "on":
            return True
        if tenant is not None and switches.get(f"tenant:{tenant}") == "on":
            return True
        return job is not None and switches.get(f"job:{job}") == "on"

    def switches(self) -> dict[str, str] | None:
        """The kill switches as this process knows them (None: never loaded)."""
        if self._sync is None or not self._sync.known(KILL):
            return None
        return dict(self._sync.get(KILL))

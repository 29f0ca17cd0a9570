"""Each gateway process's copy of the adapter registry, and the choice of a version.

Fed by `StoreSync` (change notices as they happen, a full reload every second), so the
request path never reads the store. `pick` turns what a request names into the version
that serves it:

- `support-v3`: exactly that version unless it is retired;
- `support`: the active version; when a canary exists it takes `canary_share` of the
  requests, chosen by a sticky hash of (name, user or request id). With no active
  version yet, the requests the canary does not take go to the base model itself.

Only versions whose `tenants` include the tenant (or "*") and whose `base_model` is the
catalog model's upstream model are eligible.
"""

from __future__ import annotations

import hashlib
import logging
from dataclasses import dataclass

from gateway.adapters.registry import NAMESPACE, AdapterRecord, parse_id, parse_record
from gateway.logs import log_event

log = logging.getLogger("flywheel.adapters")


@dataclass(frozen=True, slots=True)
class Pick:
    """The version chosen; `record` None means the base model without an adapter."""

    record: AdapterRecord | None
    note: str


class AdapterIndex:
    def __init__(self) -> None:
        self._by_name: dict[str, list[AdapterRecord]] = {}
        self.generation = 0  # bumped on every change, for caches derived from this one

    def on_store_change(self, namespace: str, values: dict[str, str]) -> None:
        """A `StoreSync` listener: replace the copy when the `adapters` hash changed."""
        if namespace != NAMESPACE:
            return
        by_name: dict[str, list[AdapterRecord]] = {}
        for field, raw in values.items():
            record = parse_record(raw)
            if record is None or record.id != field:
                log_event(log, "ignoring malformed adapter record", logging.WARNING, id=field)
                continue
            by_name.setdefault(record.name, []).append(record)
        self._by_name = by_name
        self.generation += 1

    def load(self, records: list[AdapterRecord]) -> None:
        """Replace the copy with these records (tests, tools)."""
        self.on_store_change(NAMESPACE, {r.id: r.model_dump_json() for r in records})

    def pick(self, ref: str, tenant: str, base_model: str, key: str) -> Pick | None:
        """The version `ref` (a name or an id) resolves to for this request, or None."""
        versioned = parse_id(ref)
        name = versioned[0] if versioned else ref
        eligible = [
            r
            for r in self._by_name.get(name, ())
            if r.allows(tenant) and r.base_model == base_model
        ]
        if versioned is not None:
            exact = next((r for r in eligible if r.version == versioned[1]), None)
            if exact is None or exact.status == "retired":
                return None
            return Pick(exact, f"adapter {exact.id} ({exact.status})")
        active = _newest_active(eligible)
        canary = max(
            (r for r in eligible if r.status == "canary"), key=lambda r: r.version, default=None
        )
        if canary is not None and canary_bucket(name, key) < canary.canary_share:
            return Pick(canary, f"adapter {canary.id} (canary, share {canary.canary_share:g})")
        if active is not None:
            return Pick(active, f"adapter {active.id} (active)")
        if canary is not None:
            return Pick(None, f"adapter {name}: outside canary {canary.id}'s share, no active")
        return None

    def usable(self, tenant: str, base_model: str) -> list[str]:
        """Adapter names this tenant can request by name on this base model."""
        return sorted(
            name
            for name, records in self._by_name.items()
            if any(
                r.status in ("active", "canary") and r.allows(tenant) and r.base_model == base_model
                for r in records
            )
        )


def canary_bucket(name: str, key: str) -> float:
    """A stable position in [0, 1) for (adapter name, key)."""
    digest = hashlib.blake2b(f"adapter\x00{name}\x00{key}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big") / 2**64


def _newest_active(records: list[AdapterRecord]) -> AdapterRecord | None:
    actives = [r for r in records if r.status == "active"]
    return max(actives, key=lambda r: (r.activated_at or 0.0, r.version), default=None)

"""The LoRA adapter registry: every version of every adapter, in the store.

One record per version in the store hash `adapters` (field = the adapter id
`"{name}-v{version}"`, value = the record's JSON). The learner and operators write it
through the operations here (each one audited under its actor); gateway replicas read
it through their in-memory copy (`gateway.adapters.index`); the local model worker
finds an adapter's location with `find`. Only pydantic and the store protocol are
imported, so any process can use this module.

Lifecycle of one version: candidate -> canary (a share of traffic) -> active -> retired.
Per adapter name at most one version is active and at most one is canary.
"""

from __future__ import annotations

import re
import time
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from gateway.store.base import AuditEntry, Store

NAMESPACE = "adapters"
Status = Literal["candidate", "canary", "active", "retired"]

NAME_PATTERN = r"^[a-z0-9][a-z0-9._-]*$"
_ID = re.compile(r"^([a-z0-9][a-z0-9._-]*)-v([0-9]+)$")
_TENANT = Annotated[str, Field(min_length=1, max_length=128)]


class RegistryError(ValueError):
    """A registry operation that cannot be done; the message says why."""


class AdapterNotFound(RegistryError):
    pass


class AdapterExists(RegistryError):
    pass


class TransitionError(RegistryError):
    """The adapter's status does not allow this change."""


class AdapterRecord(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str = Field(min_length=1, max_length=100, pattern=NAME_PATTERN)
    version: int = Field(ge=1)
    base_model: str = Field(min_length=1, max_length=256)
    location: str = Field(min_length=1, max_length=4096, description="PEFT dir: path or URL")
    created_by: str = Field("", max_length=256, description="a job id or an operator")
    metrics: dict[str, float] = Field(default_factory=dict)
    status: Status = "candidate"
    tenants: list[_TENANT] = Field(default_factory=lambda: ["*"], description='"*": all')
    canary_share: float = Field(0.0, ge=0.0, le=1.0)
    created_at: float = 0.0
    updated_at: float = 0.0
    activated_at: float | None = None  # set each time it becomes active; rollback's order
    # Trained adapters wait for an operator (`flywheel ctl adapters approve`) before any
    # user sees them; the gate report the learner wrote is what the operator reviews.
    needs_approval: bool = False
    approved_by: str | None = None
    gate_report: dict[str, Any] | None = None

    @field_validator("name")
    @classmethod
    def _not_versioned(cls, name: str) -> str:
        if _ID.match(name):
            raise ValueError(f"an adapter name must not end in -v<number>: {name!r}")
        return name

    @property
    def id(self) -> str:
        return adapter_id(self.name, self.version)

    def allows(self, tenant: str) -> bool:
        return "*" in self.tenants or tenant in self.tenants

    def changed(self, **values: object) -> AdapterRecord:
        return self.model_copy(update={**values, "updated_at": time.time()})


def adapter_id(name: str, version: int) -> str:
    return f"{name}-v{version}"


def parse_id(text: str) -> tuple[str, int] | None:
    """`support-v3` -> ("support", 3); None when `text` is not an adapter id."""
    match = _ID.match(text)
    return (match.group(1), int(match.group(2))) if match else None


def parse_record(raw: str) -> AdapterRecord | None:
    """A stored record, or None when it is malformed (it then reads as absent)."""
    try:
        return AdapterRecord.model_validate_json(raw)
    except ValidationError:
        return None


# --- reading -----------------------------------------------------------------------


async def find(store: Store, adapter_id: str) -> AdapterRecord | None:
    """The record of one version by id (`support-v3`), or None."""
    if parse_id(adapter_id) is None:
        return None
    raw = await store.hget(NAMESPACE, adapter_id)
    return parse_record(raw) if raw is not None else None


async def get(store: Store, adapter_id: str) -> AdapterRecord:
    record = await find(store, adapter_id)
    if record is None:
        raise AdapterNotFound(f"no adapter {adapter_id!r}")
    return record


async def list_adapters(store: Store, name: str | None = None) -> list[AdapterRecord]:
    """Every version (of one adapter name), ordered by name then version."""
    records = [parse_record(raw) for raw in (await store.hgetall(NAMESPACE)).values()]
    found = [r for r in records if r is not None and (name is None or r.name == name)]
    return sorted(found, key=lambda r: (r.name, r.version))


# --- writing -----------------------------------------------------------------------


async def register(
    store: Store,
    *,
    name: str,
    base_model: str,
    location: str,
    actor: str,
    version: int | None = None,
    created_by: str | None = None,
    metrics: dict[str, float] | None = None,
    tenants: list[str] | None = None,
    needs_approval: bool = False,
    gate_report: dict[str, Any] | None = None,
) -> AdapterRecord:
    """A new version, as candidate: `version` or one more than the newest existing."""
    existing = await list_adapters(store, name)
    if version is None:
        version = max((r.version for r in existing), default=0) + 1
    if any(r.version == version for r in existing):
        raise AdapterExists(f"adapter {adapter_id(name, version)!r} is already registered")
    now = time.time()
    try:
        record = AdapterRecord(
            name=name,
            version=version,
            base_model=base_model,
            location=location,
            created_by=created_by if created_by is not None else actor,
            metrics=metrics or {},
            tenants=tenants if tenants is not None else ["*"],
            needs_approval=needs_approval,
            gate_report=gate_report,
            created_at=now,
            updated_at=now,
        )
    except ValidationError as exc:
        raise RegistryError(str(exc)) from None
    await _write(store, actor, "adapter.register", None, record)
    return record


async def promote(
    store: Store,
    name: str,
    version: int | None = None,
    canary_share: float | None = None,
    *,
    actor: str,
) -> AdapterRecord:
    """With `canary_share`: make the version the name's canary with that share of traffic
    (a previous canary goes back to candidate). Without: make it active (the previously
    active version is retired). `version` defaults to the canary, else the newest
    candidate."""
    records = await list_adapters(store, name)
    target = _pick_target(name, records, version)
    if target.needs_approval and target.approved_by is None:
        raise TransitionError(
            f"adapter {target.id!r} waits for an operator's approval: review its gate report "
            f"and run `flywheel ctl adapters approve {target.id}`"
        )
    if canary_share is not None:
        if not 0.0 < canary_share <= 1.0:
            raise RegistryError(f"a canary share is in (0, 1], got {canary_share}")
        if target.status == "active":
            raise TransitionError(f"adapter {target.id!r} is active: it cannot be a canary")
        promoted = target.changed(status="canary", canary_share=canary_share)
        await _write(store, actor, "adapter.canary", target, promoted)
        for other in records:
            if other.status == "canary" and other.version != target.version:
                await _write(store, actor, "adapter.canary_end", other, _to_candidate(other))
        return promoted
    if target.status == "active":
        raise TransitionError(f"adapter {target.id!r} is already active")
    return await _activate(store, actor, "adapter.promote", target, records)


async def approve(store: Store, name: str, version: int, *, actor: str) -> AdapterRecord:
    """An operator's approval of a trained candidate (after reading its gate report)."""
    record = await get(store, adapter_id(name, version))
    if record.status == "retired":
        raise TransitionError(f"adapter {record.id!r} is retired")
    if record.approved_by is not None:
        raise TransitionError(f"adapter {record.id!r} was approved by {record.approved_by}")
    approved = record.changed(approved_by=actor)
    await _write(store, actor, "adapter.approve", record, approved)
    return approved


async def retire(store: Store, name: str, version: int, *, actor: str) -> AdapterRecord:
    """Take a version out of service (an active one leaves the name with none)."""
    record = await get(store, adapter_id(name, version))
    if record.status == "retired":
        raise TransitionError(f"adapter {record.id!r} is already retired")
    retired = record.changed(status="retired", canary_share=0.0)
    await _write(store, actor, "adapter.retire", record, retired)
    return retired


async def rollback(store: Store, name: str, *, actor: str) -> AdapterRecord:
    """Retire the active version and make the most recently activated other one active.
    With none active, the last one that was (since retired) counts as the current one."""
    records = await list_adapters(store, name)
    if not records:
        raise AdapterNotFound(f"no adapter named {name!r}")
    activated = [r for r in records if r.activated_at is not None]
    current = _active(records) or _newest(activated)
    earlier = [r for r in activated if current is None or r.version != current.version]
    if not earlier:
        raise TransitionError(f"adapter {name!r} has no earlier active version to roll back to")
    previous = _newest(earlier)
    assert previous is not None
    return await _activate(store, actor, "adapter.rollback", previous, records)


async def _activate(
    store: Store, actor: str, action: str, target: AdapterRecord, records: list[AdapterRecord]
) -> AdapterRecord:
    # The new version is written first: replicas route to the newest activation, so a
    # reader between the two writes sees one active version, never none.
    now = time.time()
    active = target.changed(status="active", canary_share=0.0, activated_at=now)
    await _write(store, actor, action, target, active)
    for other in records:
        if other.status == "active" and other.version != target.version:
            retired = other.changed(status="retired", canary_share=0.0)
            await _write(store, actor, action, other, retired)
    return active


def _pick_target(name: str, records: list[AdapterRecord], version: int | None) -> AdapterRecord:
    if not records:
        raise AdapterNotFound(f"no adapter named {name!r}")
    if version is not None:
        for record in records:
            if record.version == version:
                return record
        raise AdapterNotFound(f"no adapter {adapter_id(name, version)!r}")
    canary = next((r for r in records if r.status == "canary"), None)
    if canary is not None:
        return canary
    candidates = [r for r in records if r.status == "candidate"]
    if not candidates:
        raise TransitionError(f"adapter {name!r} has no candidate or canary: name a version")
    return max(candidates, key=lambda r: r.version)


def _active(records: list[AdapterRecord]) -> AdapterRecord | None:
    return _newest([r for r in records if r.status == "active"])


def _newest(records: list[AdapterRecord]) -> AdapterRecord | None:
    """The most recently activated of `records`."""
    return max(records, key=lambda r: (r.activated_at or 0.0, r.version), default=None)


def _to_candidate(record: AdapterRecord) -> AdapterRecord:
    return record.changed(status="candidate", canary_share=0.0)


async def _write(
    store: Store, actor: str, action: str, old: AdapterRecord | None, new: AdapterRecord
) -> None:
    value = new.model_dump_json()
    await store.hset(NAMESPACE, new.id, value)
    before = old.model_dump_json() if old is not None else None
    await store.audit(AuditEntry(time.time(), actor, action, new.id, before, value))

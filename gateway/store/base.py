"""The one store interface shared by the gateway and the learner.

Two real backends implement it: `sqlite:///path/flywheel.db` (embedded default, WAL
mode, safe across the processes of one host) and `redis://host:port/db` (Streams with
consumer groups, hashes, pub/sub). `open_store(url)` picks one. The same contract test
suite (tests/test_store_contract.py) runs against both.

Concepts:
- **streams** `events` and `feedback`: append-only logs of JSON records, consumed by
  groups at least once (`read` then `ack`); unacked entries are redelivered to the
  group after a restart (`read(..., pending=True)` first returns what this consumer
  had not acked).
- **events by id**: `put_events` is idempotent by request id (a second put of the
  same id is ignored), and `get_event` finds one.
- **feedback by (request id, tenant)**: kept whether or not the event exists yet, and
  joined only to an event of the same tenant: `put_feedback` refuses feedback on another
  tenant's stored event, and `put_events` drops feedback that another tenant left on a
  request id before its event arrived (counted in `foreign_feedback_dropped`).
- **hashes**: small namespaced key/value maps (flags, kill switches, policy params,
  adapter registry, API keys) with `changes` notices on every write.
- **audit**: an append-only log of who changed what.

Errors: every backend failure is raised as `StoreUnavailable(kind, problem)`, translated
once inside the backend; its text names the kind of store and the problem, never the
URL or its credentials (gateway/store/scrub.py), so it is safe in a log line.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Literal, Protocol

from gateway.events import Feedback, InteractionEvent

StreamName = Literal["events", "feedback"]
# What `put_feedback` did: joined to the tenant's stored event, kept until that event
# arrives, or refused (the stored event belongs to another tenant; nothing was kept).
FeedbackStatus = Literal["joined", "pending_event", "refused"]


class StoreUnavailable(Exception):
    """The store cannot be reached or refused the operation; callers may retry later.

    `kind` is the store kind (`redis`, `sqlite`); `problem` a scrubbed phrase. The message
    never carries the store URL, a user name or a password."""

    def __init__(self, kind: str, problem: str) -> None:
        super().__init__(f"{kind} store unavailable: {problem}")
        self.kind = kind
        self.problem = problem


@dataclass(frozen=True, slots=True)
class StreamEntry:
    entry_id: str  # backend-specific, opaque, increasing within a stream
    payload: bytes  # the record's JSON


@dataclass(frozen=True, slots=True)
class Change:
    """A notice that a hash changed: `namespace` and `field` ("" = many fields)."""

    namespace: str
    field: str


@dataclass(frozen=True, slots=True)
class AuditEntry:
    ts: float
    actor: str
    action: str
    target: str
    old: str | None
    new: str | None


class Store(Protocol):
    url: str
    foreign_feedback_dropped: int  # feedback of another tenant dropped when its event came

    async def start(self) -> None: ...

    async def close(self) -> None: ...

    async def ping(self) -> None:
        """Raise StoreUnavailable unless the store answers."""

    # --- events and feedback -------------------------------------------------------

    async def put_events(self, events: list[InteractionEvent]) -> int:
        """Append events not stored before (by request id); return how many were new."""

    async def get_event(self, request_id: str) -> InteractionEvent | None: ...

    async def put_feedback(self, feedback: Feedback) -> FeedbackStatus:
        """Append to the feedback stream and index it by request id, unless the stored
        event of that id belongs to another tenant ("refused": nothing is written)."""

    async def feedback_for(self, request_id: str, tenant: str | None = None) -> list[Feedback]:
        """The feedback on a request id; with `tenant`, only that tenant's (the join)."""

    # --- consumption (the learner) -------------------------------------------------

    async def read(
        self,
        stream: StreamName,
        group: str,
        consumer: str,
        count: int,
        block_ms: int = 0,
        pending: bool = False,
    ) -> list[StreamEntry]:
        """Entries for this group not yet delivered (or, with pending=True, delivered to
        this consumer but not acked). Creates the group at the stream's start if new."""

    async def ack(self, stream: StreamName, group: str, entry_ids: list[str]) -> None: ...

    async def stream_length(self, stream: StreamName) -> int: ...

    # --- hashes and change notices -------------------------------------------------

    async def hgetall(self, namespace: str) -> dict[str, str]: ...

    async def hget(self, namespace: str, field: str) -> str | None: ...

    async def hset(self, namespace: str, field: str, value: str) -> str | None:
        """Set and notify; return the previous value."""

    async def hdel(self, namespace: str, field: str) -> str | None:
        """Delete and notify; return the previous value."""

    def changes(self) -> AsyncIterator[Change]:
        """Change notices from every process, as they happen (pub/sub on Redis; a
        change-log table polled every 100 ms on SQLite). Ends when the store closes."""

    # --- audit ---------------------------------------------------------------------

    async def audit(self, entry: AuditEntry) -> None: ...

    async def read_audit(self, limit: int = 100) -> list[AuditEntry]:
        """Newest first."""

    # --- data governance -----------------------------------------------------------

    async def trim_events(self, tenant: str, older_than_ts: float) -> int:
        """Delete the tenant's events (and their feedback) older than the timestamp."""

    async def delete_user(self, tenant: str, user: str) -> int:
        """Delete every event and feedback of one user of one tenant; return the count."""

    async def expire_orphan_feedback(self, older_than_ts: float) -> int:
        """Delete feedback older than the timestamp whose event never arrived."""

"""The learner's durable state: pending decisions, their feedback, and the replay buffer.

One SQLite file (WAL). An event of a `bandit` decision is `pending` until its feedback
horizon passes, then it becomes an `experience` (context features, arm, propensity,
reward, policy version) that bandit updates, the off-policy gate and later training jobs
read. Every answered request whose content the tenant logs is also indexed (`logged`: id,
tenant, time), whatever routed it: the training runs' snapshots draw on it, and the
scheduler counts it as new data. Everything is keyed by id and written with INSERT OR
IGNORE, so a stream entry delivered twice (at-least-once consumption, a restart before the
ack) changes nothing; the store's entries are acked only after they are committed here.

Feedback joins a decision only when both carry the same tenant (`due`): feedback that
another tenant sent on a request id (in the instant before the event was stored, or
through any other path) is never joined, and is counted in `foreign_feedback`.

At scale the experiences are what a job exports to Parquet on object storage; the
learner itself keeps only the recent window it needs.
"""

from __future__ import annotations

import json
import sqlite3
import time
from dataclasses import dataclass
from pathlib import Path

from gateway.events import Feedback, InteractionEvent

SCHEMA = """
CREATE TABLE IF NOT EXISTS pending (
    request_id TEXT PRIMARY KEY, tenant TEXT NOT NULL, rule TEXT NOT NULL, ts REAL NOT NULL,
    user TEXT, prompt_hash TEXT, event TEXT NOT NULL);
CREATE INDEX IF NOT EXISTS pending_ts ON pending (ts);
CREATE TABLE IF NOT EXISTS feedback (
    feedback_id TEXT PRIMARY KEY, request_id TEXT NOT NULL, record TEXT NOT NULL,
    received REAL NOT NULL);
CREATE INDEX IF NOT EXISTS feedback_received ON feedback (received);
CREATE INDEX IF NOT EXISTS feedback_request ON feedback (request_id);
CREATE TABLE IF NOT EXISTS seen (
    tenant TEXT NOT NULL, user TEXT NOT NULL, prompt_hash TEXT NOT NULL, ts REAL NOT NULL,
    request_id TEXT PRIMARY KEY);
CREATE INDEX IF NOT EXISTS seen_prompt ON seen (tenant, user, prompt_hash, ts);
CREATE TABLE IF NOT EXISTS experience (
    seq INTEGER PRIMARY KEY AUTOINCREMENT, request_id TEXT UNIQUE NOT NULL,
    tenant TEXT NOT NULL, rule TEXT NOT NULL, ts REAL NOT NULL, arm TEXT NOT NULL,
    propensity REAL NOT NULL, policy_version TEXT, context TEXT NOT NULL, reward REAL NOT NULL,
    cost_usd REAL NOT NULL, latency_ms REAL NOT NULL);
CREATE INDEX IF NOT EXISTS experience_rule ON experience (tenant, rule, seq);
CREATE TABLE IF NOT EXISTS logged (
    request_id TEXT PRIMARY KEY, tenant TEXT NOT NULL, ts REAL NOT NULL);
CREATE INDEX IF NOT EXISTS logged_tenant_ts ON logged (tenant, ts);
CREATE INDEX IF NOT EXISTS logged_ts ON logged (ts);
"""
LOGGED_KEEP_S = 30 * 86400  # how long the index of trainable interactions reaches back


@dataclass(frozen=True)
class Experience:
    request_id: str
    tenant: str
    rule: str
    ts: float
    arm: str
    propensity: float
    policy_version: str | None
    context: dict[str, object]
    reward: float
    cost_usd: float = 0.0
    latency_ms: float = 0.0


class ReplayBuffer:
    def __init__(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self._db = sqlite3.connect(str(path), isolation_level=None, check_same_thread=False)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=NORMAL")
        self._db.executescript(SCHEMA)
        # What this process parsed already (the rows stay the durable copy): saves parsing
        # every pending decision and its feedback twice; empty after a restart.
        self._events: dict[str, InteractionEvent] = {}
        self._feedback: dict[str, list[Feedback]] = {}
        self._feedback_at: dict[str, float] = {}
        self.foreign_feedback = 0  # feedback left out of a join: another tenant's

    def close(self) -> None:
        self._db.close()

    def add(self, events: list[InteractionEvent], feedback: list[Feedback]) -> int:
        """Record new decisions (bandit, adapter), the logged index and feedback in one
        transaction; how many decisions were new."""
        added = 0
        with self._transaction():
            for event in events:
                if event.context.prompt_hash and event.user:
                    self._db.execute(
                        "INSERT OR IGNORE INTO seen VALUES (?, ?, ?, ?, ?)",
                        (event.tenant, event.user, event.context.prompt_hash, event.ts,
                         event.request_id),
                    )  # fmt: skip
                if event.request is not None and event.status == 200:
                    self._db.execute(
                        "INSERT OR IGNORE INTO logged VALUES (?, ?, ?)",
                        (event.request_id, event.tenant, event.ts),
                    )
                rule = event.routing.rule or ""
                bandit = event.routing.strategy == "bandit" and rule and event.routing.arm
                if not bandit and not event.adapter:  # adapter traffic: canary judgement
                    continue
                done = self._db.execute(
                    "SELECT 1 FROM experience WHERE request_id = ?", (event.request_id,)
                ).fetchone()
                if done:
                    continue
                cursor = self._db.execute(
                    "INSERT OR IGNORE INTO pending VALUES (?, ?, ?, ?, ?, ?, ?)",
                    (event.request_id, event.tenant, rule, event.ts, event.user,
                     event.context.prompt_hash,
                     event.model_dump_json(exclude={"request", "response"})),
                )  # fmt: skip
                added += cursor.rowcount
                if cursor.rowcount:
                    self._events[event.request_id] = event
            now = time.time()
            for item in feedback:
                cursor = self._db.execute(
                    "INSERT OR IGNORE INTO feedback VALUES (?, ?, ?, ?)",
                    (item.feedback_id, item.request_id, item.model_dump_json(), now),
                )
                if cursor.rowcount:
                    self._feedback.setdefault(item.request_id, []).append(item)
                    self._feedback_at[item.request_id] = now
        return added

    def due(
        self, before_ts: float, limit: int = 5000
    ) -> list[tuple[InteractionEvent, list[Feedback]]]:
        """Pending decisions that arrived before `before_ts`, with their feedback."""
        rows = self._db.execute(
            "SELECT request_id FROM pending WHERE ts < ? ORDER BY ts LIMIT ?", (before_ts, limit)
        ).fetchall()
        ids = [r[0] for r in rows]
        unknown = [i for i in ids if i not in self._events]
        for chunk in range(0, len(unknown), 500):  # after a restart: read back what we kept
            part = unknown[chunk : chunk + 500]
            marks = ",".join("?" * len(part))
            for request_id, raw in self._db.execute(
                f"SELECT request_id, event FROM pending WHERE request_id IN ({marks})", part
            ):
                self._events[request_id] = InteractionEvent.model_validate_json(raw)
            for request_id, record in self._db.execute(
                f"SELECT request_id, record FROM feedback WHERE request_id IN ({marks})", part
            ):
                self._feedback.setdefault(request_id, []).append(
                    Feedback.model_validate_json(record)
                )
        return [(self._events[i], self._joined(self._events[i])) for i in ids]

    def _joined(self, event: InteractionEvent) -> list[Feedback]:
        """The decision's feedback: the event's own tenant's only."""
        found = self._feedback.get(event.request_id, [])
        own = [f for f in found if f.tenant == event.tenant]
        self.foreign_feedback += len(found) - len(own)
        return own

    def retried(self, event: InteractionEvent, window_s: float) -> bool:
        """Did the same user send the same prompt again within the window?"""
        if not event.user or not event.context.prompt_hash or window_s <= 0:
            return False
        row = self._db.execute(
            "SELECT 1 FROM seen WHERE tenant = ? AND user = ? AND prompt_hash = ? AND ts > ? "
            "AND ts <= ? AND request_id != ? LIMIT 1",
            (event.tenant, event.user, event.context.prompt_hash, event.ts,
             event.ts + window_s, event.request_id),
        ).fetchone()  # fmt: skip
        return row is not None

    def finish(self, done: list[tuple[str, Experience | None]]) -> list[bool]:
        """Move decisions out of `pending` (into the buffer when they have a reward), in one
        transaction. For each: True when its experience is new, which is when the bandit
        may learn from it (a redelivered decision finds its experience already there)."""
        fresh = []
        with self._transaction():
            for request_id, experience in done:
                self._events.pop(request_id, None)
                self._feedback.pop(request_id, None)
                self._feedback_at.pop(request_id, None)
                self._db.execute("DELETE FROM pending WHERE request_id = ?", (request_id,))
                self._db.execute("DELETE FROM feedback WHERE request_id = ?", (request_id,))
                if experience is None:
                    fresh.append(False)
                    continue
                e = experience
                cursor = self._db.execute(
                    "INSERT OR IGNORE INTO experience (request_id, tenant, rule, ts, arm,"
                    " propensity, policy_version, context, reward, cost_usd, latency_ms)"
                    " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                    (e.request_id, e.tenant, e.rule, e.ts, e.arm, e.propensity, e.policy_version,
                     json.dumps(e.context), e.reward, e.cost_usd, e.latency_ms),
                )  # fmt: skip
                fresh.append(cursor.rowcount == 1)
        return fresh

    def experiences(
        self, tenant: str | None = None, rule: str | None = None, last: int | None = None
    ) -> list[Experience]:
        """In arrival order; the `last` N only when given."""
        where, args = [], []
        if tenant is not None:
            where.append("tenant = ?")
            args.append(tenant)
        if rule is not None:
            where.append("rule = ?")
            args.append(rule)
        sql = (
            "SELECT request_id, tenant, rule, ts, arm, propensity, policy_version, context,"
            " reward, cost_usd, latency_ms FROM experience"
        )
        if where:
            sql += " WHERE " + " AND ".join(where)
        sql += " ORDER BY seq DESC" + (f" LIMIT {int(last)}" if last else "")
        rows = self._db.execute(sql, args).fetchall()
        return [
            Experience(
                r[0], r[1], r[2], r[3], r[4], r[5], r[6], json.loads(r[7]), r[8], r[9], r[10]
            )
            for r in reversed(rows)
        ]

    def logged(self, tenant: str, last: int = 50_000) -> list[str]:
        """Request ids of the tenant's `last` N logged interactions, oldest first."""
        rows = self._db.execute(
            "SELECT request_id FROM logged WHERE tenant = ? ORDER BY ts DESC LIMIT ?",
            (tenant, int(last)),
        ).fetchall()
        return [r[0] for r in reversed(rows)]

    def logged_since(self, tenant: str, since: float) -> int:
        """How many of the tenant's logged interactions are newer than `since`."""
        row = self._db.execute(
            "SELECT COUNT(*) FROM logged WHERE tenant = ? AND ts > ?", (tenant, since)
        ).fetchone()
        return int(row[0])

    def counts(self) -> dict[str, int]:
        return {
            table: int(self._db.execute(f"SELECT COUNT(*) FROM {table}").fetchone()[0])
            for table in ("pending", "feedback", "experience")
        }

    def prune(self, before_ts: float) -> None:
        """Forget prompts seen and feedback received before `before_ts` that no pending
        decision needs (feedback on requests the learner does not learn from, or late),
        and logged interactions older than `LOGGED_KEEP_S`."""
        self._db.execute("DELETE FROM seen WHERE ts < ?", (before_ts,))
        self._db.execute("DELETE FROM logged WHERE ts < ?", (time.time() - LOGGED_KEEP_S,))
        self._db.execute(
            "DELETE FROM feedback WHERE received < ? AND request_id NOT IN "
            "(SELECT request_id FROM pending)",
            (before_ts,),
        )
        for request_id, at in list(self._feedback_at.items()):
            if at < before_ts and request_id not in self._events:
                self._feedback.pop(request_id, None)
                del self._feedback_at[request_id]

    def _transaction(self) -> _Transaction:
        return _Transaction(self._db)


class _Transaction:
    def __init__(self, db: sqlite3.Connection) -> None:
        self._db = db

    def __enter__(self) -> None:
        self._db.execute("BEGIN IMMEDIATE")

    def __exit__(self, kind: object, value: object, tb: object) -> None:
        self._db.execute("COMMIT" if kind is None else "ROLLBACK")

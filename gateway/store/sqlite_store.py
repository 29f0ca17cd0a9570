"""The embedded store: one SQLite file in WAL mode, shared by the processes of one host.

`sqlite:///relative/flywheel.db` or `sqlite:////absolute/flywheel.db` (SQLAlchemy's
convention: the path is whatever follows `sqlite:///`). Every call runs on one worker
thread that owns the connection, so the event loop never waits on disk. Writes start
with `BEGIN IMMEDIATE` (no lock upgrades, so `busy_timeout` covers every conflict with
another process) and a batch is one transaction.

Tables: `events` and `feedback` (the two streams; an AUTOINCREMENT `seq` is the entry
id and is never reused), `consumer_groups` (last delivered seq per group) and `pending`
(delivered, not yet acked), `hashes`, `change_log` (polled by `changes()`, pruned to
the last minute on write) and `audit`.

Feedback joins only its own tenant's event: `put_feedback` refuses feedback on another
tenant's stored event, and `put_events` deletes feedback another tenant left on the id
before the event came, in the event's transaction. Failures become `StoreUnavailable`
with a scrubbed message (never the URL).
"""

from __future__ import annotations

import asyncio
import contextlib
import sqlite3
import time
from collections.abc import AsyncIterator, Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, TypeVar

from gateway.events import Feedback, InteractionEvent
from gateway.store.base import (
    AuditEntry,
    Change,
    FeedbackStatus,
    StoreUnavailable,
    StreamEntry,
    StreamName,
)
from gateway.store.joins import foreign_feedback_dropped
from gateway.store.scrub import describe

T = TypeVar("T")

PREFIX = "sqlite:///"
CHANGES_POLL_S = 0.1  # how often `changes()` polls the change log
READ_POLL_S = 0.05  # how often a blocking `read` looks for entries from other processes
CHANGE_TTL_S = 60.0  # change-log rows older than this are pruned on write
TABLES: dict[str, str] = {"events": "events", "feedback": "feedback"}

SCHEMA = """
BEGIN IMMEDIATE;
CREATE TABLE IF NOT EXISTS events (
    seq INTEGER PRIMARY KEY AUTOINCREMENT, request_id TEXT NOT NULL UNIQUE,
    tenant TEXT NOT NULL, user TEXT, ts REAL NOT NULL, payload BLOB NOT NULL);
CREATE INDEX IF NOT EXISTS events_tenant_ts ON events (tenant, ts);
CREATE INDEX IF NOT EXISTS events_tenant_user ON events (tenant, user);
CREATE TABLE IF NOT EXISTS feedback (
    seq INTEGER PRIMARY KEY AUTOINCREMENT, feedback_id TEXT NOT NULL UNIQUE,
    request_id TEXT NOT NULL, tenant TEXT NOT NULL, user TEXT, ts REAL NOT NULL,
    payload BLOB NOT NULL);
CREATE INDEX IF NOT EXISTS feedback_request ON feedback (request_id);
CREATE INDEX IF NOT EXISTS feedback_ts ON feedback (ts);
CREATE INDEX IF NOT EXISTS feedback_tenant_user ON feedback (tenant, user);
CREATE TABLE IF NOT EXISTS consumer_groups (
    stream TEXT NOT NULL, grp TEXT NOT NULL, last_seq INTEGER NOT NULL DEFAULT 0,
    PRIMARY KEY (stream, grp)) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS pending (
    stream TEXT NOT NULL, grp TEXT NOT NULL, seq INTEGER NOT NULL, consumer TEXT NOT NULL,
    delivered_at REAL NOT NULL, PRIMARY KEY (stream, grp, seq)) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS pending_consumer ON pending (stream, grp, consumer, seq);
CREATE TABLE IF NOT EXISTS hashes (
    namespace TEXT NOT NULL, field TEXT NOT NULL, value TEXT NOT NULL,
    PRIMARY KEY (namespace, field)) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS change_log (
    id INTEGER PRIMARY KEY AUTOINCREMENT, namespace TEXT NOT NULL, field TEXT NOT NULL,
    ts REAL NOT NULL);
CREATE TABLE IF NOT EXISTS audit (
    id INTEGER PRIMARY KEY AUTOINCREMENT, ts REAL NOT NULL, actor TEXT NOT NULL,
    action TEXT NOT NULL, target TEXT NOT NULL, old TEXT, new TEXT);
COMMIT;
"""


def path_from_url(url: str) -> Path:
    if not url.startswith(PREFIX) or len(url) == len(PREFIX):
        raise ValueError(f"not a SQLite store url (sqlite:///path/flywheel.db): {url!r}")
    path = url[len(PREFIX) :]
    if path == ":memory:":
        raise ValueError(f"{url!r}: an in-memory database cannot be shared; name a file")
    return Path(path)


def _write(conn: sqlite3.Connection, fn: Callable[[sqlite3.Connection], T]) -> T:
    """Run `fn` in one write transaction, taken up front so no lock upgrade can fail."""
    conn.execute("BEGIN IMMEDIATE")
    try:
        result = fn(conn)
    except BaseException:
        if conn.in_transaction:
            conn.execute("ROLLBACK")
        raise
    conn.execute("COMMIT")
    return result


def _seq(entry_id: str) -> int:
    try:
        return int(entry_id)
    except ValueError:
        raise ValueError(f"not a SQLite stream entry id: {entry_id!r}") from None


class SQLiteStore:
    def __init__(self, url: str, busy_timeout_ms: int = 5000) -> None:
        self.url = url
        self.foreign_feedback_dropped = 0
        self._path = path_from_url(url)
        self._busy_timeout_ms = busy_timeout_ms
        self._executor = ThreadPoolExecutor(1, thread_name_prefix="flywheel-sqlite")
        self._conn: sqlite3.Connection | None = None  # touched only on the worker thread
        self._closed = False
        self._appended = asyncio.Event()  # wakes this process's blocked readers early

    # --- plumbing ------------------------------------------------------------------

    def _connect(self) -> sqlite3.Connection:
        self._path.parent.mkdir(parents=True, exist_ok=True)
        conn = sqlite3.connect(
            self._path,
            timeout=self._busy_timeout_ms / 1000,
            isolation_level=None,  # we issue BEGIN/COMMIT ourselves
            check_same_thread=False,
        )
        try:
            conn.execute(f"PRAGMA busy_timeout = {int(self._busy_timeout_ms)}")
            conn.execute("PRAGMA journal_mode = WAL")
            conn.execute("PRAGMA synchronous = NORMAL")  # durable across crashes in WAL
            conn.executescript(SCHEMA)
        except BaseException:
            conn.close()
            raise
        return conn

    def _on_thread(self, fn: Callable[..., T], args: tuple[Any, ...]) -> T:
        if self._conn is None:
            self._conn = self._connect()
        return fn(self._conn, *args)

    async def _call(self, fn: Callable[..., T], *args: Any) -> T:
        """Run `fn(conn, *args)` on the worker thread; map SQLite's failures once."""
        if self._closed:
            raise StoreUnavailable("sqlite", "store closed")
        loop = asyncio.get_running_loop()
        try:
            return await loop.run_in_executor(self._executor, self._on_thread, fn, args)
        except (sqlite3.OperationalError, OSError) as exc:
            raise StoreUnavailable("sqlite", describe(exc, self.url)) from exc
        except RuntimeError as exc:  # the executor was shut down by close()
            raise StoreUnavailable("sqlite", "store closed") from exc

    async def _tx(self, fn: Callable[[sqlite3.Connection], T]) -> T:
        return await self._call(_write, fn)

    async def _query(self, sql: str, *params: Any) -> list[Any]:
        return await self._call(lambda conn: conn.execute(sql, params).fetchall())

    async def _modify(self, *statements: tuple[str, tuple[Any, ...]]) -> list[int]:
        """Run the statements in one transaction; return each one's row count."""
        return await self._tx(lambda conn: [conn.execute(*s).rowcount for s in statements])

    # --- lifecycle -----------------------------------------------------------------

    async def start(self) -> None:
        await self.ping()

    async def close(self) -> None:
        if self._closed:
            return
        self._closed = True

        def shut() -> None:  # queued behind the calls already submitted
            if self._conn is not None:
                self._conn.close()
                self._conn = None

        with contextlib.suppress(sqlite3.Error):
            await asyncio.get_running_loop().run_in_executor(self._executor, shut)
        self._executor.shutdown(wait=False)

    async def ping(self) -> None:
        await self._query("PRAGMA schema_version")

    # --- events and feedback -------------------------------------------------------

    async def put_events(self, events: list[InteractionEvent]) -> int:
        if not events:
            return 0
        rows = [
            (e.request_id, e.tenant, e.user, e.ts, e.model_dump_json().encode()) for e in events
        ]
        owners = [(e.request_id, e.tenant) for e in events]
        sql = (
            "INSERT OR IGNORE INTO events (request_id, tenant, user, ts, payload)"
            " VALUES (?, ?, ?, ?, ?)"
        )
        foreign = "DELETE FROM feedback WHERE request_id = ? AND tenant != ?"

        def put(conn: sqlite3.Connection) -> tuple[int, int]:
            added: int = conn.executemany(sql, rows).rowcount
            return added, conn.executemany(foreign, owners).rowcount

        added, dropped = await self._tx(put)
        if dropped:
            self.foreign_feedback_dropped += dropped
            foreign_feedback_dropped(dropped)
        if added:
            self._appended.set()
        return added

    async def get_event(self, request_id: str) -> InteractionEvent | None:
        rows = await self._query("SELECT payload FROM events WHERE request_id = ?", request_id)
        return InteractionEvent.model_validate_json(rows[0][0]) if rows else None

    async def put_feedback(self, feedback: Feedback) -> FeedbackStatus:
        f = feedback
        row = (f.feedback_id, f.request_id, f.tenant, f.user, f.ts, f.model_dump_json().encode())
        sql = (
            "INSERT OR IGNORE INTO feedback (feedback_id, request_id, tenant, user, ts, payload)"
            " VALUES (?, ?, ?, ?, ?, ?)"
        )

        def put(conn: sqlite3.Connection) -> tuple[FeedbackStatus, int]:
            owner = conn.execute(
                "SELECT tenant FROM events WHERE request_id = ?", (f.request_id,)
            ).fetchone()
            if owner is not None and owner[0] != f.tenant:
                return "refused", 0
            status: FeedbackStatus = "pending_event" if owner is None else "joined"
            return status, conn.execute(sql, row).rowcount

        status, added = await self._tx(put)
        if added:
            self._appended.set()
        return status

    async def feedback_for(self, request_id: str, tenant: str | None = None) -> list[Feedback]:
        if tenant is None:
            sql = "SELECT payload FROM feedback WHERE request_id = ? ORDER BY seq"
            rows = await self._query(sql, request_id)
        else:
            sql = "SELECT payload FROM feedback WHERE request_id = ? AND tenant = ? ORDER BY seq"
            rows = await self._query(sql, request_id, tenant)
        return [Feedback.model_validate_json(p) for (p,) in rows]

    # --- consumption -----------------------------------------------------------------

    async def read(
        self,
        stream: StreamName,
        group: str,
        consumer: str,
        count: int,
        block_ms: int = 0,
        pending: bool = False,
    ) -> list[StreamEntry]:
        deadline = time.monotonic() + block_ms / 1000
        while True:
            self._appended.clear()
            reader = _read_pending if pending else _read_new
            rows = await self._call(reader, TABLES[stream], stream, group, consumer, count)
            remaining = deadline - time.monotonic()
            if rows or pending or remaining <= 0:
                return [StreamEntry(str(seq), payload) for seq, payload in rows]
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._appended.wait(), min(remaining, READ_POLL_S))

    async def ack(self, stream: StreamName, group: str, entry_ids: list[str]) -> None:
        rows = [(stream, group, _seq(entry_id)) for entry_id in entry_ids]
        sql = "DELETE FROM pending WHERE stream = ? AND grp = ? AND seq = ?"
        if rows:
            await self._tx(lambda conn: conn.executemany(sql, rows))

    async def stream_length(self, stream: StreamName) -> int:
        return int((await self._query(f"SELECT count(*) FROM {TABLES[stream]}"))[0][0])

    # --- hashes and change notices -------------------------------------------------

    async def hgetall(self, namespace: str) -> dict[str, str]:
        rows = await self._query("SELECT field, value FROM hashes WHERE namespace = ?", namespace)
        return dict(rows)

    async def hget(self, namespace: str, field: str) -> str | None:
        return await self._call(_hget, namespace, field)

    async def hset(self, namespace: str, field: str, value: str) -> str | None:
        def change(conn: sqlite3.Connection) -> str | None:
            old = _hget(conn, namespace, field)
            conn.execute(
                "INSERT INTO hashes (namespace, field, value) VALUES (?, ?, ?)"
                " ON CONFLICT (namespace, field) DO UPDATE SET value = excluded.value",
                (namespace, field, value),
            )
            _log_change(conn, namespace, field)
            return old

        return await self._tx(change)

    async def hdel(self, namespace: str, field: str) -> str | None:
        def change(conn: sqlite3.Connection) -> str | None:
            old = _hget(conn, namespace, field)
            if old is not None:
                sql = "DELETE FROM hashes WHERE namespace = ? AND field = ?"
                conn.execute(sql, (namespace, field))
                _log_change(conn, namespace, field)
            return old

        return await self._tx(change)

    async def changes(self) -> AsyncIterator[Change]:
        position = (await self._query("SELECT coalesce(max(id), 0) FROM change_log"))[0][0]
        sql = "SELECT id, namespace, field FROM change_log WHERE id > ? ORDER BY id"
        while not self._closed:
            try:
                rows = await self._query(sql, position)
            except StoreUnavailable:
                if self._closed:
                    return
                raise
            for row_id, namespace, field in rows:
                position = row_id
                yield Change(namespace, field)
            await asyncio.sleep(CHANGES_POLL_S)

    # --- audit ---------------------------------------------------------------------

    async def audit(self, entry: AuditEntry) -> None:
        row = (entry.ts, entry.actor, entry.action, entry.target, entry.old, entry.new)
        sql = "INSERT INTO audit (ts, actor, action, target, old, new) VALUES (?, ?, ?, ?, ?, ?)"
        await self._modify((sql, row))

    async def read_audit(self, limit: int = 100) -> list[AuditEntry]:
        sql = "SELECT ts, actor, action, target, old, new FROM audit ORDER BY id DESC LIMIT ?"
        return [AuditEntry(*row) for row in await self._query(sql, limit)]

    # --- data governance -----------------------------------------------------------

    async def trim_events(self, tenant: str, older_than_ts: float) -> int:
        """Delete the tenant's older events and their feedback; return the events deleted."""
        old = "SELECT request_id FROM events WHERE tenant = ? AND ts < ?"
        _, events = await self._modify(
            (f"DELETE FROM feedback WHERE request_id IN ({old})", (tenant, older_than_ts)),
            ("DELETE FROM events WHERE tenant = ? AND ts < ?", (tenant, older_than_ts)),
        )
        return events

    async def delete_user(self, tenant: str, user: str) -> int:
        """Delete the user's events, their feedback and the user's own feedback; return
        how many records (events + feedback) went."""
        theirs = "SELECT request_id FROM events WHERE tenant = ? AND user = ?"
        counts = await self._modify(
            (
                f"DELETE FROM feedback WHERE (tenant = ? AND user = ?) OR request_id IN ({theirs})",
                (tenant, user, tenant, user),
            ),
            ("DELETE FROM events WHERE tenant = ? AND user = ?", (tenant, user)),
        )
        return sum(counts)

    async def expire_orphan_feedback(self, older_than_ts: float) -> int:
        event = "SELECT 1 FROM events WHERE events.request_id = feedback.request_id"
        sql = f"DELETE FROM feedback WHERE ts < ? AND NOT EXISTS ({event})"
        return (await self._modify((sql, (older_than_ts,))))[0]


# --- worker-thread helpers (each takes the connection first) -------------------------


def _hget(conn: sqlite3.Connection, namespace: str, field: str) -> str | None:
    row = conn.execute(
        "SELECT value FROM hashes WHERE namespace = ? AND field = ?", (namespace, field)
    ).fetchone()
    return None if row is None else str(row[0])


def _log_change(conn: sqlite3.Connection, namespace: str, field: str) -> None:
    now = time.time()
    conn.execute("DELETE FROM change_log WHERE ts < ?", (now - CHANGE_TTL_S,))
    conn.execute(
        "INSERT INTO change_log (namespace, field, ts) VALUES (?, ?, ?)", (namespace, field, now)
    )


def _read_new(
    conn: sqlite3.Connection, table: str, stream: str, group: str, consumer: str, count: int
) -> list[tuple[int, bytes]]:
    """Claim up to `count` entries past the group's position for `consumer`."""
    row = conn.execute(
        "SELECT last_seq FROM consumer_groups WHERE stream = ? AND grp = ?", (stream, group)
    ).fetchone()
    if row is not None:  # a cheap look first, so idle readers never take the write lock
        newer = conn.execute(f"SELECT 1 FROM {table} WHERE seq > ? LIMIT 1", (row[0],))
        if newer.fetchone() is None:
            return []

    def claim(conn: sqlite3.Connection) -> list[tuple[int, bytes]]:
        conn.execute(
            "INSERT OR IGNORE INTO consumer_groups (stream, grp, last_seq) VALUES (?, ?, 0)",
            (stream, group),
        )
        (last,) = conn.execute(
            "SELECT last_seq FROM consumer_groups WHERE stream = ? AND grp = ?", (stream, group)
        ).fetchone()
        rows: list[tuple[int, bytes]] = conn.execute(
            f"SELECT seq, payload FROM {table} WHERE seq > ? ORDER BY seq LIMIT ?", (last, count)
        ).fetchall()
        if rows:
            now = time.time()
            conn.executemany(
                "INSERT OR REPLACE INTO pending (stream, grp, seq, consumer, delivered_at)"
                " VALUES (?, ?, ?, ?, ?)",
                [(stream, group, seq, consumer, now) for seq, _ in rows],
            )
            conn.execute(
                "UPDATE consumer_groups SET last_seq = ? WHERE stream = ? AND grp = ?",
                (rows[-1][0], stream, group),
            )
        return rows

    return _write(conn, claim)


def _read_pending(
    conn: sqlite3.Connection, table: str, stream: str, group: str, consumer: str, count: int
) -> list[tuple[int, bytes]]:
    """Entries delivered to `consumer` and not acked; entries deleted since are dropped."""

    def redeliver(conn: sqlite3.Connection) -> list[tuple[int, bytes]]:
        conn.execute(
            "INSERT OR IGNORE INTO consumer_groups (stream, grp, last_seq) VALUES (?, ?, 0)",
            (stream, group),
        )
        rows: list[tuple[int, bytes | None]] = conn.execute(
            f"SELECT p.seq, t.payload FROM pending p LEFT JOIN {table} t ON t.seq = p.seq"
            " WHERE p.stream = ? AND p.grp = ? AND p.consumer = ? ORDER BY p.seq LIMIT ?",
            (stream, group, consumer, count),
        ).fetchall()
        gone = [(stream, group, seq) for seq, payload in rows if payload is None]
        if gone:
            conn.executemany("DELETE FROM pending WHERE stream = ? AND grp = ? AND seq = ?", gone)
        now = time.time()
        conn.executemany(
            "UPDATE pending SET delivered_at = ? WHERE stream = ? AND grp = ? AND seq = ?",
            [(now, stream, group, seq) for seq, payload in rows if payload is not None],
        )
        return [(seq, payload) for seq, payload in rows if payload is not None]

    return _write(conn, redeliver)

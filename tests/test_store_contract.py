"""The store contract (gateway/store/base.py), run against both real backends: SQLite on
a temporary file and Redis on a private `redis-server` flushed before every test."""

from __future__ import annotations

import asyncio
import contextlib
import sys
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from pathlib import Path

import orjson
import pytest
import redis

from benchmarks.redis_server import RedisServer, available
from gateway.events import (
    Feedback,
    InteractionEvent,
    RequestContext,
    RoutingDecision,
    TemplateRef,
)
from gateway.store import AuditEntry, Change, Store, StoreUnavailable, StreamEntry, open_store
from gateway.store.redis_store import RedisStore
from gateway.store.sqlite_store import SQLiteStore

ROOT = Path(__file__).resolve().parents[1]
Opener = Callable[[], Awaitable[Store]]


def event(
    rid: str, tenant: str = "t1", user: str | None = "u1", ts: float = 1000.0
) -> InteractionEvent:
    return InteractionEvent(
        request_id=rid, tenant=tenant, user=user, ts=ts, endpoint="chat", model="auto", status=200
    )


def feedback(
    fid: str, rid: str, tenant: str = "t1", user: str | None = None, ts: float = 1000.0
) -> Feedback:
    return Feedback(
        feedback_id=fid, request_id=rid, tenant=tenant, kind="thumbs", value=1.0, user=user, ts=ts
    )


def rids(entries: list[StreamEntry]) -> list[str]:
    return [orjson.loads(entry.payload)["request_id"] for entry in entries]


@pytest.fixture(scope="session")
def redis_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedisServer]:
    if not available():
        pytest.skip("redis-server is not installed")
    with RedisServer(tmp_path_factory.mktemp("redis")) as server:
        yield server


@pytest.fixture(params=["sqlite", "redis"])
def store_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'flywheel.db'}"
    server: RedisServer = request.getfixturevalue("redis_server")
    with redis.Redis.from_url(server.url) as client:
        client.flushdb()
    return server.url


@pytest.fixture
async def opened(store_url: str) -> AsyncIterator[Opener]:
    """Opens more store objects on the same backend: another process, or a restart."""
    stores: list[Store] = []

    async def open_one() -> Store:
        store = open_store(store_url)
        await store.start()
        stores.append(store)
        return store

    yield open_one
    for store in stores:
        with contextlib.suppress(StoreUnavailable):
            await store.close()


@pytest.fixture
async def store(opened: Opener) -> Store:
    return await opened()


# --- events and feedback -------------------------------------------------------------


async def test_put_events_is_idempotent_by_request_id(store: Store) -> None:
    assert await store.put_events([event("r1"), event("r2")]) == 2
    assert await store.put_events([event("r1"), event("r3")]) == 1
    assert await store.put_events([event("r4"), event("r4")]) == 1
    assert await store.put_events([]) == 0
    assert await store.stream_length("events") == 4
    entries = await store.read("events", "g", "c", 10)
    assert rids(entries) == ["r1", "r2", "r3", "r4"]


async def test_get_event_round_trips_every_field(store: Store) -> None:
    full = InteractionEvent(
        request_id="req-full", tenant="acme", key_id="k1", user="ann", ts=1712345678.25,
        endpoint="chat", model="auto",
        context=RequestContext(intent="code", complexity=0.7, complexity_tier="hard",
                               input_chars=42, messages=3, has_tools=True, has_images=True),
        template=TemplateRef(id="support", version="3"),
        routing=RoutingDecision(strategy="bandit", arm="local/x", propensity=0.25,
                                policy_version="p7"),
        route="local/x", provider="local", upstream_model="smollm2", adapter="support-v3",
        attempts=2, fallbacks=1, errors=["timeout"], stream=True, stream_end="stop",
        status=200, error=None, latency_ms=12.5, ttft_ms=3.25, upstream_ms=10.0,
        input_tokens=11, output_tokens=22, cost_usd=0.0015,
        request={"messages": [{"role": "user", "content": "héllo ✓"}]},
        response={"choices": [{"message": {"content": "hi"}}]},
    )  # fmt: skip
    await store.put_events([full])
    assert await store.get_event("req-full") == full
    assert await store.get_event("missing") is None


async def test_feedback_joins_its_event_whether_before_or_after(store: Store) -> None:
    early, late = feedback("f1", "r1", ts=1.0), feedback("f2", "r1", ts=2.0)
    await store.put_feedback(early)  # before the event exists
    assert await store.feedback_for("r1") == [early]
    await store.put_events([event("r1")])
    await store.put_feedback(late)
    await store.put_feedback(late)  # a retried post: ignored
    assert await store.feedback_for("r1") == [early, late]
    assert await store.feedback_for("r2") == []
    assert await store.stream_length("feedback") == 2


# --- consumption -----------------------------------------------------------------------


async def test_unacked_entries_are_redelivered_after_a_restart(opened: Opener) -> None:
    first = await opened()
    await first.put_events([event(f"r{i}") for i in range(5)])
    got = await first.read("events", "learner", "c1", 3)
    assert rids(got) == ["r0", "r1", "r2"]
    await first.ack("events", "learner", [got[0].entry_id])
    await first.close()

    again = await opened()  # the same consumer, after a restart
    pending = await again.read("events", "learner", "c1", 10, pending=True)
    assert rids(pending) == ["r1", "r2"]
    assert [e.entry_id for e in pending] == [e.entry_id for e in got[1:]]
    fresh = await again.read("events", "learner", "c1", 10)
    assert rids(fresh) == ["r3", "r4"]
    await again.ack("events", "learner", [e.entry_id for e in pending + fresh])
    assert await again.read("events", "learner", "c1", 10, pending=True) == []
    assert await again.read("events", "learner", "c1", 10) == []


async def test_every_group_sees_every_entry(store: Store) -> None:
    await store.put_feedback(feedback("f1", "r1"))
    await store.put_feedback(feedback("f2", "r2"))
    for group in ("rewards", "audit"):
        entries = await store.read("feedback", group, "c", 10)
        assert [orjson.loads(e.payload)["feedback_id"] for e in entries] == ["f1", "f2"]


async def test_consumers_of_one_group_split_the_entries(store: Store) -> None:
    await store.put_events([event(f"r{i}") for i in range(6)])
    one = await store.read("events", "g", "c1", 4)
    two = await store.read("events", "g", "c2", 10)
    assert len(one) == 4 and len(two) == 2
    assert sorted(rids(one) + rids(two)) == [f"r{i}" for i in range(6)]
    assert rids(await store.read("events", "g", "c2", 10, pending=True)) == rids(two)


async def test_a_blocking_read_returns_when_an_entry_arrives(opened: Opener) -> None:
    reader, writer = await opened(), await opened()
    assert await reader.read("events", "g", "c", 10) == []  # creates the group
    started = time.monotonic()
    assert await reader.read("events", "g", "c", 10, block_ms=300) == []
    assert time.monotonic() - started >= 0.25

    task = asyncio.create_task(reader.read("events", "g", "c", 10, block_ms=5000))
    await asyncio.sleep(0.2)
    started = time.monotonic()
    await writer.put_events([event("late")])
    got = await asyncio.wait_for(task, 2.0)
    assert rids(got) == ["late"] and time.monotonic() - started < 1.0


# --- hashes and change notices ---------------------------------------------------------


async def test_hashes_return_previous_values(store: Store) -> None:
    assert await store.hset("flags", "bandit", "on") is None
    assert await store.hset("flags", "bandit", "off") == "on"
    await store.hset("flags", "sft", "on")
    await store.hset("other", "bandit", "x")
    assert await store.hget("flags", "bandit") == "off"
    assert await store.hgetall("flags") == {"bandit": "off", "sft": "on"}
    assert await store.hdel("flags", "bandit") == "off"
    assert await store.hdel("flags", "bandit") is None
    assert await store.hget("flags", "bandit") is None
    assert await store.hgetall("empty") == {}


async def test_changes_reach_another_process_within_a_second(opened: Opener) -> None:
    listener, writer = await opened(), await opened()
    seen: asyncio.Queue[tuple[Change, float]] = asyncio.Queue()

    async def follow() -> None:
        async for change in listener.changes():
            await seen.put((change, time.monotonic()))

    task = asyncio.create_task(follow())
    await asyncio.sleep(0.3)  # subscribed / start position taken
    for write in (writer.hset("kill", "global", "on"), writer.hdel("kill", "global")):
        started = time.monotonic()
        await write
        change, at = await asyncio.wait_for(seen.get(), 2.0)
        assert change == Change("kill", "global") and at - started < 1.0
    await listener.close()
    await asyncio.wait_for(task, 2.0)  # the notices end when the store closes


# --- audit and data governance ---------------------------------------------------------


async def test_audit_reads_newest_first(store: Store) -> None:
    entries = [AuditEntry(float(i), "ops", "flag.set", f"flags/{i}", None, "on") for i in range(3)]
    entries.append(AuditEntry(9.0, "ops", "flag.del", "flags/0", "on", None))
    for entry in entries:
        await store.audit(entry)
    assert await store.read_audit() == entries[::-1]
    assert await store.read_audit(limit=2) == entries[:1:-1]


async def test_trim_events_is_per_tenant_and_takes_feedback(store: Store) -> None:
    await store.put_events(
        [event("old", ts=100), event("older", ts=50), event("new", ts=300),
         event("other", tenant="t2", ts=100)]
    )  # fmt: skip
    await store.put_feedback(feedback("f-old", "old"))
    await store.put_feedback(feedback("f-new", "new"))
    assert await store.trim_events("t1", 200) == 2
    assert await store.get_event("old") is None and await store.get_event("older") is None
    assert await store.get_event("new") is not None and await store.get_event("other") is not None
    assert await store.feedback_for("old") == [] and len(await store.feedback_for("new")) == 1
    assert await store.stream_length("events") == 2
    assert await store.stream_length("feedback") == 1
    assert await store.trim_events("t1", 200) == 0


async def test_delete_user_removes_only_that_user(store: Store) -> None:
    await store.put_events(
        [event("a1"), event("a2"), event("b1", user="u2"), event("c1", tenant="t2"),
         event("anon", user=None)]
    )  # fmt: skip
    delivered = await store.read("events", "g", "c", 10)  # unacked when deleted
    await store.put_feedback(feedback("on-a1", "a1"))  # on the user's event
    await store.put_feedback(feedback("by-u1", "b1", user="u1"))  # the user's own signal
    await store.put_feedback(feedback("on-b1", "b1", user="u2"))
    await store.put_feedback(feedback("t2-u1", "c1", tenant="t2", user="u1"))
    assert await store.delete_user("t1", "u1") == 4
    for rid in ("a1", "a2"):
        assert await store.get_event(rid) is None
    for rid in ("b1", "c1", "anon"):
        assert await store.get_event(rid) is not None
    assert await store.feedback_for("a1") == []
    assert [f.feedback_id for f in await store.feedback_for("b1")] == ["on-b1"]
    assert [f.feedback_id for f in await store.feedback_for("c1")] == ["t2-u1"]
    assert await store.stream_length("events") == 3
    redelivered = await store.read("events", "g", "c", 10, pending=True)
    assert rids(redelivered) == ["b1", "c1", "anon"] and len(delivered) == 5
    assert await store.delete_user("t1", "u1") == 0


async def test_expire_orphan_feedback(store: Store) -> None:
    await store.put_feedback(feedback("orphan-old", "never", ts=100))
    await store.put_feedback(feedback("orphan-new", "not-yet", ts=900))
    await store.put_feedback(feedback("joined", "r1", ts=100))
    await store.put_events([event("r1")])  # arrives late: its feedback is no orphan
    assert await store.expire_orphan_feedback(500) == 1
    assert await store.feedback_for("never") == []
    assert len(await store.feedback_for("not-yet")) == 1
    assert len(await store.feedback_for("r1")) == 1
    assert await store.expire_orphan_feedback(500) == 0


# --- failures and sharing --------------------------------------------------------------


async def test_redis_outage_is_store_unavailable_and_recovers(tmp_path: Path) -> None:
    if not available():
        pytest.skip("redis-server is not installed")
    with RedisServer(tmp_path / "redis") as server:
        store = RedisStore(server.url)
        await store.start()
        assert await store.put_events([event("before")]) == 1
        assert await store.read("events", "g", "c", 10) != []
        server.stop()
        started = time.monotonic()
        with pytest.raises(StoreUnavailable):
            await store.put_events([event("during")])
        with pytest.raises(StoreUnavailable):
            await store.hget("flags", "x")
        with pytest.raises(StoreUnavailable):
            await store.ping()
        assert time.monotonic() - started < 1.5
        server.start()  # same port, empty (no persistence)
        assert await store.put_events([event("after")]) == 1
        assert rids(await store.read("events", "g", "c", 10)) == ["after"]  # group re-made
        await store.close()


async def test_unreachable_sqlite_file_is_store_unavailable(tmp_path: Path) -> None:
    blocker = tmp_path / "not-a-dir"
    blocker.write_text("")
    store = SQLiteStore(f"sqlite:///{blocker / 'flywheel.db'}")
    with pytest.raises(StoreUnavailable):
        await store.start()
    with pytest.raises(StoreUnavailable):
        await store.put_events([event("r1")])
    await store.close()
    with pytest.raises(StoreUnavailable):
        await store.ping()


WRITER = """
import asyncio, sys
from gateway.events import InteractionEvent
from gateway.store.sqlite_store import SQLiteStore

async def main() -> None:
    store = SQLiteStore(sys.argv[1])
    for b in range(20):
        await store.put_events([InteractionEvent(request_id=f"child-{b}-{i}", tenant="t",
            ts=1.0, endpoint="chat", model="m", status=200) for i in range(50)])
    await store.close()

asyncio.run(main())
"""


async def test_two_processes_write_one_sqlite_file(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'shared.db'}"
    store = SQLiteStore(url)
    await store.start()
    child = await asyncio.create_subprocess_exec(sys.executable, "-c", WRITER, url, cwd=ROOT)
    written = 0
    for b in range(20):
        written += await store.put_events([event(f"parent-{b}-{i}", ts=1.0) for i in range(50)])
    assert await asyncio.wait_for(child.wait(), 60) == 0
    assert written == 1000
    assert await store.stream_length("events") == 2000
    entries = await store.read("events", "g", "c", 5000)
    assert len({orjson.loads(e.payload)["request_id"] for e in entries}) == 2000
    await store.close()


def test_open_store_picks_the_backend_by_scheme(tmp_path: Path) -> None:
    assert isinstance(open_store(f"sqlite:///{tmp_path / 'x.db'}"), SQLiteStore)
    assert isinstance(open_store("redis://127.0.0.1:1/0"), RedisStore)
    assert isinstance(open_store("rediss://127.0.0.1:1/0"), RedisStore)
    with pytest.raises(ValueError, match=r"postgres://db.*sqlite:///.*redis://"):
        open_store("postgres://db")

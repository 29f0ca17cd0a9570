"""The adapter registry's transitions (gateway/adapters/registry.py) on both real store
backends: SQLite on a temporary file and a private redis-server."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest
import redis

from benchmarks.redis_server import RedisServer, available
from gateway import adapters
from gateway.adapters import (
    AdapterExists,
    AdapterNotFound,
    AdapterRecord,
    RegistryError,
    TransitionError,
)
from gateway.store import Store, open_store

BASE = "smollm2-135m"


@pytest.fixture(scope="module")
def redis_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    if not available():
        pytest.skip("redis-server is not installed")
    with RedisServer(tmp_path_factory.mktemp("redis-adapters")) as server:
        yield server.url


@pytest.fixture(params=["sqlite", "redis"])
async def store(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Store]:
    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path / 'flywheel.db'}"
    else:
        url = request.getfixturevalue("redis_url")
        with redis.Redis.from_url(url) as client:
            client.flushdb()
    opened = open_store(url)
    await opened.start()
    yield opened
    await opened.close()


async def register(store: Store, name: str = "support", **extra: Any) -> AdapterRecord:
    return await adapters.register(
        store, name=name, base_model=BASE, location=f"/adapters/{name}", actor="ops", **extra
    )


async def statuses(store: Store, name: str = "support") -> dict[int, str]:
    return {r.version: r.status for r in await adapters.list_adapters(store, name)}


async def test_register_numbers_versions_and_finds_them(store: Store) -> None:
    first = await register(store, metrics={"reward": 0.7}, created_by="job-1")
    second = await register(store, tenants=["acme"])
    assert (first.id, second.id) == ("support-v1", "support-v2")
    assert first.status == "candidate" and first.tenants == ["*"]
    assert first.created_by == "job-1" and second.created_by == "ops"
    found = await adapters.find(store, "support-v1")
    assert found is not None and found.location == "/adapters/support"
    assert found.metrics == {"reward": 0.7}
    assert await adapters.find(store, "support-v9") is None
    assert await adapters.find(store, "support") is None
    explicit = await register(store, version=7)
    assert explicit.id == "support-v7"
    assert (await register(store)).version == 8
    with pytest.raises(AdapterExists):
        await register(store, version=7)
    await register(store, name="other")
    assert [r.id for r in await adapters.list_adapters(store)] == [
        "other-v1",
        "support-v1",
        "support-v2",
        "support-v7",
        "support-v8",
    ]


@pytest.mark.parametrize("name", ["Support", "-x", "support-v2", "a b", ""])
async def test_register_refuses_bad_names(store: Store, name: str) -> None:
    with pytest.raises(RegistryError):
        await register(store, name=name)
    assert await adapters.list_adapters(store) == []


async def test_promote_activates_and_retires_the_previous(store: Store) -> None:
    await register(store)
    await register(store)
    v1 = await adapters.promote(store, "support", 1, actor="ops")
    assert v1.status == "active" and v1.activated_at is not None
    assert await statuses(store) == {1: "active", 2: "candidate"}
    await adapters.promote(store, "support", 2, actor="ops")
    assert await statuses(store) == {1: "retired", 2: "active"}
    with pytest.raises(TransitionError):
        await adapters.promote(store, "support", 2, actor="ops")
    with pytest.raises(AdapterNotFound):
        await adapters.promote(store, "support", 5, actor="ops")
    with pytest.raises(AdapterNotFound):
        await adapters.promote(store, "nothing", actor="ops")


async def test_canary_then_promote_clears_the_canary(store: Store) -> None:
    await register(store)
    await register(store)
    await register(store)
    await adapters.promote(store, "support", 1, actor="ops")
    canary = await adapters.promote(store, "support", 2, canary_share=0.25, actor="ops")
    assert (canary.status, canary.canary_share) == ("canary", 0.25)
    # a new canary sends the previous one back to candidate: one canary per name
    await adapters.promote(store, "support", 3, canary_share=0.5, actor="ops")
    assert await statuses(store) == {1: "active", 2: "candidate", 3: "canary"}
    with pytest.raises(TransitionError):
        await adapters.promote(store, "support", 1, canary_share=0.1, actor="ops")
    with pytest.raises(RegistryError):
        await adapters.promote(store, "support", 2, canary_share=1.5, actor="ops")
    promoted = await adapters.promote(store, "support", actor="ops")  # the canary by default
    assert (promoted.version, promoted.status, promoted.canary_share) == (3, "active", 0.0)
    assert await statuses(store) == {1: "retired", 2: "candidate", 3: "active"}
    newest = await adapters.promote(store, "support", actor="ops")  # else the newest candidate
    assert newest.version == 2
    with pytest.raises(TransitionError):
        await adapters.promote(store, "support", actor="ops")  # no candidate or canary left


async def test_retire(store: Store) -> None:
    await register(store)
    await adapters.promote(store, "support", 1, actor="ops")
    retired = await adapters.retire(store, "support", 1, actor="ops")
    assert retired.status == "retired"
    with pytest.raises(TransitionError):
        await adapters.retire(store, "support", 1, actor="ops")
    with pytest.raises(AdapterNotFound):
        await adapters.retire(store, "support", 2, actor="ops")


async def test_rollback_goes_to_the_most_recently_activated_other_version(store: Store) -> None:
    for _ in range(3):
        await register(store)
    with pytest.raises(TransitionError):
        await adapters.rollback(store, "support", actor="ops")  # nothing was ever active
    with pytest.raises(AdapterNotFound):
        await adapters.rollback(store, "nothing", actor="ops")
    await adapters.promote(store, "support", 1, actor="ops")
    with pytest.raises(TransitionError):
        await adapters.rollback(store, "support", actor="ops")  # no earlier active version
    await adapters.promote(store, "support", 2, actor="ops")
    await adapters.promote(store, "support", 3, actor="ops")
    back = await adapters.rollback(store, "support", actor="ops")
    assert back.version == 2
    assert await statuses(store) == {1: "retired", 2: "active", 3: "retired"}
    again = await adapters.rollback(store, "support", actor="ops")  # undoes the rollback
    assert again.version == 3
    await adapters.retire(store, "support", 3, actor="ops")
    # none active: the one retired last counts as current, the one before it comes back
    restored = await adapters.rollback(store, "support", actor="ops")
    assert restored.version == 2


async def test_every_change_is_audited_with_its_actor(store: Store) -> None:
    await register(store)
    await register(store)
    await adapters.promote(store, "support", 1, actor="alice")
    await adapters.promote(store, "support", 2, canary_share=0.1, actor="bob")
    await adapters.promote(store, "support", 2, actor="carol")
    await adapters.rollback(store, "support", actor="dave")
    await adapters.retire(store, "support", 1, actor="erin")
    entries = [(e.actor, e.action, e.target) for e in reversed(await store.read_audit(20))]
    assert entries == [
        ("ops", "adapter.register", "support-v1"),
        ("ops", "adapter.register", "support-v2"),
        ("alice", "adapter.promote", "support-v1"),
        ("bob", "adapter.canary", "support-v2"),
        ("carol", "adapter.promote", "support-v2"),
        ("carol", "adapter.promote", "support-v1"),
        ("dave", "adapter.rollback", "support-v1"),
        ("dave", "adapter.rollback", "support-v2"),
        ("erin", "adapter.retire", "support-v1"),
    ]
    last = (await store.read_audit(1))[0]
    assert last.old is not None and '"active"' in last.old
    assert last.new is not None and '"retired"' in last.new


async def test_malformed_records_read_as_absent(store: Store) -> None:
    await register(store)
    await store.hset(adapters.NAMESPACE, "broken-v1", "{not json")
    assert [r.id for r in await adapters.list_adapters(store)] == ["support-v1"]
    assert await adapters.find(store, "broken-v1") is None


async def test_trained_adapters_wait_for_an_operators_approval(store: Store) -> None:
    report = {"passed": True, "reward_delta": 0.12}
    await register(store, needs_approval=True, gate_report=report)
    with pytest.raises(TransitionError, match="approve support-v1"):
        await adapters.promote(store, "support", 1, canary_share=0.05, actor="learner")
    approved = await adapters.approve(store, "support", 1, actor="alice")
    assert approved.approved_by == "alice" and approved.gate_report == report
    canary = await adapters.promote(store, "support", 1, canary_share=0.05, actor="learner")
    assert canary.status == "canary"
    with pytest.raises(TransitionError, match="approved by alice"):
        await adapters.approve(store, "support", 1, actor="bob")

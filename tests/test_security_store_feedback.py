"""Issue 13, findings 4, 5 and 10 (feedback and events), against real components: a real
gateway process, a real redis-server (one with a password), a real SQLite store file,
the mock upstream recording what it receives, and the learner's replay buffer.

- Store credentials never reach a client or a log line, even while the store is down.
- Feedback joins only its own tenant's request, even in the instant before the event is
  stored; the store and the learner's replay buffer both drop another tenant's.
- Upstreams never see the request id tenants give /v1/feedback.
- Feedback during a store outage is buffered (202) and lands when the store returns;
  with the buffer full it is a 503 with Retry-After.
- Feedback is rate limited per tenant (429 with Retry-After, OpenAI's error format).
- With durable_events, a SIGKILLed gateway has lost no event of an answered request.
"""

from __future__ import annotations

import asyncio
import json
import secrets
import signal
import sqlite3
import subprocess
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
import redis

from benchmarks.redis_server import REDIS_SERVER, available
from gateway.events import Feedback, InteractionEvent, RoutingDecision
from gateway.store import Store, open_store
from learner.replay import ReplayBuffer
from tests.conftest import make_client
from tests.support.processes import MockControl, Server, free_port, start_server

USER = [{"role": "user", "content": "hello"}]
KEYS = {
    "S_MAIN": "sk-sec-main",
    "S_OTHER": "sk-sec-other",
    "S_SPAM": "sk-sec-spam",
    "S_BULK": "sk-sec-bulk",
    "S_DURABLE": "sk-sec-durable",
    "S_ADMIN": "sk-sec-admin",
}
START_S = 120.0  # a gateway starts in ~17 s on a loaded 2-core machine


def auth(key: str) -> dict[str, str]:
    return {"authorization": f"Bearer {key}"}


def gateway_config(work: Path, mock_url: str, store: str, extra: str = "") -> Path:
    config = work / f"flywheel-{free_port()}.yaml"
    config.write_text(
        f'store: "{store}"\n'
        f"{extra}"
        "providers:\n"
        f'  up: {{kind: openai, base_url: "{mock_url}/v1"}}\n'
        "models:\n"
        "  small: {provider: up, model: mock-small}\n"
        "tenants:\n"
        "  main: {api_keys_env: S_MAIN}\n"
        "  other: {api_keys_env: S_OTHER}\n"
        "  spam: {api_keys_env: S_SPAM}\n"
        "  bulk: {api_keys_env: S_BULK}\n"
        "  durable: {api_keys_env: S_DURABLE, durable_events: true}\n"
        "admin: {api_key_env: S_ADMIN}\n"
    )
    return config


def run_gateway(config: Path) -> Server:
    port = free_port()
    return start_server(
        ["-m", "gateway", "serve", "--config", str(config), "--port", str(port)],
        port,
        config.parent / f"gateway-{port}.log",
        "/readyz",
        env=KEYS,
        timeout_s=START_S,
    )


def chat(gateway: Server, key: str) -> str:
    """One answered request; its tenant-facing request id."""
    raw = make_client(gateway, key).chat.completions.with_raw_response.create(
        model="small", messages=USER
    )
    raw.parse()
    return str(raw.headers["x-flywheel-request-id"])


def post_feedback(gateway: Server, key: str, request_id: str, **fields: object) -> httpx.Response:
    body = {"request_id": request_id, "kind": "thumbs", "value": "up", **fields}
    return httpx.post(f"{gateway.url}/v1/feedback", json=body, headers=auth(key), timeout=10)


def assert_openai_error(response: httpx.Response, status: int, code: str) -> None:
    assert response.status_code == status, response.text
    error = response.json()["error"]
    assert set(error) == {"message", "type", "param", "code"}
    assert error["code"] == code


def wait_until(predicate, timeout_s: float = 15.0) -> None:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.05)
    raise AssertionError("condition not met in time")


# --- a gateway on a SQLite store whose events wait 1.5 s in the queue ------------------


@pytest.fixture(scope="module")
def sqlite_gateway(
    mock_server: Server, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[Server, str]]:
    work = tmp_path_factory.mktemp("secstore")
    store = f"sqlite:///{work / 'flywheel.db'}"
    extra = (
        "events: {flush_interval_ms: 1500}\n"
        "feedback: {rate_per_minute: 5, bytes_per_minute: 40000}\n"
    )
    server = run_gateway(gateway_config(work, mock_server.url, store, extra))
    yield server, store
    server.stop()


def stored(store_url: str, request_id: str) -> tuple[InteractionEvent | None, list[Feedback]]:
    async def read() -> tuple[InteractionEvent | None, list[Feedback]]:
        store = open_store(store_url)
        try:
            return await store.get_event(request_id), await store.feedback_for(request_id)
        finally:
            await store.close()

    return asyncio.run(read())


def test_feedback_from_another_tenant_before_the_flush_is_refused_and_never_joined(
    sqlite_gateway: tuple[Server, str],
) -> None:
    gateway, store_url = sqlite_gateway
    request_id = chat(gateway, KEYS["S_MAIN"])
    # The event waits in the gateway's queue (flushed every 1.5 s): not in the store yet.
    assert stored(store_url, request_id)[0] is None
    foreign = post_feedback(gateway, KEYS["S_OTHER"], request_id, value="down")
    assert_openai_error(foreign, 404, "request_not_found")
    own = post_feedback(gateway, KEYS["S_MAIN"], request_id)
    assert own.status_code == 201, own.text
    assert own.json()["status"] == "pending_event"
    wait_until(lambda: stored(store_url, request_id)[0] is not None)
    event, feedback = stored(store_url, request_id)
    assert event is not None and event.tenant == "main"
    assert [(f.tenant, f.value) for f in feedback] == [("main", 1.0)]
    # Once stored, another tenant still gets a 404 (and sees nothing of it).
    again = post_feedback(gateway, KEYS["S_OTHER"], request_id)
    assert_openai_error(again, 404, "request_not_found")
    peek = httpx.get(f"{gateway.url}/v1/requests/{request_id}", headers=auth(KEYS["S_OTHER"]))
    assert_openai_error(peek, 404, "request_not_found")


def test_feedback_rate_limit_is_a_429_with_retry_after(
    sqlite_gateway: tuple[Server, str],
) -> None:
    gateway, _ = sqlite_gateway
    for i in range(5):
        accepted = post_feedback(gateway, KEYS["S_SPAM"], f"req_unknown{i}")
        assert accepted.status_code == 201, accepted.text
    refused = post_feedback(gateway, KEYS["S_SPAM"], "req_unknown5")
    assert_openai_error(refused, 429, "feedback_rate_limit_exceeded")
    assert refused.json()["error"]["type"] == "rate_limit_error"
    assert 1 <= int(refused.headers["retry-after"]) <= 60
    # The limit is the tenant's own: another tenant posts as before.
    assert post_feedback(gateway, KEYS["S_OTHER"], "req_unknown-other").status_code == 201


def test_feedback_byte_budget_is_a_429(sqlite_gateway: tuple[Server, str]) -> None:
    gateway, _ = sqlite_gateway
    text = "x" * 25_000  # two of these exceed the 40,000 bytes a minute
    first = post_feedback(gateway, KEYS["S_BULK"], "req_b1", kind="correction", text=text)
    assert first.status_code == 201, first.text
    second = post_feedback(gateway, KEYS["S_BULK"], "req_b2", kind="correction", text=text)
    assert_openai_error(second, 429, "feedback_rate_limit_exceeded")
    assert "bytes per minute" in second.json()["error"]["message"]
    assert int(second.headers["retry-after"]) >= 1


# --- the store and the learner join on (request id, tenant) ----------------------------


@pytest.fixture(params=["sqlite", "redis"])
async def store(request: pytest.FixtureRequest, tmp_path: Path) -> Store:
    if request.param == "sqlite":
        opened = open_store(f"sqlite:///{tmp_path / 'join.db'}")
    else:
        if not available():
            pytest.skip("redis-server is not installed")
        from benchmarks.redis_server import RedisServer

        server = RedisServer(tmp_path / "redis")
        server.start()
        request.addfinalizer(server.stop)
        opened = open_store(server.url)
    await opened.start()
    return opened


def bandit_event(request_id: str, tenant: str) -> InteractionEvent:
    return InteractionEvent(
        request_id=request_id, tenant=tenant, ts=time.time() - 3600, endpoint="chat",
        model="auto", status=200,
        routing=RoutingDecision(strategy="bandit", rule="r", arm="a", propensity=0.5),
    )  # fmt: skip


def thumbs(feedback_id: str, request_id: str, tenant: str, value: float) -> Feedback:
    return Feedback(
        feedback_id=feedback_id, request_id=request_id, tenant=tenant, kind="thumbs",
        value=value, ts=time.time(),
    )  # fmt: skip


async def test_store_drops_feedback_that_raced_ahead_of_another_tenants_event(
    store: Store,
) -> None:
    poison = thumbs("fb-poison", "req-1", "mallory", -1.0)
    assert await store.put_feedback(poison) == "pending_event"  # no event yet: kept
    assert await store.put_events([bandit_event("req-1", "alice")]) == 1
    assert store.foreign_feedback_dropped == 1  # the event came: the poison went
    assert await store.feedback_for("req-1") == []
    own = thumbs("fb-own", "req-1", "alice", 1.0)
    assert await store.put_feedback(own) == "joined"
    assert await store.put_feedback(thumbs("fb-late", "req-1", "mallory", -1.0)) == "refused"
    assert await store.feedback_for("req-1") == [own]
    assert await store.feedback_for("req-1", "alice") == [own]
    assert await store.feedback_for("req-1", "mallory") == []
    await store.close()


def test_learner_replay_joins_only_the_events_tenant(tmp_path: Path) -> None:
    replay = ReplayBuffer(tmp_path / "replay.db")
    poison = thumbs("fb-poison", "req-1", "mallory", -1.0)
    own = thumbs("fb-own", "req-1", "alice", 1.0)
    # Feedback first (consumed before the event, as when it raced the flush), then the event.
    replay.add([], [poison])
    replay.add([bandit_event("req-1", "alice")], [own])
    [(event, feedback)] = replay.due(time.time())
    assert event.tenant == "alice"
    assert feedback == [own]
    assert replay.foreign_feedback == 1
    replay.close()
    # After a restart, read back from the file: the same join.
    again = ReplayBuffer(tmp_path / "replay.db")
    [(_, feedback)] = again.due(time.time())
    assert feedback == [own]
    again.close()


# --- upstreams never see the tenant-facing request id ----------------------------------


def test_upstream_never_sees_the_tenant_facing_request_id(
    sqlite_gateway: tuple[Server, str], mock: MockControl
) -> None:
    client = make_client(sqlite_gateway[0], KEYS["S_MAIN"])
    plain = client.chat.completions.with_raw_response.create(model="small", messages=USER)
    plain.parse()
    with client.chat.completions.with_streaming_response.create(
        model="small", messages=USER, stream=True
    ) as streamed:
        for _ in streamed.iter_lines():
            pass
    ids = [plain.headers["x-flywheel-request-id"], streamed.headers["x-flywheel-request-id"]]
    sent = mock.requests("mock-small")
    assert len(sent) == 2
    upstream_ids = {entry["headers"]["x-request-id"] for entry in sent}
    assert len(upstream_ids) == 2  # one opaque id per request
    for entry in sent:
        seen = json.dumps(entry["headers"]) + entry["body"]
        for request_id in ids:
            assert request_id not in seen
            assert request_id.removeprefix("req_") not in seen


# --- a Redis with a password, killed mid-test ------------------------------------------


class PasswordRedis:
    """A private redis-server that requires a password; killable and restartable."""

    def __init__(self, workdir: Path, password: str) -> None:
        self.workdir = workdir
        self.password = password
        self.port = free_port()
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://:{self.password}@127.0.0.1:{self.port}/0"

    def client(self) -> redis.Redis:
        return redis.Redis(port=self.port, password=self.password, socket_timeout=1)

    def start(self) -> None:
        self.workdir.mkdir(parents=True, exist_ok=True)
        args = [REDIS_SERVER, "--port", str(self.port), "--bind", "127.0.0.1", "--save", "",
                "--appendonly", "no", "--dir", str(self.workdir),
                "--requirepass", self.password]  # fmt: skip
        self.process = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT)
        wait_until(self._answers, timeout_s=10)

    def _answers(self) -> bool:
        try:
            return bool(self.client().ping())
        except redis.RedisError:
            return False

    def kill(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGKILL)
            self.process.wait()
        self.process = None


@pytest.fixture
def password_redis(tmp_path: Path) -> Iterator[PasswordRedis]:
    if not available():
        pytest.skip("redis-server is not installed")
    server = PasswordRedis(tmp_path / "redis", "pw-" + secrets.token_hex(12))
    server.start()
    yield server
    server.kill()


def test_a_killed_password_redis_leaks_nothing_and_buffered_feedback_lands(
    mock_server: Server, password_redis: PasswordRedis, tmp_path: Path
) -> None:
    extra = "events: {flush_interval_ms: 50}\nfeedback: {buffer_size: 2}\n"
    gateway = run_gateway(gateway_config(tmp_path, mock_server.url, password_redis.url, extra))
    bodies: list[str] = []
    try:
        main, admin = auth(KEYS["S_MAIN"]), auth(KEYS["S_ADMIN"])
        request_id = chat(gateway, KEYS["S_MAIN"])
        wait_until(lambda: password_redis.client().exists(f"fw:event:{request_id}") == 1)
        joined = post_feedback(gateway, KEYS["S_MAIN"], request_id)
        assert joined.status_code == 201 and joined.json()["status"] == "joined"

        password_redis.kill()  # mid-test, without a goodbye
        assert chat(gateway, KEYS["S_MAIN"])  # requests are still answered
        inspect = httpx.get(f"{gateway.url}/v1/requests/{request_id}", headers=main, timeout=10)
        assert_openai_error(inspect, 503, "store_unavailable")
        assert int(inspect.headers["retry-after"]) >= 1
        kept = [post_feedback(gateway, KEYS["S_MAIN"], request_id, value=v) for v in ("up", 0)]
        for response in kept:
            assert response.status_code == 202, response.text
            assert response.json()["status"] == "buffered" and response.json()["note"]
        full = post_feedback(gateway, KEYS["S_MAIN"], request_id)
        assert_openai_error(full, 503, "store_unavailable")
        assert int(full.headers["retry-after"]) >= 1
        admin_view = httpx.get(f"{gateway.url}/admin/events/{request_id}", headers=admin)
        assert_openai_error(admin_view, 503, "upstream_unavailable")
        bodies += [inspect.text, full.text, admin_view.text, *(r.text for r in kept)]
        time.sleep(1.5)  # flushes fail and are logged meanwhile

        password_redis.start()  # back, empty, on the same port: the buffer lands
        ids = {r.json()["id"] for r in kept}

        def landed() -> set[str]:
            entries = password_redis.client().xrange("fw:stream:feedback")
            return {json.loads(fields[b"d"])["feedback_id"] for _, fields in entries}

        wait_until(lambda: landed() == ids, timeout_s=20)
    finally:
        gateway.stop()
    log_lines = gateway.log().splitlines()
    assert any("redis store unavailable" in line for line in log_lines)  # it was logged
    for text in [*bodies, *log_lines]:
        assert password_redis.password not in text
        assert password_redis.url not in text
        assert f":{password_redis.password}@" not in text


# --- SIGKILL under load with durable_events --------------------------------------------


def test_sigkill_loses_no_event_of_a_durable_tenant(mock_server: Server, tmp_path: Path) -> None:
    db = tmp_path / "durable.db"
    # Flushes every 10 s: whatever is in the store came through the durable write.
    extra = "events: {flush_interval_ms: 10000, batch_size: 10000}\n"
    gateway = run_gateway(gateway_config(tmp_path, mock_server.url, f"sqlite:///{db}", extra))
    answered: list[str] = []
    stop = threading.Event()

    def load() -> None:
        with httpx.Client(base_url=gateway.url, headers=auth(KEYS["S_DURABLE"])) as http:
            while not stop.is_set():
                try:
                    response = http.post(
                        "/v1/chat/completions", json={"model": "small", "messages": USER}
                    )
                except httpx.HTTPError:
                    return  # the gateway is gone
                if response.status_code == 200:
                    answered.append(response.headers["x-flywheel-request-id"])

    workers = [threading.Thread(target=load) for _ in range(4)]
    try:
        for worker in workers:
            worker.start()
        wait_until(lambda: len(answered) >= 40, timeout_s=60)
        gateway.process.send_signal(signal.SIGKILL)
        gateway.process.wait()
    finally:
        stop.set()
        for worker in workers:
            worker.join()
        gateway.stop()
    with sqlite3.connect(db) as conn:
        kept = {row[0] for row in conn.execute("SELECT request_id FROM events")}
    lost = set(answered) - kept
    assert len(answered) >= 40
    assert lost == set()

"""The interaction log, feedback, flags, kill switches and the admin API on a real
store: two gateway processes sharing one SQLite file (WAL), driven by the openai SDK
and `flywheel ctl`."""

from __future__ import annotations

import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import openai
import pytest

from tests.conftest import make_client
from tests.support.processes import MockControl, Server, free_port
from tests.support.processes import start_gateway as run_gateway

ADMIN = "sk-store-admin"
KEYS = {
    "S_MAIN_KEYS": "sk-store-main",
    "S_OTHER_KEYS": "sk-store-other",
    "S_QUIET_KEYS": "sk-store-quiet",
    "S_SHARED_KEYS": "sk-store-shared",
    "S_ADMIN": ADMIN,
}
USER = [{"role": "user", "content": "Tell me about flywheels"}]


def store_yaml(mock_url: str, db: Path, flush_ms: int) -> str:
    return f"""
store: "sqlite:///{db}"
events: {{flush_interval_ms: {flush_ms}, batch_size: 50}}
providers:
  up: {{kind: openai, base_url: "{mock_url}/v1"}}
models:
  small: {{provider: up, model: mock-small, cost_per_mtok: {{input: 1, output: 2}}}}
tenants:
  main: {{api_keys_env: S_MAIN_KEYS}}
  other: {{api_keys_env: S_OTHER_KEYS}}
  quiet: {{api_keys_env: S_QUIET_KEYS, content_logging: false}}
  shared: {{api_keys_env: S_SHARED_KEYS, limits: {{requests_per_minute: 4}}}}
admin: {{api_key_env: S_ADMIN}}
"""


def start_gateway(mock_server: Server, work: Path, db: Path, flush_ms: int = 50) -> Server:
    config = work / f"flywheel-{flush_ms}-{free_port()}.yaml"
    config.write_text(store_yaml(mock_server.url, db, flush_ms))
    return run_gateway(config, KEYS)


@pytest.fixture(scope="module")
def pair(mock_server: Server, tmp_path_factory: pytest.TempPathFactory) -> Iterator[list[Server]]:
    """Two gateway processes on one SQLite store."""
    work = tmp_path_factory.mktemp("store")
    db = work / "flywheel.db"
    servers = [start_gateway(mock_server, work, db), start_gateway(mock_server, work, db)]
    yield servers
    for server in servers:
        server.stop()


def admin(server: Server, method: str, path: str, body: Any = None) -> httpx.Response:
    return httpx.request(
        method,
        f"{server.url}{path}",
        json=body,
        headers={"authorization": f"Bearer {ADMIN}"},
        timeout=10,
    )


def ctl(server: Server, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [
            sys.executable,
            "-m",
            "gateway",
            "ctl",
            "--url",
            server.url,
            "--admin-key",
            ADMIN,
            "--actor",
            "test-operator",
            *args,
        ],
        capture_output=True,
        text=True,
        timeout=30,
    )


def wait_for(predicate: Any, timeout_s: float = 5.0) -> Any:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.02)
    raise AssertionError("condition not met in time")


def event_of(server: Server, request_id: str) -> dict[str, Any] | None:
    response = admin(server, "GET", f"/admin/events/{request_id}")
    if response.status_code != 200:
        return None
    body: dict[str, Any] = response.json()
    return body if body["event"] else None


def test_every_request_becomes_one_event(pair: list[Server], mock: MockControl) -> None:
    client = make_client(pair[0], "sk-store-main")
    ids = []
    for i in range(5):
        raw = client.chat.completions.with_raw_response.create(
            model="small", messages=USER, user=f"user-{i}", stream=i % 2 == 1
        )
        if i % 2:
            list(raw.parse())
        ids.append(raw.headers["x-flywheel-request-id"])
    for i, request_id in enumerate(ids):
        found = wait_for(lambda rid=request_id: event_of(pair[1], rid))  # the other process
        event = found["event"]
        assert event["request_id"] == request_id and event["tenant"] == "main"
        assert event["user"] == f"user-{i}" and event["model"] == "small"
        assert event["route"] == "small" and event["upstream_model"] == "mock-small"
        assert event["status"] == 200 and event["stream"] == (i % 2 == 1)
        assert event["output_tokens"] == 8 and event["cost_usd"] > 0
        assert event["context"]["messages"] == 1 and event["context"]["input_chars"] == 23
        assert event["request"]["messages"] == USER
        assert "tok7" in str(event["response"])
        assert event["schema_version"] == 1 and event["latency_ms"] > 0


def test_content_logging_off_keeps_metadata_only(pair: list[Server]) -> None:
    raw = make_client(pair[0], "sk-store-quiet").chat.completions.with_raw_response.create(
        model="small", messages=USER
    )
    event = wait_for(lambda: event_of(pair[0], raw.headers["x-flywheel-request-id"]))["event"]
    assert event["request"] is None and event["response"] is None
    assert event["output_tokens"] == 8


def _feedback(server: Server, key: str, body: dict[str, Any]) -> httpx.Response:
    return httpx.post(
        f"{server.url}/v1/feedback",
        json=body,
        headers={"authorization": f"Bearer {key}"},
        timeout=10,
    )


def test_feedback_joins_after_its_event(pair: list[Server]) -> None:
    raw = make_client(pair[0], "sk-store-main").chat.completions.with_raw_response.create(
        model="small", messages=USER
    )
    request_id = raw.headers["x-flywheel-request-id"]
    wait_for(lambda: event_of(pair[0], request_id))
    response = _feedback(
        pair[0], "sk-store-main", {"request_id": request_id, "kind": "thumbs", "value": "up"}
    )
    assert response.status_code == 201 and response.json()["status"] == "joined"
    own = httpx.get(
        f"{pair[0].url}/v1/requests/{request_id}", headers={"authorization": "Bearer sk-store-main"}
    ).json()
    assert own["feedback"][0]["value"] == 1.0 and own["event"]["request_id"] == request_id


def test_feedback_before_its_event_is_kept_and_joins(mock_server: Server, tmp_path: Path) -> None:
    slow = start_gateway(mock_server, tmp_path, tmp_path / "slow.db", flush_ms=3000)
    try:
        raw = make_client(slow, "sk-store-main").chat.completions.with_raw_response.create(
            model="small", messages=USER
        )
        request_id = raw.headers["x-flywheel-request-id"]
        response = _feedback(
            slow, "sk-store-main", {"request_id": request_id, "kind": "score", "value": 0.8}
        )
        assert response.json()["status"] == "pending_event"  # the event is still queued
        joined = wait_for(lambda: event_of(slow, request_id), timeout_s=8)
        assert [f["value"] for f in joined["feedback"]] == [0.8]
    finally:
        slow.stop()


def test_tenants_cannot_rate_or_read_each_others_requests(pair: list[Server]) -> None:
    raw = make_client(pair[0], "sk-store-main").chat.completions.with_raw_response.create(
        model="small", messages=USER
    )
    request_id = raw.headers["x-flywheel-request-id"]
    wait_for(lambda: event_of(pair[0], request_id))
    response = _feedback(
        pair[0], "sk-store-other", {"request_id": request_id, "kind": "thumbs", "value": False}
    )
    assert response.status_code == 404 and response.json()["error"]["code"] == "request_not_found"
    read = httpx.get(
        f"{pair[0].url}/v1/requests/{request_id}",
        headers={"authorization": "Bearer sk-store-other"},
    )
    assert read.status_code == 404


@pytest.mark.parametrize(
    ("body", "param_hint"),
    [
        ({"kind": "thumbs", "value": True}, "request_id"),
        ({"request_id": "r", "kind": "stars", "value": 5}, "kind"),
        ({"request_id": "r", "kind": "score", "value": 7}, "between 0 and 1"),
        ({"request_id": "r", "kind": "correction"}, "corrected text"),
        ({"request_id": "r", "kind": "dwell", "value": -3}, "negative"),
        ({"request_id": "r", "kind": "thumbs", "value": "maybe"}, "value"),
    ],
)
def test_bad_feedback_is_400_with_a_reason(
    pair: list[Server], body: dict[str, Any], param_hint: str
) -> None:
    response = _feedback(pair[0], "sk-store-main", body)
    assert response.status_code == 400
    assert param_hint in response.text


def test_kill_switch_via_ctl_reaches_both_processes_within_a_second(pair: list[Server]) -> None:
    assert ctl(pair[0], "kill", "off", "global").returncode == 0
    wait_for(lambda: all(admin(s, "GET", "/admin/kill").json()["process"] == {} for s in pair))
    started = time.monotonic()
    result = ctl(pair[0], "kill", "on", "tenant", "main")
    assert result.returncode == 0, result.stderr
    for server in pair:
        wait_for(
            lambda s=server: (
                admin(s, "GET", "/admin/kill").json()["process"] == {"tenant:main": "on"}
            ),
            timeout_s=1.0 + (time.monotonic() - started),
        )
    assert time.monotonic() - started < 1.5  # ctl's own start-up included
    assert ctl(pair[1], "kill", "off", "tenant", "main").returncode == 0
    audit = admin(pair[0], "GET", "/admin/audit?limit=5").json()
    assert audit[0]["action"] == "kill.off" and audit[0]["actor"] == "test-operator"
    assert audit[1]["action"] == "kill.on" and audit[1]["new"] == "on"


def test_flags_with_overrides_and_sticky_rollout(pair: list[Server]) -> None:
    assert ctl(pair[0], "flags", "set", "new-router", "true", "--rollout", "50").returncode == 0
    assert ctl(pair[0], "flags", "set", "new-router", "false", "--tenant", "other").returncode == 0

    def evaluate(server: Server, **query: str) -> Any:
        return admin(
            server,
            "GET",
            "/admin/flags/new-router?" + "&".join(f"{k}={v}" for k, v in query.items()),
        ).json()["evaluated"]

    values = [evaluate(pair[1], tenant="main", key=f"user-{i}") for i in range(40)]
    assert True in values and False in values  # about half are in the rollout
    assert values == [evaluate(pair[0], tenant="main", key=f"user-{i}") for i in range(40)]
    assert evaluate(pair[0], tenant="other", key="user-1") is False
    listed = ctl(pair[0], "flags", "list")
    assert '"rollout_percent": 50.0' in listed.stdout
    audit = admin(pair[0], "GET", "/admin/audit?limit=2").json()
    assert audit[0]["action"] == "flag.set" and audit[0]["old"] is not None


def test_keys_created_and_revoked_through_ctl(pair: list[Server]) -> None:
    created = ctl(pair[0], "keys", "create", "main", "ci-bot")
    assert created.returncode == 0, created.stderr
    key = __import__("json").loads(created.stdout)["key"]
    client = make_client(pair[1], key)  # the other process learns it from the store
    wait_for(lambda: _works(client))
    listed = ctl(pair[0], "keys", "list", "main").stdout
    assert "ci-bot" in listed and key not in listed  # only the hash is kept
    assert ctl(pair[0], "keys", "revoke", "main", "ci-bot").returncode == 0
    wait_for(lambda: not _works(client))


def _works(client: openai.OpenAI) -> bool:
    try:
        client.models.list()
        return True
    except openai.AuthenticationError:
        return False


def test_delete_by_user(pair: list[Server]) -> None:
    client = make_client(pair[0], "sk-store-main")
    mine = client.chat.completions.with_raw_response.create(
        model="small", messages=USER, user="forget-me"
    )
    theirs = client.chat.completions.with_raw_response.create(
        model="small", messages=USER, user="keep-me"
    )
    ids = [r.headers["x-flywheel-request-id"] for r in (mine, theirs)]
    for request_id in ids:
        wait_for(lambda rid=request_id: event_of(pair[0], rid))
    result = ctl(pair[0], "data", "delete", "--tenant", "main", "--user", "forget-me")
    assert result.returncode == 0 and '"deleted": 1' in result.stdout
    assert event_of(pair[0], ids[0]) is None and event_of(pair[0], ids[1]) is not None


def test_rate_limits_are_shared_across_replicas(pair: list[Server]) -> None:
    clients = [make_client(server, "sk-store-shared") for server in pair]
    for client in (*clients, *clients):  # two requests through each replica
        client.chat.completions.create(model="small", messages=USER)
    time.sleep(3.0)  # each replica reports its usage about once a second; slack for a busy CI
    for client in clients:
        with pytest.raises(openai.RateLimitError):
            client.chat.completions.create(model="small", messages=USER)

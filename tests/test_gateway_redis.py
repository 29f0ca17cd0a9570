"""The gateway on a real private redis-server: events land in the stream, kill switches
cross processes by pub/sub, and a Redis outage mid-load fails no request."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
import redis

from benchmarks.redis_server import RedisServer, available
from tests.conftest import make_client
from tests.support.processes import Server, free_port
from tests.support.processes import start_gateway as run_gateway

pytestmark = pytest.mark.skipif(not available(), reason="redis-server is not installed")

KEYS = {"R_KEYS": "sk-redis-main", "R_ADMIN": "sk-redis-admin"}
USER = [{"role": "user", "content": "hello"}]


def config_yaml(mock_url: str, store_url: str) -> str:
    return f"""
store: "{store_url}"
events: {{queue_size: 50, batch_size: 20, flush_interval_ms: 50}}
providers:
  up: {{kind: openai, base_url: "{mock_url}/v1"}}
models:
  small: {{provider: up, model: mock-small}}
tenants:
  main: {{api_keys_env: R_KEYS}}
admin: {{api_key_env: R_ADMIN}}
"""


@pytest.fixture
def redis_server(tmp_path: Path) -> Iterator[RedisServer]:
    server = RedisServer(tmp_path / "redis")
    server.start()
    yield server
    server.stop()


def start_gateway(mock_server: Server, store_url: str, work: Path) -> Server:
    config = work / f"flywheel-{free_port()}.yaml"
    config.write_text(config_yaml(mock_server.url, store_url))
    return run_gateway(config, KEYS)


def stream_length(server: RedisServer) -> int:
    client = redis.Redis(port=server.port, socket_timeout=1)
    try:
        return int(client.xlen("fw:stream:events"))
    finally:
        client.close()


def wait_until(predicate, timeout_s: float = 10.0) -> None:  # type: ignore[no-untyped-def]
    import time

    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.05)
    raise AssertionError("condition not met in time")


def dropped(gateway: Server) -> float:
    text = httpx.get(f"{gateway.url}/metrics").text
    match = re.search(r"^flywheel_events_dropped_total (\S+)$", text, re.M)
    return float(match.group(1)) if match else 0.0


def test_redis_outage_mid_load_fails_no_request(
    mock_server: Server, redis_server: RedisServer, tmp_path: Path
) -> None:
    gateway = start_gateway(mock_server, redis_server.url, tmp_path)
    try:
        client = make_client(gateway, "sk-redis-main")
        for _ in range(10):
            client.chat.completions.create(model="small", messages=USER)
        wait_until(lambda: stream_length(redis_server) == 10)

        redis_server.stop()
        for _ in range(120):  # every request still succeeds while the store is down
            completion = client.chat.completions.create(model="small", messages=USER)
            assert completion.choices[0].message.content
        assert dropped(gateway) == 70  # the queue holds 50: the 70 oldest went

        redis_server.start()  # a fresh, empty server on the same port
        wait_until(lambda: stream_length(redis_server) == 50, timeout_s=15)
        assert dropped(gateway) == 70
    finally:
        gateway.stop()


def test_kill_switch_crosses_processes_through_redis(
    mock_server: Server, redis_server: RedisServer, tmp_path: Path
) -> None:
    import subprocess
    import sys
    import time

    gateways = [start_gateway(mock_server, redis_server.url, tmp_path) for _ in range(2)]
    try:

        def process_view(server: Server) -> object:
            return httpx.get(
                f"{server.url}/admin/kill", headers={"authorization": "Bearer sk-redis-admin"}
            ).json()["process"]

        wait_until(lambda: all(process_view(g) == {} for g in gateways))
        subprocess.run(
            [
                sys.executable,
                "-m",
                "gateway",
                "ctl",
                "--url",
                gateways[0].url,
                "--admin-key",
                "sk-redis-admin",
                "kill",
                "on",
                "job",
                "bandit",
            ],
            check=True,
            capture_output=True,
            timeout=30,
        )
        flipped = time.monotonic()
        wait_until(
            lambda: all(process_view(g) == {"job:bandit": "on"} for g in gateways), timeout_s=1.0
        )
        assert time.monotonic() - flipped < 1.0
    finally:
        for gateway in gateways:
            gateway.stop()

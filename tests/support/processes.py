"""Real servers for integration tests: the mock upstream and the gateway, each in its
own process on a free loopback port, stopped when the test session ends."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@dataclass
class Server:
    process: subprocess.Popen[bytes]
    port: int
    log_path: Path

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def log(self) -> str:
        return self.log_path.read_text("utf-8", "replace")

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()


def start_server(
    args: list[str],
    port: int,
    log_path: Path,
    ready_path: str,
    env: Mapping[str, str] | None = None,
    timeout_s: float = 120.0,  # a gateway starts in ~5 s alone, 30+ s on a loaded machine
) -> Server:
    log_file = log_path.open("wb")
    process = subprocess.Popen(
        [sys.executable, *args],
        stdout=log_file,
        stderr=subprocess.STDOUT,
        env={**os.environ, **(env or {})},
    )
    server = Server(process, port, log_path)
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"{args} exited with {process.returncode}:\n{server.log()}")
        try:
            if httpx.get(f"{server.url}{ready_path}", timeout=0.5).status_code == 200:
                return server
        except httpx.HTTPError:
            pass
        time.sleep(0.05)
    server.stop()
    raise RuntimeError(f"{args} not ready after {timeout_s}s:\n{server.log()}")


@dataclass
class MockControl:
    """The mock upstream's control API (benchmarks/mock_upstream)."""

    url: str
    client: httpx.Client = field(default_factory=lambda: httpx.Client(timeout=5))

    def fail(self, model: str, kind: str, count: int = 1) -> None:
        self._ok(
            self.client.post(
                f"{self.url}/_mock/fail", json={"model": model, "kind": kind, "count": count}
            )
        )

    def configure(self, model: str, **behaviour: Any) -> None:
        self._ok(self.client.post(f"{self.url}/_mock/models/{model}", json=behaviour))

    def requests(self, model: str | None = None) -> list[dict[str, Any]]:
        response = self.client.get(f"{self.url}/_mock/requests")
        self._ok(response)
        entries: list[dict[str, Any]] = response.json()
        return [e for e in entries if model is None or e.get("model") == model]

    def stats(self) -> dict[str, dict[str, int]]:
        response = self.client.get(f"{self.url}/_mock/stats")
        self._ok(response)
        stats: dict[str, dict[str, int]] = response.json()
        return stats

    def reset(self) -> None:
        self._ok(self.client.post(f"{self.url}/_mock/reset"))

    @staticmethod
    def _ok(response: httpx.Response) -> None:
        if response.status_code >= 400:
            raise AssertionError(f"mock control failed: {response.status_code} {response.text}")


def start_gateway(config: Path, env: Mapping[str, str], log_dir: Path | None = None) -> Server:
    """`flywheel serve` on `config` and a free port, logging beside the config."""
    port = free_port()
    log_path = (log_dir or config.parent) / f"gateway-{port}.log"
    return start_server(
        ["-m", "gateway", "serve", "--config", str(config), "--port", str(port)],
        port,
        log_path,
        "/readyz",
        env=env,
    )


def start_learner(config: Path, work: Path, env: Mapping[str, str], *flags: str) -> Server:
    """`flywheel learner run` on `config`, its state and log under `work`, metrics on a free
    port (ready once they answer)."""
    port = free_port()
    args = ["-m", "gateway", "learner", "run", "--config", str(config), "--state-dir",
            str(work / "state"), "--metrics-port", str(port), *flags]  # fmt: skip
    return start_server(args, port, work / "learner.log", "/metrics", env=env)


def wait_event(server: Server, admin_key: str, request_id: str, timeout_s: float = 5.0) -> Any:
    """The request's event from the gateway's admin API, once the event log flushed it."""
    deadline = time.monotonic() + timeout_s
    headers = {"authorization": f"Bearer {admin_key}"}
    while time.monotonic() < deadline:
        found = httpx.get(f"{server.url}/admin/events/{request_id}", headers=headers, timeout=10)
        if found.status_code == 200 and found.json().get("event"):
            return found.json()["event"]
        time.sleep(0.05)
    raise AssertionError(f"no event for {request_id} after {timeout_s}s")

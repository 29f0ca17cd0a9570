"""Server processes for benchmarks: start in their own process group, wait until
ready, always stop. Shared by every `flywheel bench` command."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path

from benchmarks.loadgen import pin_to


@dataclass(slots=True)
class Server:
    """A server process started in its own session (process group)."""

    name: str
    popen: subprocess.Popen[bytes]
    url: str
    log_path: Path

    @property
    def pid(self) -> int:
        return self.popen.pid

    def stop(self) -> None:
        if self.popen.poll() is not None:
            return
        for sig, wait_s in ((signal.SIGTERM, 8.0), (signal.SIGKILL, 5.0)):
            try:
                os.killpg(self.popen.pid, sig)
            except ProcessLookupError:
                return
            try:
                self.popen.wait(wait_s)
                return
            except subprocess.TimeoutExpired:
                continue


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def start_server(
    name: str,
    argv: list[str],
    *,
    port: int,
    ready_path: str,
    log_path: Path,
    env: dict[str, str] | None = None,
    cwd: Path | None = None,
    cpus: set[int] | None = None,
    timeout_s: float = 120.0,
) -> Server:
    """Start `argv`, wait until GET `ready_path` answers 200; stop it if it never does."""
    log = log_path.open("wb")
    popen = subprocess.Popen(
        argv,
        stdout=log,
        stderr=subprocess.STDOUT,
        stdin=subprocess.DEVNULL,
        env=env,
        cwd=cwd,
        start_new_session=True,
        preexec_fn=pin_to(cpus) if cpus else None,
    )
    log.close()
    server = Server(name, popen, f"http://127.0.0.1:{port}", log_path)
    deadline = time.monotonic() + timeout_s
    try:
        while time.monotonic() < deadline:
            if popen.poll() is not None:
                raise RuntimeError(f"{name} exited with {popen.returncode}: {_tail(log_path)}")
            if _answers(server.url + ready_path):
                return server
            time.sleep(0.2)
        raise RuntimeError(f"{name} not ready after {timeout_s:.0f}s: {_tail(log_path)}")
    except BaseException:
        server.stop()
        raise


def _answers(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=1) as response:
            return bool(response.status == 200)
    except (urllib.error.URLError, OSError):
        return False


def _tail(path: Path, lines: int = 15) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return "(no log)"


def clean_env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("FLYWHEEL_")}
    env.update(extra)
    return env


def start_mock(work: Path, cpus: set[int] | None) -> Server:
    port = free_port()
    flags = f"--host 127.0.0.1 --port {port} --log-size 0 --output-tokens 20 --latency-ms 0"
    flags += " --ttft-ms 0 --tokens-per-s 0"
    argv = [sys.executable, "-m", "benchmarks.mock_upstream", *flags.split()]
    return start_server(
        "mock upstream",
        argv,
        port=port,
        ready_path="/healthz",
        log_path=work / "mock.log",
        env=clean_env(),
        cpus=cpus,
        timeout_s=30,
    )


def start_gateway(work: Path, name: str, config_yaml: str, env: dict[str, str]) -> Server:
    """A `flywheel serve` process in its own directory; `config_yaml` may use {port}."""
    port = free_port()
    home = work / name
    home.mkdir(exist_ok=True)
    config = home / "flywheel.yaml"
    config.write_text(config_yaml.replace("{port}", str(port)))
    argv = [sys.executable, "-m", "gateway", "serve", "--config", str(config), "--port", str(port)]
    return start_server(
        name,
        argv,
        port=port,
        ready_path="/readyz",
        log_path=home / "log",
        env=clean_env(**env),
        cwd=home,
        timeout_s=60,
    )

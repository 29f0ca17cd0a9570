"""How many events a SIGKILLed gateway loses under load, with and without durable_events,
and what durable_events costs per request.

`python -m benchmarks.event_loss` starts the mock upstream and, per mode, a gateway on
a fresh SQLite store (default event settings: flushed every 100 ms or per 64 events),
drives it with closed-loop clients, SIGKILLs it mid-load and counts the answered
requests (status 200) whose event is not in the store. Then it times sequential requests
with and without durable_events on a live gateway. Prints one JSON object.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import httpx

from benchmarks.processes import free_port

KEYS = {"E_PLAIN": "sk-loss-plain", "E_DURABLE": "sk-loss-durable"}
USER = [{"role": "user", "content": "hello"}]


def _start(args: list[str], port: int, log: Path, ready: str) -> subprocess.Popen[bytes]:
    with log.open("wb") as out:
        process = subprocess.Popen(
            [sys.executable, *args], stdout=out, stderr=subprocess.STDOUT,
            env={**os.environ, **KEYS},
        )  # fmt: skip
    deadline = time.monotonic() + 180
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"{args} exited:\n{log.read_text()}")
        try:
            if httpx.get(f"http://127.0.0.1:{port}{ready}", timeout=0.5).status_code == 200:
                return process
        except httpx.HTTPError:
            pass
        time.sleep(0.1)
    process.kill()
    raise RuntimeError(f"{args} not ready")


def _gateway(work: Path, mock_port: int) -> tuple[subprocess.Popen[bytes], str, Path]:
    db = work / f"events-{free_port()}.db"
    config = work / f"flywheel-{free_port()}.yaml"
    config.write_text(
        f'store: "sqlite:///{db}"\n'
        "providers:\n"
        f'  up: {{kind: openai, base_url: "http://127.0.0.1:{mock_port}/v1"}}\n'
        "models:\n  small: {provider: up, model: mock-small}\n"
        "tenants:\n"
        "  plain: {api_keys_env: E_PLAIN}\n"
        "  durable: {api_keys_env: E_DURABLE, durable_events: true}\n"
    )
    port = free_port()
    args = ["-m", "gateway", "serve", "--config", str(config), "--port", str(port)]
    process = _start(args, port, work / f"gateway-{port}.log", "/readyz")
    return process, f"http://127.0.0.1:{port}", db


def sigkill_loss(
    work: Path, mock_port: int, key: str, clients: int, answers: int
) -> dict[str, int]:
    process, url, db = _gateway(work, mock_port)
    answered: list[str] = []
    stop = threading.Event()

    def load() -> None:
        with httpx.Client(base_url=url, headers={"authorization": f"Bearer {key}"}) as http:
            while not stop.is_set():
                try:
                    response = http.post(
                        "/v1/chat/completions", json={"model": "small", "messages": USER}
                    )
                except httpx.HTTPError:
                    return
                if response.status_code == 200:
                    answered.append(response.headers["x-flywheel-request-id"])

    workers = [threading.Thread(target=load) for _ in range(clients)]
    for worker in workers:
        worker.start()
    while len(answered) < answers:
        time.sleep(0.01)
    process.send_signal(signal.SIGKILL)
    process.wait()
    stop.set()
    for worker in workers:
        worker.join()
    with sqlite3.connect(db) as conn:
        stored = {row[0] for row in conn.execute("SELECT request_id FROM events")}
    return {"answered": len(answered), "lost": len(set(answered) - stored)}


def latency(url: str, key: str, n: int) -> dict[str, float]:
    times = []
    with httpx.Client(base_url=url, headers={"authorization": f"Bearer {key}"}) as http:
        for _ in range(n):
            started = time.perf_counter()
            http.post("/v1/chat/completions", json={"model": "small", "messages": USER})
            times.append((time.perf_counter() - started) * 1000)
    times.sort()
    return {"p50_ms": round(statistics.median(times), 2), "p90_ms": round(times[int(n * 0.9)], 2)}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--clients", type=int, default=8)
    parser.add_argument("--answers", type=int, default=1000, help="answered before the kill")
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--latency-requests", type=int, default=300)
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        mock_port = free_port()
        mock = _start(
            ["-m", "benchmarks.mock_upstream", "--port", str(mock_port), "--output-tokens", "8"],
            mock_port, work / "mock.log", "/healthz",
        )  # fmt: skip
        try:
            report: dict[str, object] = {}
            for mode, key in (("default", KEYS["E_PLAIN"]), ("durable", KEYS["E_DURABLE"])):
                report[f"sigkill_{mode}"] = [
                    sigkill_loss(work, mock_port, key, args.clients, args.answers)
                    for _ in range(args.runs)
                ]
            process, url, _ = _gateway(work, mock_port)
            try:
                latency(url, KEYS["E_PLAIN"], 50)  # warm up
                report["latency_default"] = latency(url, KEYS["E_PLAIN"], args.latency_requests)
                report["latency_durable"] = latency(url, KEYS["E_DURABLE"], args.latency_requests)
            finally:
                process.terminate()
                process.wait()
        finally:
            mock.terminate()
            mock.wait()
    print(json.dumps(report))


if __name__ == "__main__":
    main()

"""`flywheel up`: the whole system on embedded defaults, for a first try.

Starts the local model worker (SmolLM2-135M-Instruct with LoRA adapters from the
registry), the mock upstream (standing in for external vendors), the learner sidecar
(bandit routing from feedback) and the gateway, with development keys when none are set,
and stops them all on Ctrl-C. The worker's admin token (adapter load/unload) is random per
run unless `FLYWHEEL_WORKER_ADMIN_TOKEN` is set; every process started here inherits it.
"""

from __future__ import annotations

import argparse
import importlib.util
import os
import secrets
import subprocess
import sys
import time
from typing import Any

from gateway.cli.serve import add_server_arguments
from gateway.cli.serve import run as run_serve
from gateway.config_loader import ConfigError, load_config

DEV_KEY = "sk-flywheel-dev"
DEV_ADMIN_KEY = "sk-flywheel-admin-dev"
WORKER_TOKEN_ENV = "FLYWHEEL_WORKER_ADMIN_TOKEN"


def add_parser(commands: Any) -> None:
    parser = commands.add_parser("up", help="run everything on embedded defaults")
    add_server_arguments(parser)
    parser.add_argument("--mock-port", type=int, default=9101, help="mock upstream port")
    parser.add_argument("--local-port", type=int, default=9200, help="local model worker port")
    parser.add_argument(
        "--no-local-model", action="store_true", help="do not start the local model worker"
    )
    parser.set_defaults(run=run)


def run(args: argparse.Namespace, rest: list[str]) -> int:
    os.environ.setdefault("FLYWHEEL_DEV_KEYS", DEV_KEY)
    os.environ.setdefault("FLYWHEEL_ADMIN_KEY", DEV_ADMIN_KEY)
    if not os.environ.get(WORKER_TOKEN_ENV):  # the worker, learner and gateway share it
        os.environ[WORKER_TOKEN_ENV] = secrets.token_urlsafe(32)
    if args.config is None:  # the embedded defaults route to the processes started here
        mock_url = f"http://127.0.0.1:{args.mock_port}/v1"
        os.environ.setdefault("FLYWHEEL_PROVIDERS__MOCK__BASE_URL", mock_url)
        local_url = f"http://127.0.0.1:{args.local_port}/v1"
        os.environ.setdefault("FLYWHEEL_PROVIDERS__LOCAL__BASE_URL", local_url)
    worker = None if args.no_local_model else _start_worker(args)
    learner = subprocess.Popen(
        [sys.executable, "-m", "gateway", "learner", "run", "--metrics-port", "9301"]
        + (["--config", str(args.config)] if args.config else [])
    )
    mock = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "benchmarks.mock_upstream",
            "--port",
            str(args.mock_port),
            "--latency-ms",
            "20",
            "--ttft-ms",
            "20",
            "--tokens-per-s",
            "50",
        ],
    )
    time.sleep(0.3)
    port = args.port or 8080
    print(
        f"\nFlywheel is starting on http://127.0.0.1:{port}/v1\n"
        f"  tenant key: {os.environ['FLYWHEEL_DEV_KEYS'].split(',')[0]}\n"
        f"  admin key:  {os.environ['FLYWHEEL_ADMIN_KEY']}\n"
        f"  try: curl -s http://127.0.0.1:{port}/v1/chat/completions "
        f"-H 'Authorization: Bearer {DEV_KEY}' -H 'content-type: application/json' "
        '-d \'{"model": "auto", "messages": [{"role": "user", "content": "hi"}]}\'\n',
        flush=True,
    )
    try:
        return run_serve(args, rest)
    finally:
        for process in (mock, worker, learner):
            if process is not None:
                process.terminate()
                process.wait(timeout=10)


def _start_worker(args: argparse.Namespace) -> subprocess.Popen[bytes] | None:
    """The local model worker on the store the gateway uses (adapters load by name)."""
    if importlib.util.find_spec("torch") is None:
        print(
            "flywheel up: torch is not installed, so no local model worker "
            "(pip install '.[local]'); local/* models will fall back",
            file=sys.stderr,
        )
        return None
    try:
        store = load_config(args.config).store
    except ConfigError:
        store = None  # `serve` reports the problem in a moment
    command = [
        sys.executable,
        "-m",
        "gateway",
        "local-model",
        "serve",
        "--port",
        str(args.local_port),
        "--admin-token-env",
        WORKER_TOKEN_ENV,
    ]
    if store:
        command += ["--store", store]
    return subprocess.Popen(command)

"""`flywheel up`: the whole system on embedded defaults, for a first try.

Starts the mock upstream (until the local model worker lands) and the gateway, with
development keys when none are set, and stops both on Ctrl-C.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time
from typing import Any

from gateway.cli.serve import add_server_arguments
from gateway.cli.serve import run as run_serve

DEV_KEY = "sk-flywheel-dev"
DEV_ADMIN_KEY = "sk-flywheel-admin-dev"


def add_parser(commands: Any) -> None:
    parser = commands.add_parser("up", help="run everything on embedded defaults")
    add_server_arguments(parser)
    parser.add_argument("--mock-port", type=int, default=9101, help="mock upstream port")
    parser.set_defaults(run=run)


def run(args: argparse.Namespace, rest: list[str]) -> int:
    os.environ.setdefault("FLYWHEEL_DEV_KEYS", DEV_KEY)
    os.environ.setdefault("FLYWHEEL_ADMIN_KEY", DEV_ADMIN_KEY)
    if args.config is None:  # the embedded defaults route to the mock started here
        mock_url = f"http://127.0.0.1:{args.mock_port}/v1"
        os.environ.setdefault("FLYWHEEL_PROVIDERS__MOCK__BASE_URL", mock_url)
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
        mock.terminate()
        mock.wait(timeout=5)

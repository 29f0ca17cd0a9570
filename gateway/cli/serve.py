"""`flywheel serve`: the gateway alone, from a config file."""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path
from typing import Any

from gateway.config_loader import ConfigError, load_config


def add_parser(commands: Any) -> None:
    parser = commands.add_parser("serve", help="run the gateway (Starlette under uvicorn)")
    add_server_arguments(parser)
    parser.set_defaults(run=run)


def add_server_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--config", type=Path, help="flywheel.yaml (default: embedded defaults)")
    parser.add_argument("--host", help="bind address (server.host)")
    parser.add_argument("--port", type=int, help="port (server.port)")
    parser.add_argument("--workers", type=int, help="worker processes (server.workers)")


def apply_server_overrides(args: argparse.Namespace) -> None:
    """CLI flags become FLYWHEEL_SERVER__* so every worker process sees the same."""
    for flag in ("host", "port", "workers"):
        value = getattr(args, flag, None)
        if value is not None:
            os.environ[f"FLYWHEEL_SERVER__{flag.upper()}"] = str(value)


def run(args: argparse.Namespace, rest: list[str]) -> int:
    from gateway.server import serve

    apply_server_overrides(args)
    try:
        config = load_config(args.config)
    except ConfigError as exc:
        print(f"flywheel: {exc}", file=sys.stderr)
        return 2
    serve(config, args.config)
    return 0

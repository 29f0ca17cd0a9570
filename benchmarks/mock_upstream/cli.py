"""`python -m benchmarks.mock_upstream`: run the mock upstream from the command line.

Flags that name a behaviour field set the default behaviour (applied to every model
without its own entry), on top of `--config FILE` when one is given.
"""

from __future__ import annotations

import argparse
import asyncio

from aiohttp import web

from benchmarks.mock_upstream.behaviour import BehaviourError, MockConfig, load_config
from benchmarks.mock_upstream.server import build_app

BEHAVIOUR_FLAGS = {
    "latency_ms": float,
    "ttft_ms": float,
    "tokens_per_s": float,
    "output_tokens": int,
    "failure_rate": float,
}


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks.mock_upstream",
        description="OpenAI-compatible mock upstream with per-model behaviour",
    )
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=9101)
    parser.add_argument("--config", help="YAML: {default: {...}, models: {name: {...}}, seed: 0}")
    for name, kind in BEHAVIOUR_FLAGS.items():
        parser.add_argument(f"--{name.replace('_', '-')}", dest=name, type=kind)
    parser.add_argument("--failure-kind", dest="failure_kind")
    parser.add_argument("--api-key", help="require 'Authorization: Bearer KEY' on /v1 routes")
    parser.add_argument("--log-size", type=int, help="request log length; 0 disables it")
    parser.add_argument("--seed", type=int, help="seed for failure_rate draws")
    return parser.parse_args(argv)


def config_from_args(args: argparse.Namespace) -> MockConfig:
    """The startup config: the YAML file (if any), then the flags on top."""
    config = load_config(args.config) if args.config else MockConfig()
    patch = {
        name: getattr(args, name)
        for name in (*BEHAVIOUR_FLAGS, "failure_kind")
        if getattr(args, name) is not None
    }
    if args.log_size is not None and args.log_size < 0:
        raise BehaviourError("--log-size must be >= 0")
    return MockConfig(
        default=config.default.merged(patch),
        models=config.models,
        seed=config.seed if args.seed is None else args.seed,
        api_key=config.api_key if args.api_key is None else args.api_key,
        log_size=config.log_size if args.log_size is None else args.log_size,
    )


def _event_loop() -> asyncio.AbstractEventLoop:
    try:
        import uvloop  # optional speed-up; the mock runs fine on the default loop
    except ImportError:
        return asyncio.new_event_loop()
    loop: asyncio.AbstractEventLoop = uvloop.new_event_loop()
    return loop


def cli_main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    try:
        config = config_from_args(args)
    except (BehaviourError, OSError) as exc:
        print(f"mock upstream: {exc}", flush=True)
        return 2
    line = f"mock upstream listening on http://{args.host}:{args.port}"
    web.run_app(
        build_app(config),
        host=args.host,
        port=args.port,
        access_log=None,
        handler_cancellation=True,
        print=lambda *_: print(line, flush=True),
        loop=_event_loop(),
    )
    return 0

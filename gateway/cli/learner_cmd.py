"""`flywheel learner run`: the learning sidecar (learner/service.py) on the gateway's config."""

from __future__ import annotations

import argparse
import asyncio
import logging
import sys
from pathlib import Path
from typing import Any

from gateway.config_loader import ConfigError, load_config


def add_parser(commands: Any) -> None:
    parser = commands.add_parser("learner", help="the learning sidecar")
    sub = parser.add_subparsers(dest="learner_command", required=True, metavar="WHAT")
    run = sub.add_parser("run", help="consume events and feedback, learn, publish routing")
    run.add_argument("--config", type=Path, help="flywheel.yaml (default: embedded defaults)")
    run.add_argument("--state-dir", type=Path, default=Path(".flywheel/learner"),
                     help="the replay buffer and pending decisions (SQLite)")  # fmt: skip
    run.add_argument("--consumer", default="learner-1", help="this consumer's name in the group")
    run.add_argument("--metrics-port", type=int, default=9301, help="Prometheus; 0: off")
    run.add_argument("--canary-share", type=float, default=0.05,
                     help="traffic share of a new adapter's canary")  # fmt: skip
    run.add_argument("--canary-min-requests", type=int, default=50,
                     help="rated requests of canary and active before judging")  # fmt: skip
    run.set_defaults(run=_run)


def _run(args: argparse.Namespace, rest: list[str]) -> int:
    from learner.canary import CanarySettings
    from learner.service import LearnerOptions, run_learner

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    try:
        config = load_config(args.config)
    except ConfigError as exc:
        print(f"flywheel: {exc}", file=sys.stderr)
        return 2
    canary = CanarySettings(canary_share=args.canary_share, min_requests=args.canary_min_requests)
    options = LearnerOptions(state_dir=args.state_dir, consumer=args.consumer, canary=canary)
    asyncio.run(run_learner(config, options, args.metrics_port))
    return 0

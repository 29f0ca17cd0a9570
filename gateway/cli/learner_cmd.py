"""`flywheel learner run`: the learning sidecar (learner/service.py) on the gateway's config."""

from __future__ import annotations

import argparse
import asyncio
import logging
import sys
from pathlib import Path
from typing import Any

from gateway.config import FlywheelConfig
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
    run.add_argument("--canary-share", type=_share, default=0.05,
                     help="a new adapter's canary traffic share (a tenant's "
                          "learning.canary may set its own)")  # fmt: skip
    run.add_argument("--canary-min-requests", type=_positive, default=50,
                     help="rated requests of canary and active before judging")  # fmt: skip
    run.set_defaults(run=_run)
    train = sub.add_parser("train", help="one training run: snapshot -> job -> gates -> registry")
    train.add_argument("kind", choices=["reward-model", "sft", "rl"])
    train.add_argument("--tenant", required=True)
    train.add_argument("--intent", help="train on this task's traffic only (adapter "
                       "<tenant>-<intent>-<kind>)")  # fmt: skip
    train.add_argument("--config", type=Path, help="flywheel.yaml (default: embedded defaults)")
    train.add_argument("--state-dir", type=Path, default=Path(".flywheel/learner"))
    train.add_argument("--base", default="smollm2-135m", help="the local base model")
    train.add_argument("--steps", type=int, default=20)
    train.add_argument("--reward-model", type=Path, help="rl (and gates): a reward model dir")
    train.add_argument("--no-approval", action="store_true",
                       help="register without waiting for an operator (policy waiver)")  # fmt: skip
    train.set_defaults(run=_train)
    demo = sub.add_parser(
        "demo", help="the whole loop on SmolLM2 in minutes (synthetic users)", add_help=False
    )
    demo.set_defaults(run=_demo, accepts_rest=True)


def _config(args: argparse.Namespace) -> FlywheelConfig | None:
    """Logging set up and the config loaded; None (after saying why) when it is invalid."""
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    try:
        return load_config(args.config)
    except ConfigError as exc:
        print(f"flywheel: {exc}", file=sys.stderr)
        return None


def _run(args: argparse.Namespace, rest: list[str]) -> int:
    from gateway.policy.model import Canary
    from learner.service import LearnerOptions, run_learner

    config = _config(args)
    if config is None:
        return 2
    canary = Canary(share=args.canary_share, min_requests=args.canary_min_requests)
    options = LearnerOptions(
        state_dir=args.state_dir, consumer=args.consumer, canary=canary, config_path=args.config
    )
    asyncio.run(run_learner(config, options, args.metrics_port))
    return 0


def _train(args: argparse.Namespace, rest: list[str]) -> int:
    import json

    from gateway.flags import FLAGS, KILL, Flags
    from gateway.store import open_store
    from gateway.store_sync import StoreSync
    from learner.pipeline import TrainRequest, train
    from learner.replay import ReplayBuffer
    from local_worker.model_files import resolve

    config = _config(args)
    if config is None:
        return 2
    if not config.store:
        print("flywheel: the config names no store (`store:`)", file=sys.stderr)
        return 2
    kind = args.kind.replace("-", "_")
    request = TrainRequest(
        kind=kind, tenant=args.tenant, base_dir=resolve(args.base).path, base_name=args.base,
        out_root=args.state_dir, steps=args.steps, reward_model_dir=args.reward_model,
        needs_approval=not args.no_approval, intent=args.intent,
    )  # fmt: skip

    async def main() -> dict[str, object]:
        store = open_store(config.store or "")
        sync = StoreSync(store, (FLAGS, KILL))
        await store.start()
        await sync.start()
        flags = Flags(sync)
        job = "reward_model" if kind == "reward_model" else kind
        try:
            outcome = await train(
                request, store, ReplayBuffer(args.state_dir / "replay.db"),
                lambda: flags.killed(args.tenant, job=job),
            )  # fmt: skip
        finally:
            await sync.close()
            await store.close()
        return {"kind": outcome.kind, "snapshot": outcome.snapshot, "status": outcome.status,
                **outcome.detail}  # fmt: skip

    print(json.dumps(asyncio.run(main()), default=str))
    return 0


def _demo(args: argparse.Namespace, rest: list[str]) -> int:
    from learner.demo import main

    status: int = main(rest)
    return status


def _share(text: str) -> float:
    value = float(text)
    if not 0.0 < value <= 1.0:
        raise argparse.ArgumentTypeError(f"a traffic share is in (0, 1], got {text}")
    return value


def _positive(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {text}")
    return value

"""`flywheel`: the one command line for the gateway, its tools and benchmarks.

Each subcommand lives in its own module and registers itself with `add_parser`;
heavy imports happen inside the command that needs them.
"""

from __future__ import annotations

import argparse
import sys

from gateway.cli import (
    bench,
    classifier_cmd,
    config_cmd,
    ctl,
    learner_cmd,
    local_model_cmd,
    serve,
    up,
)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="flywheel", description="OpenAI-compatible inference gateway with a learning loop"
    )
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for module in (serve, up, config_cmd, ctl, classifier_cmd, local_model_cmd, learner_cmd, bench):
        module.add_parser(commands)
    return parser


def main(argv: list[str] | None = None) -> int:
    args, rest = build_parser().parse_known_args(argv)
    if rest and not getattr(args, "accepts_rest", False):
        build_parser().error(f"unrecognized arguments: {' '.join(rest)}")
    result: int = args.run(args, rest)
    return result


if __name__ == "__main__":
    sys.exit(main())

"""`flywheel config check`: validate a config file and summarise it."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from gateway.config_loader import ConfigError, load_config


def add_parser(commands: Any) -> None:
    parser = commands.add_parser("config", help="check a config file")
    sub = parser.add_subparsers(dest="config_command", required=True)
    check = sub.add_parser("check", help="validate flywheel.yaml and print what it defines")
    check.add_argument("--config", type=Path, help="flywheel.yaml (default: embedded defaults)")
    check.set_defaults(run=run_check)


def run_check(args: argparse.Namespace, rest: list[str]) -> int:
    try:
        config = load_config(args.config)
    except ConfigError as exc:
        print(f"flywheel: {exc}", file=sys.stderr)
        return 2
    print(f"config OK: {args.config or 'embedded defaults'}")
    print(f"  providers: {', '.join(f'{n} ({p.kind})' for n, p in config.providers.items())}")
    for name, model in config.models.items():
        chain = " -> ".join([name, *model.fallbacks])
        print(f"  model {name}: {model.provider}/{model.model}  chain {chain}")
    print(f"  tenants: {', '.join(config.tenants) or 'none'}")
    return 0

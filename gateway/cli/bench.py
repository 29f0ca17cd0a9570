"""`flywheel bench ...`: the mock upstream and the benchmarks under benchmarks/."""

from __future__ import annotations

import argparse
from typing import Any


def add_parser(commands: Any) -> None:
    parser = commands.add_parser("bench", help="benchmarks and the mock upstream")
    sub = parser.add_subparsers(dest="bench_command", required=True, metavar="BENCH")
    mock = sub.add_parser("mock-upstream", help="OpenAI-compatible mock server", add_help=False)
    mock.set_defaults(run=run_mock, accepts_rest=True)
    overhead = sub.add_parser(
        "overhead", help="gateway overhead vs direct and vs LiteLLM proxy", add_help=False
    )
    overhead.set_defaults(run=run_overhead, accepts_rest=True)
    events = sub.add_parser(
        "events",
        help="event log throughput, logging on vs off, kill-switch propagation",
        add_help=False,
    )
    events.set_defaults(run=run_events, accepts_rest=True)
    classify = sub.add_parser(
        "classify",
        help="classifier tiers, policy decision, pipeline vs plain proxy",
        add_help=False,
    )
    classify.set_defaults(run=run_classify, accepts_rest=True)
    pii = sub.add_parser(
        "pii", help="PII detectors vs Presidio: accuracy and latency", add_help=False
    )
    pii.set_defaults(run=run_pii, accepts_rest=True)
    local = sub.add_parser(
        "local", help="local model worker: throughput, TTFT, adapters vs llama.cpp", add_help=False
    )
    local.set_defaults(run=run_local, accepts_rest=True)
    learner = sub.add_parser(
        "learner-throughput", help="learner: decisions/s end to end", add_help=False
    )
    learner.set_defaults(run=run_learner, accepts_rest=True)
    jobs = sub.add_parser(
        "learner",
        help="learner jobs on SmolLM2: time, memory, reward-model accuracy, RL gain",
        add_help=False,
    )
    jobs.set_defaults(run=run_learner_jobs, accepts_rest=True)
    routing = sub.add_parser(
        "routing-sim", help="bandit routing vs oracle/static/random, simulated", add_help=False
    )
    routing.set_defaults(run=run_routing_sim, accepts_rest=True)
    real = sub.add_parser(
        "routing-real", help="learned routing replayed on public per-prompt outcomes",
        add_help=False,
    )  # fmt: skip
    real.set_defaults(run=run_routing_real, accepts_rest=True)
    features = sub.add_parser(
        "router-features", help="CPU per request: content features + bandit scoring", add_help=False
    )
    features.set_defaults(run=run_router_features, accepts_rest=True)


def run_mock(args: argparse.Namespace, rest: list[str]) -> int:
    from benchmarks.mock_upstream import cli_main

    status: int = cli_main(rest)
    return status


def run_overhead(args: argparse.Namespace, rest: list[str]) -> int:
    from benchmarks.overhead import main

    status: int = main(rest)
    return status


def run_events(args: argparse.Namespace, rest: list[str]) -> int:
    from benchmarks.events import main

    status: int = main(rest)
    return status


def run_classify(args: argparse.Namespace, rest: list[str]) -> int:
    from benchmarks.classify import main
    from benchmarks.pipeline import sections

    quick = "--quick" in rest
    rest = [arg for arg in rest if arg != "--quick"]
    status: int = main(rest, extra_sections=sections(300 if quick else 3000))
    return status


def run_pii(args: argparse.Namespace, rest: list[str]) -> int:
    from benchmarks.pii import main

    status: int = main(rest)
    return status


def run_local(args: argparse.Namespace, rest: list[str]) -> int:
    from benchmarks.local_model import main

    status: int = main(rest)
    return status


def run_routing_sim(args: argparse.Namespace, rest: list[str]) -> int:
    from benchmarks.routing_sim import main

    status: int = main(rest)
    return status


def run_routing_real(args: argparse.Namespace, rest: list[str]) -> int:
    from benchmarks.routing_real import main

    status: int = main(rest)
    return status


def run_learner(args: argparse.Namespace, rest: list[str]) -> int:
    from benchmarks.learner_throughput import main

    status: int = main(rest)
    return status


def run_learner_jobs(args: argparse.Namespace, rest: list[str]) -> int:
    from benchmarks.learner_jobs import main

    status: int = main(rest)
    return status


def run_router_features(args: argparse.Namespace, rest: list[str]) -> int:
    from benchmarks.router_features import main

    status: int = main(rest)
    return status

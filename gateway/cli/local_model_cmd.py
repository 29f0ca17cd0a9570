"""`flywheel local-model serve|prepare`: the local model worker (needs `pip install '.[local]'`).

`serve` runs the OpenAI-compatible worker for one base model with LoRA adapters;
`prepare` converts and caches the model's files only (what `make` runs once, so the first
`serve` starts in seconds).
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
from pathlib import Path
from typing import Any


def add_parser(commands: Any) -> None:
    parser = commands.add_parser("local-model", help="the local model worker")
    sub = parser.add_subparsers(dest="local_command", required=True, metavar="WHAT")
    serve = sub.add_parser("serve", help="serve a local model over the OpenAI protocol")
    _model_arguments(serve)
    serve.add_argument("--served-model-name", help="the name requests use (default: --model)")
    serve.add_argument("--host", default="127.0.0.1")
    serve.add_argument("--port", type=int, default=9200)
    serve.add_argument("--threads", type=int, default=1, help="torch threads (1 is fastest here)")
    serve.add_argument("--max-batch", type=int, default=16, help="sequences per forward pass")
    serve.add_argument("--batch-window-ms", type=float, default=5.0, help="wait for company")
    serve.add_argument("--max-loras", type=int, default=4, help="adapters kept loaded (LRU)")
    serve.add_argument("--max-model-len", type=int, default=2048, help="context window")
    serve.add_argument("--default-max-tokens", type=int, default=256)
    serve.add_argument(
        "--prefix-cache-tokens", type=int, default=4096, help="KV of shared prompt heads (0: off)"
    )
    serve.add_argument(
        "--store",
        default=os.environ.get("FLYWHEEL_STORE"),
        help="adapter registry store URL for lazy loading by name (default $FLYWHEEL_STORE)",
    )
    serve.add_argument(
        "--embedding-model", default="all-minilm-l6-v2", help="served embedding model or none"
    )
    serve.add_argument(
        "--reward-model", type=Path, metavar="DIR", help="a saved reward model, for /v1/score"
    )
    serve.add_argument(
        "--adapters-root", type=Path, action="append", metavar="DIR",
        help="adapters are read only from under this folder (repeat for more; default "
        ".flywheel/learner and .flywheel/adapters)",
    )  # fmt: skip
    serve.add_argument(
        "--max-lora-rank", type=int, default=64, help="adapters of a larger rank are refused"
    )
    serve.add_argument(
        "--admin-token-env", default="FLYWHEEL_WORKER_ADMIN_TOKEN", metavar="VAR",
        help="the variable holding the bearer token for adapter load/unload (unset: disabled)",
    )  # fmt: skip
    serve.set_defaults(run=_serve)
    prepare = sub.add_parser("prepare", help="convert and cache the model's files")
    _model_arguments(prepare)
    prepare.set_defaults(run=_prepare)


def _model_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--model", default="smollm2-135m", help="smollm2-135m or a HF directory")
    parser.add_argument("--cache-dir", type=Path, help="converted models (.flywheel/models)")


def _serve(args: argparse.Namespace, rest: list[str]) -> int:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    from local_worker.main import StartupError

    try:
        _run_server(args)
    except StartupError as exc:  # e.g. a bad --reward-model: named, not a traceback
        print(f"flywheel: {exc}", file=sys.stderr)
        return 2
    return 0


def _run_server(args: argparse.Namespace) -> None:
    from local_worker.main import DEFAULT_ADAPTERS_ROOTS, Options, serve
    from local_worker.model_files import DEFAULT_CACHE

    serve(
        Options(
            model=args.model,
            served_name=args.served_model_name,
            host=args.host,
            port=args.port,
            threads=args.threads,
            max_batch=args.max_batch,
            batch_window_ms=args.batch_window_ms,
            max_loras=args.max_loras,
            max_model_len=args.max_model_len,
            default_max_tokens=args.default_max_tokens,
            prefix_cache_tokens=args.prefix_cache_tokens,
            store=args.store,
            embedding_model=args.embedding_model,
            reward_model=args.reward_model,
            cache_dir=args.cache_dir or DEFAULT_CACHE,
            adapters_roots=tuple(args.adapters_root or DEFAULT_ADAPTERS_ROOTS),
            max_lora_rank=args.max_lora_rank,
            admin_token_env=args.admin_token_env,
        )
    )


def _prepare(args: argparse.Namespace, rest: list[str]) -> int:
    from local_worker.model_files import DEFAULT_CACHE, resolve

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    files = resolve(args.model, args.cache_dir or DEFAULT_CACHE)
    print(f"{files.name}: {files.path}")
    return 0

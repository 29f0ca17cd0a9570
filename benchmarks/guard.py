"""The injection guard's accuracy and latency: `python -m benchmarks.guard [--json]`.

1. accuracy: precision / recall / F1 per kind on the shipped test split, for the
   heuristics alone, the classifier alone and the combined score (what `InjectionGuard`
   decides), at the guard's threshold; `any` counts a text as caught when either kind
   fires, whatever the kind;
2. latency: p50 / p99 of the heuristics, the classifier and `InjectionGuard.scan` on 2 KB
   texts (benign prose, and the test split's attacks packed to 2 KB);
3. training: fitting the classifier on the shipped train split.

The heuristic patterns were written with the whole labelled set in view, so their figures
on the test split are optimistic; the classifier's are a clean hold-out.
With `--json` the last stdout line is one JSON object with every figure.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Callable, Sequence
from functools import partial
from typing import Any

from benchmarks.timing import timed
from gateway.guard import KINDS, InjectionGuard, load_dataset, train_default
from gateway.guard.detector import KindScore
from gateway.guard.heuristics import heuristic_scores

PROSE = (
    "Revenue grew twelve percent year over year to forty-eight million dollars, driven mostly "
    "by the enterprise segment, while gross margin declined slightly because of higher hosting "
    "costs. Churn in the small-business segment rose to three percent a month. Please turn "
    "this into five bullet points for the leadership team and keep the numbers exact. "
)
Scorer = Callable[[KindScore], float]
SCORERS: dict[str, Scorer] = {
    "heuristics": lambda s: s.heuristic,
    "classifier": lambda s: s.classifier,
    "combined": lambda s: s.combined,
}


def prf(tp: int, fp: int, fn: int) -> dict[str, float]:
    precision = tp / (tp + fp) if tp + fp else 1.0
    recall = tp / (tp + fn) if tp + fn else 1.0
    f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    return {"precision": round(precision, 3), "recall": round(recall, 3), "f1": round(f1, 3)}


def accuracy(guard: InjectionGuard) -> dict[str, dict[str, dict[str, float]]]:
    test = [example for example in load_dataset() if example.split == "test"]
    scored = [(example.label, guard.score(example.text)) for example in test]
    out: dict[str, dict[str, dict[str, float]]] = {}
    for name, scorer in SCORERS.items():
        rows: dict[str, dict[str, float]] = {}
        for kind in (*KINDS, "any"):
            tp = fp = fn = 0
            for label, scores in scored:
                kinds = KINDS if kind == "any" else tuple(k for k in KINDS if k == kind)
                fired = any(scorer(scores[k]) >= guard.threshold for k in kinds)
                positive = label != "benign" if kind == "any" else label == kind
                tp += fired and positive
                fp += fired and label == "benign"
                fn += positive and not fired
            rows[kind] = prf(tp, fp, fn) | {"false_positives": fp}
        out[name] = rows
    return out


def latency(guard: InjectionGuard, iterations: int) -> dict[str, dict[str, float]]:
    attacks = " ".join(e.text for e in load_dataset() if e.split == "test" and e.label != "benign")
    texts = {"prose_2kb": (PROSE * 10)[:2048], "attacks_2kb": attacks[:2048]}
    out: dict[str, dict[str, float]] = {}
    for name, text in texts.items():
        out[f"heuristics/{name}"] = timed(partial(heuristic_scores, text), iterations)
        out[f"classifier/{name}"] = timed(partial(guard.classifier.scores, text), iterations)
        out[f"scan/{name}"] = timed(partial(guard.scan, [("m", "user", text)]), iterations)
    return out


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="bench guard", description=__doc__.splitlines()[0])
    parser.add_argument("--iterations", type=int, default=500)
    parser.add_argument("--threshold", type=float, default=0.5)
    parser.add_argument("--json", action="store_true", help="last line: one JSON object")
    args = parser.parse_args(argv)

    started = time.perf_counter()
    classifier = train_default()
    fit_s = round(time.perf_counter() - started, 3)
    guard = InjectionGuard(args.threshold, classifier=classifier)
    result: dict[str, Any] = {
        "threshold": args.threshold,
        "fit_s": fit_s,
        "accuracy": accuracy(guard),
        "latency": latency(guard, args.iterations),
    }
    print(f"classifier fit on the train split: {fit_s} s   threshold: {args.threshold}")
    print(f"\n{'scorer':<11} {'kind':<17} {'precision':>9} {'recall':>7} {'f1':>6} {'fp':>4}")
    for name, rows in result["accuracy"].items():
        for kind, row in rows.items():
            print(
                f"{name:<11} {kind:<17} {row['precision']:>9.3f} {row['recall']:>7.3f} "
                f"{row['f1']:>6.3f} {row['false_positives']:>4}"
            )
    print(f"\n{'latency (2 KB text)':<28} {'p50 ms':>8} {'p99 ms':>8}")
    for name, row in result["latency"].items():
        print(f"{name:<28} {row['p50_ms']:>8.3f} {row['p99_ms']:>8.3f}")
    if args.json:
        print(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

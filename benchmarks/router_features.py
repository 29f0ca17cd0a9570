"""`flywheel bench router-features`: what content-aware routing costs per request, in CPU.

Each sample is a distinct ~200-token chat prompt (shipped classifier prompts joined until
the tokenizer counts 200 tokens). Per request the router runs, in this order, the stages
timed here with the thread's CPU clock (time.thread_time_ns: other processes on the machine
do not count, but cache and frequency effects of a busy machine do):

- `encode`: the user turns (gateway/transcript.py) through the static content model
  (gateway/policy/content.py) into the packed vector; `encode (cold)` empties the model's
  chunk cache first, so every word goes through the tokenizer (a first request's cost);
- `context`: the event's context (context_of) plus the vector and the classification;
- `featurize` and `choose` (LinUCB over K arms with fitted parameters: a d x d inverse
  design matrix per arm, d = len(FEATURES));
- `total`: all of the above on a warm cache, the number the target (p99 <= 1 ms) is about.

The table goes to stdout; with --json the last line is one JSON object with the figures.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import platform
import time
from collections.abc import Callable
from typing import Any

import numpy as np
from tqdm import tqdm

from gateway.classify.classifier import load_dataset
from gateway.classify.types import Classification
from gateway.policy.bandit_features import FEATURES, featurize
from gateway.policy.bandit_scorer import BanditParams, choose
from gateway.policy.content import ContentEncoder, content_model_dir, load_content_encoder
from gateway.policy.router import bandit_context
from gateway.transcript import render_prompt
from learner.bandits import LinUCB, Safeguards

TARGET_P99_US = 1000.0
PROMPT_TOKENS = 200


def prompts(encoder: ContentEncoder, count: int) -> list[dict[str, Any]]:
    """`count` distinct chat bodies of ~PROMPT_TOKENS tokens each."""
    texts = [row.text for row in load_dataset()]
    rng = np.random.default_rng(0)
    bodies = []
    for _ in range(count):
        parts: list[str] = []
        while len(encoder.tokenizer.encode(" ".join(parts)).ids) < PROMPT_TOKENS:
            parts.append(texts[int(rng.integers(len(texts)))])
        bodies.append({"model": "auto", "messages": [{"role": "user", "content": " ".join(parts)}]})
    return bodies


def fitted_params(arms: int, contexts: list[np.ndarray]) -> BanditParams:
    rng = np.random.default_rng(1)
    bandit = LinUCB(tuple(f"arm-{i}" for i in range(arms)))
    for x in contexts:
        arm = int(rng.integers(arms))
        bandit.update(x, arm, float(rng.random() < 0.5 + 0.1 * x[-1] * (arm + 1)))
    return bandit.to_params("bench-1", Safeguards(min_explore=0.05))


def percentiles(samples: list[int]) -> dict[str, float]:
    us = np.array(samples) / 1e3
    p50, p99 = np.percentile(us, [50, 99])
    return {"p50_us": round(float(p50), 1), "p99_us": round(float(p99), 1),
            "mean_us": round(float(us.mean()), 1)}  # fmt: skip


def measure(
    name: str, fn: Callable[[int], object], n: int, before: Callable[[], None] | None = None
) -> dict[str, float]:
    samples = []
    for i in tqdm(range(n), desc=name, unit="req", leave=False):
        if before is not None:
            before()
        started = time.thread_time_ns()
        fn(i)
        samples.append(time.thread_time_ns() - started)
    return percentiles(samples)


def run(samples: int, arms: int, encoder: ContentEncoder) -> dict[str, Any]:
    bodies = prompts(encoder, samples)
    turns = [render_prompt("chat/completions", body) for body in bodies]
    c = Classification("research", 0.9, 0.5, "medium", "lexical")
    packed = [encoder.encode_turns(t) for t in turns]  # warms the chunk cache
    contexts = [
        bandit_context("chat/completions", b, c, p) for b, p in zip(bodies, packed, strict=True)
    ]
    xs = [featurize(ctx) for ctx in contexts]
    params = fitted_params(arms, xs)
    u = np.random.default_rng(2).random(samples)

    def total(i: int) -> None:
        body = bodies[i]
        vector = encoder.encode_turns(render_prompt("chat/completions", body))
        choose(params, featurize(bandit_context("chat/completions", body, c, vector)), u[i])

    rows = {
        "encode (cold)": measure(
            "encode-cold", lambda i: encoder.encode_turns(turns[i]), samples, encoder._cache.clear
        ),
        "encode": measure("encode", lambda i: encoder.encode_turns(turns[i]), samples),
        "context": measure(
            "context",
            lambda i: bandit_context("chat/completions", bodies[i], c, packed[i]),
            samples,
        ),
        "featurize": measure("featurize", lambda i: featurize(contexts[i]), samples),
        f"choose (linucb, K={arms})": measure(
            "choose", lambda i: choose(params, xs[i], u[i]), samples
        ),
        "total": measure("total", total, samples),
    }
    return {
        "benchmark": "router-features",
        "date": dt.date.today().isoformat(),
        "machine": f"{platform.machine()} {platform.processor() or ''}".strip(),
        "python": platform.python_version(),
        "samples": samples,
        "prompt_tokens": PROMPT_TOKENS,
        "d": len(FEATURES),
        "arms": arms,
        "model": str(content_model_dir()),
        "rows": rows,
        "target_p99_us": TARGET_P99_US,
        "pass": rows["total"]["p99_us"] <= TARGET_P99_US,
    }


def render(result: dict[str, Any]) -> str:
    lines = [
        f"router features: {result['samples']} prompts of ~{result['prompt_tokens']} tokens, "
        f"d={result['d']}, {result['arms']} arms, CPU time per request (thread clock)",
        f"{'stage':<24}{'p50 us':>10}{'p99 us':>10}{'mean us':>10}",
    ]
    for name, row in result["rows"].items():
        lines.append(
            f"{name:<24}{row['p50_us']:>10.1f}{row['p99_us']:>10.1f}{row['mean_us']:>10.1f}"
        )
    verdict = "PASS" if result["pass"] else "FAIL"
    lines.append(
        f"target: total p99 <= {result['target_p99_us']:.0f} us: "
        f"{result['rows']['total']['p99_us']:.1f} us {verdict}"
    )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(
        prog="flywheel bench router-features",
        description="CPU cost of content features + bandit scoring per request.",
    )
    p.add_argument("--samples", type=int, default=2000, help="prompts (default 2000)")
    p.add_argument("--arms", type=int, default=2, help="bandit arms (default 2)")
    p.add_argument("--json", action="store_true", help="also print one JSON object last")
    args = p.parse_args(argv)
    encoder = load_content_encoder()
    if encoder is None:
        print(f"no content model in {content_model_dir()}: run `flywheel classifier export`")
        return 2
    result = run(args.samples, args.arms, encoder)
    print(render(result))
    if args.json:
        print(json.dumps(result))
    return 0 if result["pass"] else 1

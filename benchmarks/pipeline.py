"""The routing pipeline's own cost, for `flywheel bench classify`:

- the policy decision (`Router.plan`: classify, match the rule, order the chain,
  apply the template) timed in-process over varied prompts (target p50 <= 0.2 ms);
- the gateway's latency with the full pipeline (virtual model -> policy -> template)
  against the plain proxy (a concrete model, no policy), two gateway processes on the
  same mock upstream, interleaved runs at concurrency 1 and 16.
"""

from __future__ import annotations

import asyncio
import tempfile
import time
from pathlib import Path
from typing import Any

from benchmarks.loadgen import LoadSpec, percentile, run_subprocess
from benchmarks.processes import Server, start_gateway, start_mock
from gateway.config_loader import load_config
from gateway.state import AppState

ROOT = Path(__file__).resolve().parent.parent
PROMPTS = [
    "hi there, how are you today?",
    "Write a Python function that merges two sorted lists and explain its complexity.",
    "Summarize the following paragraph in two sentences: " + "The quarterly report " * 40,
    "Translate 'where is the train station' into German and French.",
    "Solve 3x + 7 = 22 and show each step.",
    "Compare the economic policies of three European countries since 1990, citing sources, "
    "with a table and at least five references, in under 800 words.",
    "Extract every date and amount from: paid $120 on 2024-03-01, $75.50 on 2024-04-15.",
    "Write a short poem about autumn rain in the style of a haiku sequence.",
]

POLICY_CONFIG = """
server: {{port: {port}, log_level: warning}}
policies_dir: "{root}/policies"
templates_dir: "{root}/templates"
watch_files: false
providers:
  mock: {{kind: openai, base_url: "{mock}/v1"}}
  mock-b: {{kind: openai, base_url: "{mock}/v1"}}
models:
  mock/small: {{provider: mock, model: bench-model, cost_per_mtok: {{input: 0.15, output: 0.6}}}}
  mock/large: {{provider: mock, model: bench-model, cost_per_mtok: {{input: 2.5, output: 10}}}}
  mock/large-b: {{provider: mock-b, model: bench-model, cost_per_mtok: {{input: 3, output: 12}}}}
  mock/vision: {{provider: mock, model: bench-model}}
tenants:
  dev: {{api_keys_env: BENCH_KEYS}}
"""


async def _decisions(state: AppState, rounds: int) -> list[float]:
    samples = []
    for i in range(rounds):
        body = {
            "model": "auto",
            "messages": [{"role": "user", "content": PROMPTS[i % len(PROMPTS)]}],
            "user": f"user-{i % 50}",
        }
        started = time.perf_counter()
        await state.router.plan("dev", "chat/completions", body, {}, f"req_{i}", 100)
        samples.append((time.perf_counter() - started) * 1000)
    return samples


def policy_decision(rounds: int = 5000) -> dict[str, Any]:
    """Router.plan latency over varied prompts with the shipped example policy."""
    config = load_config(
        None,
        env={
            "FLYWHEEL_POLICIES_DIR": str(ROOT / "policies"),
            "FLYWHEEL_TEMPLATES_DIR": str(ROOT / "templates"),
            "FLYWHEEL_STORE": "",
            "FLYWHEEL_WATCH_FILES": "false",
        },
    )
    state = AppState.build(config.model_copy(update={"store": None}))
    asyncio.run(_decisions(state, 200))  # warm-up
    ordered = sorted(asyncio.run(_decisions(state, rounds)))
    return {"rounds": rounds, "p50_ms": percentile(ordered, 50), "p99_ms": percentile(ordered, 99)}


def _gateway(work: Path, mock: Server, name: str) -> Server:
    config = POLICY_CONFIG.format(port="{port}", root=ROOT, mock=mock.url)
    return start_gateway(work, name, config, {"BENCH_KEYS": "sk-bench"})


def pipeline_vs_proxy(work: Path, requests: int) -> dict[str, Any]:
    """One gateway; `mock/small` (concrete: the plain proxy path) vs `auto` (the policy,
    classification and template path) through it, interleaved, c=1 and c=16."""
    mock = start_mock(work, None)
    gateway = _gateway(work, mock, "gateway")
    out: dict[str, Any] = {}
    try:
        for concurrency in (1, 16):
            best: dict[str, dict[str, float]] = {}
            for _ in range(2):
                for label, model in (("plain proxy", "mock/small"), ("full pipeline", "auto")):
                    spec = LoadSpec(
                        url=gateway.url,
                        model=model,
                        concurrency=concurrency,
                        requests=requests,
                        warmup=100,
                        label=f"{label} c={concurrency}",
                        cpu_pids=(gateway.pid,),
                    )
                    result = run_subprocess(spec)
                    row = {
                        "p50_ms": result.latency_ms["p50"],
                        "p99_ms": result.latency_ms["p99"],
                        "rps": result.rps,
                        "cpu_ms_per_request": result.cpu_ms_per_request or 0.0,
                        "errors": result.sent - result.ok,
                    }
                    if label not in best or row["p50_ms"] < best[label]["p50_ms"]:
                        best[label] = row
            for label, row in best.items():
                out[f"c={concurrency} {label}"] = row
            full, plain = best["full pipeline"], best["plain proxy"]
            out[f"c={concurrency} added p50 ms"] = round(full["p50_ms"] - plain["p50_ms"], 4)
            out[f"c={concurrency} added cpu ms/req"] = round(
                full["cpu_ms_per_request"] - plain["cpu_ms_per_request"], 4
            )
    finally:
        gateway.stop()
        mock.stop()
    return out


def sections(requests: int) -> list[tuple[str, Any]]:
    """Extra sections for `flywheel bench classify` (see benchmarks/classify.py)."""

    def decision(ctx: Any) -> dict[str, Any]:
        return policy_decision()

    def pipeline(ctx: Any) -> dict[str, Any]:
        with tempfile.TemporaryDirectory(prefix="flywheel-bench-pipeline-") as tmp:
            return pipeline_vs_proxy(Path(tmp), requests)

    return [("policy decision", decision), ("pipeline vs plain proxy", pipeline)]

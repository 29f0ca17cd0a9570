"""`flywheel bench local`: the local model worker over HTTP, beside llama.cpp on the same model.

One run (`python -m benchmarks.local_model [--json]`), on SmolLM2-135M-Instruct, CPU only:

1. offline, before the worker starts: two random LoRA adapters (PEFT, r=8, q/v projections)
   saved to a temp dir, and the "hi" prefill timed directly in transformers (the floor under
   the worker's time to first token);
2. `flywheel local-model serve` in a subprocess, driven with greedy streaming chat
   completions: tokens/s and TTFT for one request (median of `--repeats`) and for
   `--concurrency` requests fired together, their ratio, TTFT of a short prompt, RSS after
   loading and peak RSS under load. Each user message starts differently ("Request 7: ..."),
   so the worker's prefix cache can reuse only the chat template's system prompt, as with
   real traffic (llama.cpp's reference re-prefills everything); one row repeats "hi" as is;
3. hot-loading both adapters, a request through the second, and whether its output differs
   from the base model's (and the base model's stays the same with adapters loaded);
4. with the worker stopped, the llama.cpp reference (benchmarks/llamacpp_ref.py) on the
   same model, prompt length and threads (`--no-llamacpp` skips it).

Targets: N-concurrent / 1-concurrent tokens/s >= 3x, short-prompt TTFT < 150 ms, second
adapter load < 1 s. The machine is small and shared: compare figures within one run. With
`--json` the last stdout line is one JSON object with every figure.
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import json
import os
import secrets
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import psutil
from tqdm import tqdm

from benchmarks.loadgen import percentile
from benchmarks.processes import Server, clean_env, free_port, start_server

MODEL = "smollm2-135m"
PROMPT = "Write a long story about a dragon who learns to fly."
SHORT = "hi"
MB = 1024 * 1024
PHASES = 8
CACHE = Path(os.environ.get("FLYWHEEL_MODEL_CACHE", ".flywheel/models"))  # the worker's default
ADMIN_TOKEN = secrets.token_urlsafe(32)  # the worker's admin token (adapter load/unload)


@dataclass
class Sample:
    """One streamed chat completion as the client saw it."""

    ttft_s: float  # until the first content chunk
    wall_s: float
    text: str
    usage: dict[str, int]  # from the usage chunk


async def chat(client: httpx.AsyncClient, prompt: str, max_tokens: int, model: str) -> Sample:
    body = {"model": model, "messages": [{"role": "user", "content": prompt}], "stream": True,
            "stream_options": {"include_usage": True}, "temperature": 0,
            "max_tokens": max_tokens}  # fmt: skip
    started, first, parts, usage = time.perf_counter(), None, [], dict[str, int]()
    async with client.stream("POST", "/v1/chat/completions", json=body) as response:
        if response.status_code != 200:
            raise RuntimeError(f"{model}: HTTP {response.status_code} {await response.aread()!r}")
        async for line in response.aiter_lines():
            if not line.startswith("data: ") or line == "data: [DONE]":
                continue
            chunk = json.loads(line.removeprefix("data: "))
            if "error" in chunk:
                raise RuntimeError(f"{model}: {chunk['error']}")
            usage = chunk.get("usage") or usage
            for choice in chunk["choices"]:
                if text := choice.get("delta", {}).get("content"):
                    first = first or time.perf_counter()
                    parts.append(text)
    end = time.perf_counter()
    return Sample((first or end) - started, end - started, "".join(parts), usage)


def rss_mb(pid: int) -> float:
    return float(psutil.Process(pid).memory_info().rss / MB)


class PeakRss:
    """Samples a process's RSS in a thread while in the `with` block; `peak_mb` is the most."""

    def __init__(self, pid: int, every_s: float = 0.05) -> None:
        self.pid, self.every_s, self.peak_mb, self._done = pid, every_s, 0.0, threading.Event()
        self._thread = threading.Thread(target=self._sample, daemon=True)

    def __enter__(self) -> PeakRss:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._done.set()
        self._thread.join()

    def _sample(self) -> None:
        while not self._done.wait(self.every_s):
            self.peak_mb = max(self.peak_mb, rss_mb(self.pid))


def offline(model_dir: Path, work: Path, threads: int) -> tuple[dict[str, Any], list[Path]]:
    """The "hi" prefill time in plain transformers, and two random LoRA adapters on disk."""
    os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")  # read when transformers loads
    import torch
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM, AutoTokenizer

    torch.set_num_threads(threads)
    tokenizer = AutoTokenizer.from_pretrained(str(model_dir))
    text = tokenizer.apply_chat_template(
        [{"role": "user", "content": SHORT}], add_generation_prompt=True, tokenize=False
    )
    ids = tokenizer(text, add_special_tokens=False, return_tensors="pt")["input_ids"]
    model = AutoModelForCausalLM.from_pretrained(str(model_dir), dtype=torch.float32)  # eval mode
    times = []
    with torch.inference_mode():
        for _ in range(12):
            started = time.perf_counter()
            model(input_ids=ids, use_cache=True, logits_to_keep=1)
            times.append(time.perf_counter() - started)
    figures = {
        "short_prompt_tokens": ids.shape[1],
        "prefill_ms": statistics.median(times[2:]) * 1e3,
    }
    paths = []
    for seed in (1, 2):
        torch.manual_seed(seed)
        base = AutoModelForCausalLM.from_pretrained(str(model_dir), dtype=torch.float32)
        config = LoraConfig(
            r=8, lora_alpha=16, target_modules=["q_proj", "v_proj"], init_lora_weights=False
        )
        paths.append(work / f"adapter-{seed}")
        with warnings.catch_warnings(category=FutureWarning, action="ignore"):  # PEFT's, harmless
            get_peft_model(base, config).save_pretrained(str(paths[-1]))
    return figures, paths


def prepared(cache: Path) -> Path:
    """The converted model's directory, converting it first if missing."""
    if not (cache / MODEL / "config.json").is_file():
        argv = [sys.executable, "-m", "gateway", "local-model", "prepare", "--cache-dir"]
        subprocess.run([*argv, str(cache)], check=True, env=clean_env())
    return cache / MODEL


def start_worker(work: Path, cache: Path, args: argparse.Namespace) -> Server:
    port = free_port()
    argv = [sys.executable, "-m", "gateway", "local-model", "serve", "--model", MODEL]
    argv += ["--cache-dir", str(cache), "--port", str(port), "--threads", str(args.threads)]
    argv += ["--max-batch", str(max(16, args.concurrency)), "--embedding-model", "none"]
    argv += ["--adapters-root", str(work), "--admin-token-env", "BENCH_WORKER_TOKEN"]
    log = work / "worker.log"
    env = clean_env(BENCH_WORKER_TOKEN=ADMIN_TOKEN)
    return start_server("local worker", argv, port=port, ready_path="/healthz", log_path=log,
                        env=env, timeout_s=180)  # fmt: skip


async def measure_worker(
    server: Server, args: argparse.Namespace, adapters: list[Path], bar: tqdm[Any]
) -> dict[str, Any]:
    n, max_tokens, tags = args.concurrency, args.max_tokens, itertools.count(1)

    def fresh(text: str) -> str:  # a new head for the user message: no whole-prompt cache hit
        return f"Request {next(tags)}: {text}"

    f: dict[str, Any] = {"rss_after_load_mb": rss_mb(server.pid)}
    async with httpx.AsyncClient(base_url=server.url, timeout=600) as client:
        bar.set_description("warm-up")
        base = await chat(client, PROMPT, max_tokens, MODEL)
        f["rss_after_warmup_mb"] = rss_mb(server.pid)
        bar.update()
        bar.set_description("1 concurrent")
        singles = [
            await chat(client, fresh(PROMPT), max_tokens, MODEL) for _ in range(args.repeats)
        ]
        f["c1_tok_s"] = statistics.median(s.usage["completion_tokens"] / s.wall_s for s in singles)
        f["c1_ttft_ms"] = statistics.median(s.ttft_s for s in singles) * 1e3
        f["prompt_tokens"] = singles[0].usage["prompt_tokens"]
        f["completion_tokens"] = singles[0].usage["completion_tokens"]
        bar.update()
        bar.set_description(f"{n} concurrent")
        with PeakRss(server.pid) as rss:
            started = time.perf_counter()
            burst = await asyncio.gather(*(chat(client, fresh(PROMPT), max_tokens, MODEL)
                                           for _ in range(n)))  # fmt: skip
            wall = time.perf_counter() - started
        ttfts = sorted(s.ttft_s * 1e3 for s in burst)
        f["cN_tokens"] = sum(s.usage["completion_tokens"] for s in burst)
        f["cN_tok_s"] = f["cN_tokens"] / wall
        f["cN_ttft_p50_ms"], f["cN_ttft_p90_ms"] = percentile(ttfts, 50), percentile(ttfts, 90)
        f["ratio"], f["peak_rss_mb"] = f["cN_tok_s"] / f["c1_tok_s"], rss.peak_mb
        bar.update()
        bar.set_description("short prompt TTFT")
        for key, texts in (("short", [fresh(SHORT) for _ in range(10)]), ("repeat", [SHORT] * 10)):
            shorts = [await chat(client, text, 4, MODEL) for text in texts]
            f[f"{key}_ttft_ms"] = statistics.median(s.ttft_s for s in shorts) * 1e3
        bar.update()
        bar.set_description("adapters")
        loads = []
        for i, path in enumerate(adapters, 1):
            started = time.perf_counter()
            body = {"lora_name": f"bench-{i}", "lora_path": str(path)}
            admin = {"authorization": f"Bearer {ADMIN_TOKEN}"}
            loaded = await client.post("/v1/load_lora_adapter", json=body, headers=admin)
            loaded.raise_for_status()
            loads.append(time.perf_counter() - started)
        tuned = await chat(client, PROMPT, max_tokens, f"{MODEL}:bench-{len(adapters)}")
        again = await chat(client, PROMPT, max_tokens, MODEL)
        f["adapter_load_ms"] = [s * 1e3 for s in loads]
        f["adapter_ttft_ms"] = tuned.ttft_s * 1e3
        f["adapter_differs"], f["base_unchanged"] = tuned.text != base.text, again.text == base.text
        f["rss_with_adapters_mb"] = rss_mb(server.pid)
        bar.update()
    return f


def render(fig: dict[str, Any]) -> str:
    w, ref, n, ok = fig["worker"], fig.get("llamacpp") or {}, fig["concurrency"], fig["targets"]
    one = ref.get("threads", {}).get(str(fig["threads"]), {})
    batched, serial = (ref.get(k, {}).get(str(n), {}) for k in ("batched", "concurrency"))
    ref_ratio = batched["agg_tok_s"] / one["e2e_tok_s"] if batched and one else None

    def num(value: Any, spec: str = ".1f") -> str:
        return "-" if value is None else format(value, spec)

    rows = [  # metric, worker, llama.cpp, target, met
        ("startup s (worker: spawn to /healthz)", num(w["startup_s"], ".2f"),
         num(ref.get("load_s"), ".2f"), "", None),
        ("RSS after load MB", num(w["rss_after_load_mb"], ".0f"), "-", "", None),
        ("RSS after warm-up MB", num(w["rss_after_warmup_mb"], ".0f"), "-", "", None),
        (f"peak RSS MB ({n} concurrent)", num(w["peak_rss_mb"], ".0f"),
         num(ref.get("peak_rss_mb"), ".0f"), "", None),
        ("1 concurrent tokens/s", num(w["c1_tok_s"]), num(one.get("e2e_tok_s")), "", None),
        ("1 concurrent TTFT ms", num(w["c1_ttft_ms"]), num(one.get("ttft_ms")), "", None),
        (f"{n} concurrent tokens/s (llama: batched)", num(w["cN_tok_s"]),
         num(batched.get("agg_tok_s")), "", None),
        (f"{n} concurrent tokens/s (llama: one by one)", "", num(serial.get("agg_tok_s")), "",
         None),
        (f"{n} concurrent TTFT p50 ms", num(w["cN_ttft_p50_ms"]), num(batched.get("ttft_ms")),
         "", None),
        (f"{n} concurrent TTFT p90 ms", num(w["cN_ttft_p90_ms"]), "-", "", None),
        (f"{n}/1 concurrent tokens/s", num(w["ratio"], ".2f") + "x", num(ref_ratio, ".2f") + "x",
         ">= 3x", ok["ratio >= 3x"]),
        (f"TTFT 'Request i: {SHORT}' ms (median of 10)", num(w["short_ttft_ms"]), "-", "< 150",
         ok["short TTFT < 150 ms"]),
        (f"TTFT '{SHORT}' ms, same prompt 10 times", num(w["repeat_ttft_ms"]), "-", "", None),
        (f"  transformers prefill '{SHORT}', cold, ms", num(fig["offline"]["prefill_ms"]), "-", "",
         None),
        ("adapter load ms, first", num(w["adapter_load_ms"][0]), "-", "", None),
        ("adapter load ms, second", num(w["adapter_load_ms"][1]), "-", "< 1000",
         ok["second adapter load < 1 s"]),
        ("adapter request TTFT ms", num(w["adapter_ttft_ms"]), "-", "", None),
        ("adapter output differs from base", str(w["adapter_differs"]), "-", "True",
         ok["adapter output differs"]),
        ("base output unchanged, adapters loaded", str(w["base_unchanged"]), "-", "True",
         w["base_unchanged"]),
    ]  # fmt: skip
    table = [("metric", "flywheel worker", "llama.cpp", "target", "met?")]
    table += [(*r[:4], "" if r[4] is None else ("yes" if r[4] else "NO")) for r in rows]
    widths = [max(len(r[i]) for r in table) for i in range(5)]
    lines = ["  ".join(c.ljust(widths[i]) for i, c in enumerate(r)).rstrip() for r in table]
    lines.insert(1, "  ".join("-" * x for x in widths))
    lines.append(
        f"prompt {w['prompt_tokens']} tokens (llama.cpp {num(one.get('prompt_tokens'), 'd')}), "
        f"{w['completion_tokens']} completion tokens a request, {fig['threads']} thread(s); "
        f"total {fig['elapsed_s']:.0f} s"
    )
    if fig.get("llamacpp_error"):
        lines.append(f"llama.cpp: {fig['llamacpp_error']}")
    return "\n".join(lines)


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="flywheel bench local",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--max-tokens", type=int, default=64, help="completion tokens a request")
    parser.add_argument("--concurrency", type=int, default=8, help="requests fired together")
    parser.add_argument("--threads", type=int, default=1, help="torch / llama.cpp threads")
    parser.add_argument("--repeats", type=int, default=3, help="runs of the 1-request case")
    parser.add_argument("--no-llamacpp", action="store_true", help="skip the llama.cpp reference")
    parser.add_argument("--json", action="store_true", help="last line: one JSON object")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    started = time.perf_counter()
    cache = CACHE.resolve()
    fig: dict[str, Any] = {"threads": args.threads, "concurrency": args.concurrency}
    bar: tqdm[Any] = tqdm(total=PHASES, unit="phase", file=sys.stderr, leave=False)
    with tempfile.TemporaryDirectory(prefix="flywheel-bench-local-") as tmp:
        work = Path(tmp)
        bar.set_description("adapters + transformers prefill")
        fig["offline"], adapters = offline(prepared(cache), work, args.threads)
        bar.update()
        bar.set_description("starting worker")
        spawned = time.perf_counter()
        server = start_worker(work, cache, args)
        startup_s = time.perf_counter() - spawned
        bar.update()
        try:
            fig["worker"] = asyncio.run(measure_worker(server, args, adapters, bar))
        finally:
            server.stop()
        fig["worker"]["startup_s"] = startup_s
    fig["llamacpp"] = None
    if not args.no_llamacpp:
        from benchmarks.llamacpp_ref import LlamaCppUnavailable, measure

        bar.set_description("llama.cpp reference")
        try:
            fig["llamacpp"] = measure(
                fig["worker"]["prompt_tokens"], args.max_tokens, (1, args.concurrency), args.threads
            )
        except LlamaCppUnavailable as exc:
            fig["llamacpp_error"] = str(exc)
    bar.update()
    bar.close()
    w = fig["worker"]
    fig["targets"] = {
        "ratio >= 3x": w["ratio"] >= 3,
        "short TTFT < 150 ms": w["short_ttft_ms"] < 150,
        "second adapter load < 1 s": w["adapter_load_ms"][1] < 1000,
        "adapter output differs": w["adapter_differs"],
    }
    fig["elapsed_s"] = time.perf_counter() - started
    print(render(fig))
    if args.json:
        print(json.dumps(fig))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

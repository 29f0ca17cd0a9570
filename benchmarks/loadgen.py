"""A closed-loop load generator for OpenAI-compatible chat completions.

N workers each send one request, wait for the whole answer, and send the next, until a
request count or a duration is reached. Per request it records the latency, the time to
the first SSE `data:` chunk that carries content (streams), the status, and the
gateway's self-reported `x-flywheel-overhead-ms` header when present.

It runs in its own process so that it never shares an event loop with a server under
test: `python -m benchmarks.loadgen --url ... --json` prints one JSON object (a
`LoadResult`) as its last stdout line, and `run_subprocess(spec)` does that for callers.
With `--cpu-pid` it also reports the CPU time (user + system) that those processes and
their children spent during the measured window, after the warm-up.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import math
import os
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

MODES = ("plain", "stream", "mixed")
OVERHEAD_HEADER = "x-flywheel-overhead-ms"
DEFAULT_PROMPT = "Say something short about load generators."


@dataclass(frozen=True, slots=True)
class LoadSpec:
    """What to send, how hard, and for how long."""

    url: str  # the base URL, e.g. http://127.0.0.1:8080 (the path is appended)
    model: str
    concurrency: int = 1
    requests: int = 1000  # measured requests; 0 = bounded by seconds only
    seconds: float = 0.0  # measured duration cap; 0 = bounded by requests only
    mode: str = "plain"  # plain | stream | mixed (alternating)
    warmup: int = 0  # requests sent (and not recorded) before the measured window
    api_key: str = "sk-bench"
    path: str = "/v1/chat/completions"
    prompt: str = DEFAULT_PROMPT
    cpu_pids: tuple[int, ...] = ()
    label: str = ""
    progress: bool = True
    timeout_s: float = 60.0

    def argv(self) -> list[str]:
        args = [
            "--url", self.url, "--model", self.model,
            "--concurrency", str(self.concurrency), "--requests", str(self.requests),
            "--seconds", str(self.seconds), "--mode", self.mode, "--warmup", str(self.warmup),
            "--api-key", self.api_key, "--path", self.path, "--prompt", self.prompt,
            "--label", self.label, "--timeout", str(self.timeout_s), "--json",
        ]  # fmt: skip
        for pid in self.cpu_pids:
            args += ["--cpu-pid", str(pid)]
        if not self.progress:
            args.append("--no-progress")
        return args


@dataclass(slots=True)
class LoadResult:
    """Summary of one measured window; latencies in milliseconds."""

    label: str
    mode: str
    concurrency: int
    sent: int
    ok: int
    statuses: dict[str, int]
    elapsed_s: float
    rps: float
    latency_ms: dict[str, float]
    ttft_ms: dict[str, float] | None
    self_overhead_ms: dict[str, float] | None
    chunks_per_stream: float | None
    server_cpu_s: float | None
    errors: dict[str, int] = field(default_factory=dict)

    @property
    def cpu_ms_per_request(self) -> float | None:
        if self.server_cpu_s is None or not self.sent:
            return None
        return self.server_cpu_s * 1000 / self.sent


def percentile(ordered: Sequence[float], q: float) -> float:
    """Linear-interpolated percentile (q in [0, 100]) of an already sorted sequence."""
    if not ordered:
        return math.nan
    rank = (len(ordered) - 1) * q / 100
    low = math.floor(rank)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (rank - low)


def summarize(values: list[float]) -> dict[str, float] | None:
    if not values:
        return None
    ordered = sorted(values)
    return {
        "p50": round(percentile(ordered, 50), 4),
        "p90": round(percentile(ordered, 90), 4),
        "p99": round(percentile(ordered, 99), 4),
        "mean": round(sum(ordered) / len(ordered), 4),
        "max": round(ordered[-1], 4),
    }


def process_tree_cpu(pids: Sequence[int]) -> float:
    """User + system CPU seconds of the processes and their live children."""
    import psutil

    total = 0.0
    for pid in pids:
        try:
            root = psutil.Process(pid)
            procs = [root, *root.children(recursive=True)]
        except psutil.NoSuchProcess:
            continue
        for proc in procs:
            try:
                times = proc.cpu_times()
            except psutil.NoSuchProcess:
                continue
            total += times.user + times.system
    return total


class _Recorder:
    def __init__(self) -> None:
        self.latency: list[float] = []
        self.ttft: list[float] = []
        self.self_overhead: list[float] = []
        self.chunks: list[int] = []
        self.statuses: Counter[str] = Counter()
        self.errors: Counter[str] = Counter()
        self.done = 0


class _Run:
    """Shared state of one closed-loop run: tickets, deadline, and what was recorded."""

    def __init__(self, spec: LoadSpec, session: Any, limit: int, seconds: float) -> None:
        self.spec = spec
        self.session = session
        self.limit = limit
        self.deadline = time.perf_counter() + seconds if seconds > 0 else math.inf
        self.issued = 0
        self.rec = _Recorder()
        self.url = spec.url.rstrip("/") + spec.path
        self.headers = {
            "Authorization": f"Bearer {spec.api_key}",
            "Content-Type": "application/json",
        }
        messages = [{"role": "user", "content": spec.prompt}]
        self.bodies = {
            stream: json.dumps(
                {"model": spec.model, "messages": messages, "stream": stream}
            ).encode()
            for stream in (False, True)
        }

    def next_ticket(self) -> int | None:
        if (self.limit and self.issued >= self.limit) or time.perf_counter() >= self.deadline:
            return None
        self.issued += 1
        return self.issued

    def wants_stream(self, ticket: int) -> bool:
        mode = self.spec.mode
        return mode == "stream" or (mode == "mixed" and ticket % 2 == 0)

    async def worker(self) -> None:
        while (ticket := self.next_ticket()) is not None:
            await self.one(self.wants_stream(ticket))

    async def one(self, stream: bool) -> None:
        import aiohttp

        rec = self.rec
        started = time.perf_counter()
        try:
            async with self.session.post(
                self.url, data=self.bodies[stream], headers=self.headers
            ) as response:
                status = response.status
                header = response.headers.get(OVERHEAD_HEADER)
                if stream and status == 200:
                    first, chunks, complete = await _read_stream(response.content)
                    if first is not None:
                        rec.ttft.append((first - started) * 1000)
                    rec.chunks.append(chunks)
                    if not complete:
                        status = -1
                else:
                    await response.read()
        except (aiohttp.ClientError, OSError, TimeoutError) as exc:
            rec.errors[type(exc).__name__] += 1
            rec.statuses["error"] += 1
            rec.done += 1
            return
        rec.latency.append((time.perf_counter() - started) * 1000)
        rec.statuses["incomplete" if status == -1 else str(status)] += 1
        if header is not None:
            rec.self_overhead.append(float(header))
        rec.done += 1


async def _read_stream(content: Any) -> tuple[float | None, int, bool]:
    """(time of first content chunk, data chunks seen, saw [DONE])."""
    first: float | None = None
    chunks = 0
    done = False
    async for line in content:
        if not line.startswith(b"data:"):
            continue
        data = line[5:].strip()
        if data == b"[DONE]":
            done = True
            continue
        chunks += 1
        if first is None and _has_content(data):
            first = time.perf_counter()
    return first, chunks, done


def _has_content(data: bytes) -> bool:
    if b'"content"' not in data:
        return False
    try:
        event = json.loads(data)
        delta = event["choices"][0]["delta"]
    except (ValueError, KeyError, IndexError, TypeError):
        return False
    return bool(delta.get("content"))


async def _progress_loop(run: _Run, bar: Any) -> None:
    shown = 0
    while True:
        await asyncio.sleep(0.25)
        if run.limit:
            bar.update(run.rec.done - shown)
            shown = run.rec.done
        else:
            bar.set_postfix_str(f"{run.rec.done} req")
            bar.update(0)


async def _phase(
    spec: LoadSpec, session: Any, limit: int, seconds: float, bar_desc: str | None
) -> tuple[_Run, float]:
    run = _Run(spec, session, limit, seconds)
    bar = None
    ticker = None
    if bar_desc is not None:
        from tqdm import tqdm

        bar = tqdm(total=limit or None, desc=bar_desc, unit="req", file=sys.stderr, leave=False)
        ticker = asyncio.create_task(_progress_loop(run, bar))
    started = time.perf_counter()
    try:
        await asyncio.gather(*(run.worker() for _ in range(spec.concurrency)))
    finally:
        elapsed = time.perf_counter() - started
        if ticker is not None:
            ticker.cancel()
        if bar is not None:
            bar.close()
    return run, elapsed


async def run_load(spec: LoadSpec) -> LoadResult:
    """Warm up, then run the measured window; the result of the measured window."""
    import aiohttp

    if spec.mode not in MODES:
        raise ValueError(f"mode must be one of {MODES}, not {spec.mode!r}")
    connector = aiohttp.TCPConnector(limit=spec.concurrency, keepalive_timeout=60)
    timeout = aiohttp.ClientTimeout(total=spec.timeout_s)
    async with aiohttp.ClientSession(
        connector=connector, timeout=timeout, skip_auto_headers=("User-Agent",)
    ) as session:
        if spec.warmup:
            await _phase(spec, session, spec.warmup, 0, None)
        cpu_before = process_tree_cpu(spec.cpu_pids) if spec.cpu_pids else None
        desc = spec.label or f"{spec.mode} c={spec.concurrency}"
        run, elapsed = await _phase(
            spec, session, spec.requests, spec.seconds, desc if spec.progress else None
        )
        cpu_after = process_tree_cpu(spec.cpu_pids) if spec.cpu_pids else None
    rec = run.rec
    ok = sum(n for status, n in rec.statuses.items() if status == "200")
    return LoadResult(
        label=spec.label,
        mode=spec.mode,
        concurrency=spec.concurrency,
        sent=rec.done,
        ok=ok,
        statuses=dict(rec.statuses),
        elapsed_s=round(elapsed, 4),
        rps=round(rec.done / elapsed, 2) if elapsed > 0 else 0.0,
        latency_ms=summarize(rec.latency) or {},
        ttft_ms=summarize(rec.ttft),
        self_overhead_ms=summarize(rec.self_overhead),
        chunks_per_stream=round(sum(rec.chunks) / len(rec.chunks), 2) if rec.chunks else None,
        server_cpu_s=(
            round(cpu_after - cpu_before, 4)
            if cpu_before is not None and cpu_after is not None
            else None
        ),
        errors=dict(rec.errors),
    )


def result_from_dict(data: dict[str, Any]) -> LoadResult:
    return LoadResult(**data)


def run_subprocess(
    spec: LoadSpec, cpus: set[int] | None = None, python: str = sys.executable
) -> LoadResult:
    """Run `spec` in a fresh `python -m benchmarks.loadgen` process (progress on stderr),
    pinned to `cpus` when given."""
    proc = subprocess.run(
        [python, "-m", "benchmarks.loadgen", *spec.argv()],
        stdout=subprocess.PIPE,
        text=True,
        check=False,
        preexec_fn=pin_to(cpus) if cpus else None,
    )
    lines = proc.stdout.strip().splitlines()
    try:
        return result_from_dict(json.loads(lines[-1]))
    except (IndexError, ValueError, TypeError) as exc:
        tail = proc.stdout[-500:]
        raise RuntimeError(f"loadgen exited with {proc.returncode}: {tail!r}") from exc


def pin_to(cpus: set[int]) -> Any:
    """A `preexec_fn` that pins the child process to `cpus`."""
    wanted = set(cpus)

    def apply() -> None:
        os.sched_setaffinity(0, wanted)

    return apply


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m benchmarks.loadgen", description=__doc__)
    p.add_argument("--url", required=True, help="base URL of the server under test")
    p.add_argument("--model", default="bench-model")
    p.add_argument("--path", default="/v1/chat/completions")
    p.add_argument("--concurrency", "-c", type=int, default=1)
    p.add_argument("--requests", "-n", type=int, default=1000, help="0 = until --seconds")
    p.add_argument("--seconds", type=float, default=0.0, help="duration cap; 0 = none")
    p.add_argument("--mode", choices=MODES, default="plain")
    p.add_argument("--warmup", type=int, default=0)
    p.add_argument("--api-key", default="sk-bench")
    p.add_argument("--prompt", default=DEFAULT_PROMPT)
    p.add_argument("--label", default="")
    p.add_argument("--timeout", type=float, default=60.0, help="per-request timeout (s)")
    p.add_argument("--cpu-pid", type=int, action="append", default=[], help="measure CPU of")
    p.add_argument("--no-progress", action="store_true")
    p.add_argument("--json", action="store_true", help="print only the JSON result")
    args = p.parse_args(argv)
    if args.requests <= 0 and args.seconds <= 0:
        p.error("give --requests or --seconds")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    spec = LoadSpec(
        url=args.url,
        model=args.model,
        concurrency=args.concurrency,
        requests=max(args.requests, 0),
        seconds=args.seconds,
        mode=args.mode,
        warmup=args.warmup,
        api_key=args.api_key,
        path=args.path,
        prompt=args.prompt,
        cpu_pids=tuple(args.cpu_pid),
        label=args.label,
        progress=not args.no_progress,
        timeout_s=args.timeout,
    )
    try:
        import uvloop
    except ImportError:
        result = asyncio.run(run_load(spec))
    else:
        result = uvloop.run(run_load(spec))
    if not args.json:
        lat = result.latency_ms
        print(
            f"{result.sent} requests in {result.elapsed_s:.2f}s: {result.rps:.0f} req/s, "
            f"p50 {lat.get('p50', math.nan):.3f} ms, p99 {lat.get('p99', math.nan):.3f} ms, "
            f"statuses {result.statuses}"
        )
    print(json.dumps(asdict(result)))
    return 0 if result.ok == result.sent else 1


if __name__ == "__main__":
    sys.exit(main())

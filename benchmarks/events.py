"""`flywheel bench events`: the interaction log and kill switches under load.

Three measurements, each side by side for SQLite and Redis in one run:

1. events/s from one process through the gateway's own `EventLog` (bounded queue,
   batched flushes) into each store, and the cost of `publish()` on the request path;
2. the gateway's latency at concurrency 16 with the event log on vs off (two gateway
   processes, same mock upstream, interleaved runs);
3. kill-switch propagation: flip a switch on gateway A's admin API and time until
   gateway B's in-memory copy has it (two processes on one store).

Targets: >= 20k events/s into Redis; p99 difference on vs off <= 1 ms; propagation
p99 <= 1 s. With `--json` the last line is one JSON object with every figure.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx
from prometheus_client import CollectorRegistry
from tqdm import tqdm

from benchmarks.loadgen import LoadResult, LoadSpec, percentile, run_subprocess
from benchmarks.processes import Server, start_mock
from benchmarks.processes import start_gateway as start_process_gateway
from benchmarks.redis_server import RedisServer
from gateway.event_log import EventLog, EventLogMetrics, EventLogSettings
from gateway.events import InteractionEvent, RequestContext
from gateway.store import open_store

API_KEY = "sk-bench"
ADMIN_KEY = "sk-bench-admin"
GATEWAY_YAML = """
server: {{port: {port}, log_level: warning}}
{store_line}
providers:
  mock: {{kind: openai, base_url: "{mock_url}/v1"}}
models:
  bench-model: {{provider: mock, model: bench-model, cost_per_mtok: {{input: 1, output: 2}}}}
tenants:
  bench: {{api_keys_env: BENCH_KEYS}}
admin: {{api_key_env: BENCH_ADMIN}}
"""


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="flywheel bench events",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--events", type=int, default=50_000, help="events per backend")
    parser.add_argument("--requests", type=int, default=3000, help="requests per latency run")
    parser.add_argument("--flips", type=int, default=40, help="kill-switch flips per backend")
    parser.add_argument("--backends", default="sqlite,redis")
    parser.add_argument("--quick", action="store_true", help="tiny counts (smoke test)")
    parser.add_argument("--json", action="store_true", help="last line: one JSON object")
    args = parser.parse_args(argv)
    if args.quick:
        args.events, args.requests, args.flips = 2000, 200, 5
    return args


def sample_event(i: int) -> InteractionEvent:
    """About 1 KB of JSON, like a short chat request with content logging on."""
    return InteractionEvent(
        request_id=f"req_bench_{i:012d}",
        tenant="bench",
        key_id="k",
        user=f"user-{i % 97}",
        ts=time.time(),
        endpoint="chat/completions",
        model="fast",
        route="fast",
        provider="mock",
        upstream_model="mock-small",
        attempts=1,
        status=200,
        latency_ms=12.5,
        upstream_ms=12.0,
        input_tokens=40,
        output_tokens=60,
        cost_usd=1e-5,
        context=RequestContext(input_chars=160, messages=2),
        request={
            "messages": [
                {"role": "system", "content": "You are helpful. " * 8},
                {"role": "user", "content": f"Question number {i}: " + "x" * 200},
            ]
        },
        response={"content": "An answer. " * 30, "finish_reason": "stop"},
    )


async def throughput(url: str, count: int) -> dict[str, float]:
    store = open_store(url)
    await store.start()
    events = [sample_event(i) for i in range(count)]
    log = EventLog(
        store,
        EventLogSettings(queue_size=count, flush_interval_ms=20),
        EventLogMetrics(CollectorRegistry()),
    )
    log.start()
    started = time.perf_counter()
    for event in events:
        log.publish(event)
    publish_s = time.perf_counter() - started
    await log.close(timeout_s=600)
    elapsed = time.perf_counter() - started
    stored = await store.stream_length("events")
    await store.close()
    return {
        "events": count,
        "stored": stored,
        "events_per_s": count / elapsed,
        "publish_us": publish_s / count * 1e6,
        "dropped": log.dropped,
    }


def start_gateway(work: Path, mock: Server, store_url: str | None, name: str) -> Server:
    store_line = f'store: "{store_url}"' if store_url else ""
    config = GATEWAY_YAML.format(port="{port}", store_line=store_line, mock_url=mock.url)
    return start_process_gateway(
        work, name, config, {"BENCH_KEYS": API_KEY, "BENCH_ADMIN": ADMIN_KEY}
    )


def latency_on_off(work: Path, mock: Server, store_url: str, requests: int) -> dict[str, Any]:
    off = start_gateway(work, mock, None, "gateway-logging-off")
    on = start_gateway(work, mock, store_url, "gateway-logging-on")
    try:
        results: dict[str, list[LoadResult]] = {"off": [], "on": []}
        for _ in range(2):  # interleaved, so drift on this shared machine hits both
            for label, server in (("off", off), ("on", on)):
                spec = LoadSpec(
                    url=server.url,
                    model="bench-model",
                    concurrency=16,
                    requests=requests,
                    warmup=200,
                    api_key=API_KEY,
                    label=f"logging {label}",
                    cpu_pids=(server.pid,),
                )
                results[label].append(run_subprocess(spec))
        out: dict[str, Any] = {}
        for label, runs in results.items():
            out[label] = {
                "p50_ms": min(r.latency_ms["p50"] for r in runs),
                "p99_ms": min(r.latency_ms["p99"] for r in runs),
                "rps": max(r.rps for r in runs),
                "cpu_ms_per_request": min(r.cpu_ms_per_request or 0 for r in runs),
                "errors": sum(r.sent - r.ok for r in runs),
            }
        out["p99_difference_ms"] = out["on"]["p99_ms"] - out["off"]["p99_ms"]
        out["p50_difference_ms"] = out["on"]["p50_ms"] - out["off"]["p50_ms"]
        return out
    finally:
        off.stop()
        on.stop()


def propagation(work: Path, mock: Server, store_url: str, flips: int, tag: str) -> dict[str, Any]:
    a = start_gateway(work, mock, store_url, f"gateway-a-{tag}")
    b = start_gateway(work, mock, store_url, f"gateway-b-{tag}")
    headers = {"authorization": f"Bearer {ADMIN_KEY}"}
    samples: list[float] = []
    try:
        with httpx.Client(headers=headers, timeout=5) as client:
            for i in tqdm(range(flips), desc=f"kill-switch flips ({tag})", file=sys.stderr):
                on = i % 2 == 0
                expected = {"global": "on"} if on else {}
                client.post(f"{a.url}/admin/kill", json={"scope": "global", "on": on})
                flipped = time.perf_counter()
                while client.get(f"{b.url}/admin/kill").json()["process"] != expected:
                    if time.perf_counter() - flipped > 5:
                        raise RuntimeError("a kill switch took over 5 s to propagate")
                    time.sleep(0.002)
                samples.append((time.perf_counter() - flipped) * 1000)
                time.sleep(0.05)
    finally:
        a.stop()
        b.stop()
    ordered = sorted(samples)
    return {
        "flips": flips,
        "p50_ms": percentile(ordered, 50),
        "p99_ms": percentile(ordered, 99),
        "max_ms": ordered[-1],
    }


def render(figures: dict[str, Any]) -> str:
    lines = [
        "",
        "Event log throughput (one process, EventLog -> store, ~1 KB events)",
        f"{'backend':<8} {'events':>8} {'stored':>8} {'events/s':>10} {'publish us':>11}",
    ]
    for name, row in figures["throughput"].items():
        lines.append(
            f"{name:<8} {row['events']:>8} {row['stored']:>8} "
            f"{row['events_per_s']:>10,.0f} {row['publish_us']:>11.2f}"
        )
    lat = figures["latency"]
    lines += [
        "",
        f"Gateway latency at concurrency 16, event log on ({lat['store']}) vs off",
        f"{'logging':<8} {'req/s':>8} {'p50 ms':>8} {'p99 ms':>8} {'cpu ms/req':>11}",
    ]
    for label in ("off", "on"):
        row = lat[label]
        lines.append(
            f"{label:<8} {row['rps']:>8,.0f} {row['p50_ms']:>8.2f} {row['p99_ms']:>8.2f} "
            f"{row['cpu_ms_per_request']:>11.3f}"
        )
    lines.append(
        f"difference: p50 {lat['p50_difference_ms']:+.2f} ms, "
        f"p99 {lat['p99_difference_ms']:+.2f} ms"
    )
    lines += [
        "",
        "Kill-switch propagation across two gateway processes",
        f"{'backend':<8} {'flips':>6} {'p50 ms':>8} {'p99 ms':>8} {'max ms':>8}",
    ]
    for name, row in figures["propagation"].items():
        lines.append(
            f"{name:<8} {row['flips']:>6} {row['p50_ms']:>8.1f} {row['p99_ms']:>8.1f} "
            f"{row['max_ms']:>8.1f}"
        )
    lines += ["", "Targets"]
    for name, ok in figures["targets"].items():
        lines.append(f"  {'PASS' if ok else 'FAIL'}  {name}")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    backends = [b.strip() for b in args.backends.split(",") if b.strip()]
    with tempfile.TemporaryDirectory(prefix="flywheel-bench-events-") as tmp:
        work = Path(tmp)
        redis = RedisServer(work / "redis") if "redis" in backends else None
        if redis is not None:
            redis.start()
        urls = {"sqlite": f"sqlite:///{work / 'events.db'}"}
        if redis is not None:
            urls["redis"] = redis.url
        urls = {name: url for name, url in urls.items() if name in backends}
        mock = start_mock(work, None)
        try:
            figures: dict[str, Any] = {"throughput": {}, "propagation": {}}
            for name, url in urls.items():
                print(f"throughput into {name}...", file=sys.stderr)
                figures["throughput"][name] = asyncio.run(throughput(url, args.events))
            latency_store = "redis" if "redis" in urls else next(iter(urls))
            latency_url = urls[latency_store].replace("events.db", "latency.db")
            figures["latency"] = {
                "store": latency_store,
                **latency_on_off(work, mock, latency_url, args.requests),
            }
            for name, url in urls.items():
                url = url.replace("events.db", "kill.db")
                figures["propagation"][name] = propagation(work, mock, url, args.flips, name)
        finally:
            mock.stop()
            if redis is not None:
                redis.stop()
    redis_rate = figures["throughput"].get("redis", {}).get("events_per_s")
    figures["targets"] = {
        "redis >= 20k events/s": redis_rate is not None and redis_rate >= 20_000,
        "logging on vs off: p99 difference <= 1 ms": figures["latency"]["p99_difference_ms"] <= 1,
        "kill-switch propagation p99 <= 1 s": all(
            row["p99_ms"] <= 1000 for row in figures["propagation"].values()
        ),
    }
    print(render(figures))
    if args.json:
        print(json.dumps(figures))
    return 0

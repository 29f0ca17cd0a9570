"""`flywheel bench overhead`: what the gateway adds over calling the upstream directly.

One run starts the mock upstream (zero latency, 20-token answers), one gateway worker,
and LiteLLM's proxy server (one worker, its own virtualenv, see litellm_proxy.py), and
drives each with the closed-loop load generator (loadgen.py, its own process) at each
concurrency, non-streaming and streaming. Direct and gateway phases run back to back
per (mode, concurrency) so that "added latency" compares like with like. A last phase
sends --memory-requests mixed requests through the gateway and compares its resident
memory before and after.

By default (two or more CPUs) the servers under test run pinned to the last CPU and the
load generator and mock upstream to the others, so that one worker means one core.
The table, then the targets with PASS/FAIL, go to stdout; with --json the last stdout
line is one JSON object with the same figures.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import platform
import sys
import tempfile
import time
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

from benchmarks import litellm_proxy
from benchmarks.loadgen import LoadResult, LoadSpec, run_subprocess
from benchmarks.overhead_report import MODES, Check, evaluate, render_summary, render_table
from benchmarks.processes import Server, clean_env, free_port, start_mock, start_server

MODEL = "bench-model"
API_KEY = "sk-bench"

GATEWAY_YAML = """\
server: {{port: {port}, log_level: {log_level}}}
providers:
  mock: {{kind: openai, base_url: "{mock_url}/v1"}}
models:
  {model}: {{provider: mock, model: {model}, cost_per_mtok: {{input: 1, output: 2}}}}
tenants:
  bench: {{api_keys_env: BENCH_KEYS}}
"""


# --------------------------------------------------------------------------- options


@dataclass(frozen=True, slots=True)
class Settings:
    concurrency: tuple[int, ...]
    requests: int | None  # per phase; None = 2000 at c=1, 5000 above
    warmup: int
    litellm: bool
    litellm_seconds: float
    memory_requests: int
    memory_concurrency: int
    log_levels: tuple[str, ...]
    pin: bool
    quick: bool
    json: bool
    save: Path | None
    strict: bool

    def requests_for(self, concurrency: int) -> int:
        if self.requests is not None:
            return self.requests
        return 2000 if concurrency == 1 else 5000


def parse_args(argv: list[str] | None) -> Settings:
    p = argparse.ArgumentParser(
        prog="flywheel bench overhead",
        description="Gateway overhead vs the upstream directly and vs LiteLLM's proxy.",
    )
    p.add_argument("--requests", type=int, help="requests per phase (default 2000 at c=1, 5000)")
    p.add_argument("--concurrency", default="1,16,64", help="comma-separated (default 1,16,64)")
    p.add_argument("--warmup", type=int, default=200, help="warm-up requests per phase")
    p.add_argument("--no-litellm", action="store_true", help="skip LiteLLM's proxy")
    p.add_argument("--litellm-seconds", type=float, default=10.0, help="cap per LiteLLM phase")
    p.add_argument("--memory-requests", type=int, default=100_000, help="0 skips the phase")
    p.add_argument("--memory-concurrency", type=int, default=16)
    p.add_argument(
        "--log-levels",
        default="warning,info",
        help="gateway log levels to measure; the first is the one the targets judge",
    )
    p.add_argument("--no-pin", action="store_true", help="do not pin processes to CPUs")
    p.add_argument("--quick", action="store_true", help="tiny counts (smoke test)")
    p.add_argument("--json", action="store_true", help="last stdout line: the JSON result")
    p.add_argument("--save", type=Path, help="also write the JSON result to this file")
    p.add_argument("--strict", action="store_true", help="exit 1 when a target fails")
    a = p.parse_args(argv)
    levels = tuple(x.strip() for x in a.log_levels.split(",") if x.strip()) or ("warning",)
    try:
        concurrency = tuple(int(x) for x in a.concurrency.split(",") if x.strip())
    except ValueError:
        p.error(f"--concurrency: not a list of integers: {a.concurrency!r}")
    if not concurrency or min(concurrency) < 1:
        p.error("--concurrency: give positive integers")
    settings = Settings(
        concurrency=concurrency,
        requests=a.requests,
        warmup=a.warmup,
        litellm=not a.no_litellm,
        litellm_seconds=a.litellm_seconds,
        memory_requests=max(a.memory_requests, 0),
        memory_concurrency=a.memory_concurrency,
        log_levels=levels,
        pin=not a.no_pin,
        quick=a.quick,
        json=a.json,
        save=a.save,
        strict=a.strict,
    )
    if not a.quick:
        return settings
    return replace(
        settings,
        concurrency=concurrency if a.concurrency != "1,16,64" else (1, 16),
        requests=a.requests or 100,
        warmup=10,
        litellm_seconds=min(a.litellm_seconds, 2.0),
        memory_requests=min(settings.memory_requests, 300),
        log_levels=levels[:1],
    )


# --------------------------------------------------------------------------- processes


@dataclass(slots=True)
class CpuPlan:
    """Which CPUs the servers under test and the load side (loadgen, mock) run on."""

    server: set[int] | None
    client: set[int] | None

    @classmethod
    def choose(cls, pin: bool) -> CpuPlan:
        available = sorted(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else []
        if not pin or len(available) < 2:
            return cls(None, None)
        return cls({available[-1]}, set(available[:-1]))

    def describe(self) -> str:
        if self.server is None:
            return "not pinned"
        client = sorted(self.client or [])
        return f"servers under test on CPU {sorted(self.server)}, loadgen+mock on {client}"


def start_gateway(work: Path, mock: Server, log_level: str, cpus: set[int] | None) -> Server:
    port = free_port()
    home = work / f"gateway-{log_level}"
    home.mkdir(exist_ok=True)
    config = home / "flywheel.yaml"
    config.write_text(
        GATEWAY_YAML.format(port=port, log_level=log_level, mock_url=mock.url, model=MODEL)
    )
    flags = f"--config {config} --port {port} --workers 1"
    argv = [sys.executable, "-m", "gateway", "serve", *flags.split()]
    return start_server(
        f"gateway ({log_level})",
        argv,
        port=port,
        ready_path="/readyz",
        log_path=home / "gateway.log",
        env=clean_env(BENCH_KEYS=API_KEY),
        cwd=home,
        cpus=cpus,
        timeout_s=60,
    )


def start_litellm(work: Path, mock: Server, cpus: set[int] | None) -> tuple[Server, str]:
    """The running proxy and its version; raises LiteLLMUnavailable with the reason."""
    home = work / "litellm"
    home.mkdir(exist_ok=True)
    launch = litellm_proxy.prepare(mock.url, [MODEL], free_port(), home)
    try:
        server = start_server(
            "litellm proxy",
            launch.argv,
            port=launch.port,
            ready_path=launch.ready_path,
            log_path=launch.log_path,
            env=launch.env,
            cwd=home,
            cpus=cpus,
            timeout_s=180,
        )
    except RuntimeError as exc:
        raise litellm_proxy.LiteLLMUnavailable(str(exc).splitlines()[0]) from exc
    return server, launch.version


# --------------------------------------------------------------------------- measuring


@dataclass(slots=True)
class Row:
    """One phase: a target at one mode and concurrency, compared with the direct phase."""

    target: str
    mode: str
    concurrency: int
    result: LoadResult
    direct: LoadResult | None = None

    def figures(self) -> dict[str, Any]:
        r, d = self.result, self.direct
        lat, ttft, own = r.latency_ms, r.ttft_ms or {}, r.self_overhead_ms or {}
        dttft = (d.ttft_ms or {}) if d else {}
        cpu = r.cpu_ms_per_request
        return {
            "target": self.target,
            "mode": self.mode,
            "concurrency": self.concurrency,
            "requests": r.sent,
            "ok": r.ok,
            "statuses": r.statuses,
            "rps": r.rps,
            "p50_ms": lat.get("p50"),
            "p99_ms": lat.get("p99"),
            "added_p50_ms": _diff(lat.get("p50"), d.latency_ms.get("p50") if d else None),
            "added_p99_ms": _diff(lat.get("p99"), d.latency_ms.get("p99") if d else None),
            "ttft_p50_ms": ttft.get("p50"),
            "ttft_p99_ms": ttft.get("p99"),
            "added_ttft_p50_ms": _diff(ttft.get("p50"), dttft.get("p50")),
            "self_overhead_p50_ms": own.get("p50"),
            "self_overhead_p99_ms": own.get("p99"),
            "cpu_ms_per_request": round(cpu, 4) if cpu is not None else None,
            "chunks_per_stream": r.chunks_per_stream,
        }


def _diff(a: float | None, b: float | None) -> float | None:
    return round(a - b, 4) if a is not None and b is not None else None


@dataclass(slots=True)
class Bench:
    """One run: settings, CPU plan, scratch directory, and what has been measured."""

    settings: Settings
    cpus: CpuPlan
    work: Path
    rows: list[Row] = field(default_factory=list)
    memory: dict[str, Any] | None = None
    litellm: dict[str, Any] = field(default_factory=dict)

    def measure(
        self, target: str, server: Server, mode: str, concurrency: int, *, seconds: float = 0.0
    ) -> LoadResult:
        s = self.settings
        warmup = s.warmup if not seconds else max(s.warmup // 10, 5)
        spec = LoadSpec(
            url=server.url,
            model=MODEL,
            concurrency=concurrency,
            requests=s.requests_for(concurrency),
            seconds=seconds,
            mode=mode,
            warmup=warmup,
            api_key=API_KEY,
            cpu_pids=(server.pid,),
            label=f"{target:<16} {mode:<6} c={concurrency:<3}",
        )
        return run_subprocess(spec, self.cpus.client)

    def direct(self, mode: str, concurrency: int) -> LoadResult | None:
        for row in self.rows:
            if row.target == "direct" and (row.mode, row.concurrency) == (mode, concurrency):
                return row.result
        return None

    def grid(self, mock: Server, gateways: dict[str, Server]) -> None:
        """Direct, then each gateway, back to back for every mode and concurrency."""
        for mode in MODES:
            for c in self.settings.concurrency:
                direct = self.measure("direct", mock, mode, c)
                self.rows.append(Row("direct", mode, c, direct))
                for target, gateway in gateways.items():
                    result = self.measure(target, gateway, mode, c)
                    self.rows.append(Row(target, mode, c, result, direct))

    def litellm_grid(self, mock: Server) -> None:
        try:
            server, version = start_litellm(self.work, mock, self.cpus.server)
        except litellm_proxy.LiteLLMUnavailable as exc:
            self.litellm = {"available": False, "reason": str(exc)}
            print(f"litellm: unavailable ({exc})", file=sys.stderr)
            return
        self.litellm = {"available": True, "version": version}
        try:
            for mode in MODES:
                for c in self.settings.concurrency:
                    seconds = self.settings.litellm_seconds
                    result = self.measure("litellm", server, mode, c, seconds=seconds)
                    self.rows.append(Row("litellm", mode, c, result, self.direct(mode, c)))
        finally:
            server.stop()

    def memory_phase(self, gateway: Server, segments: int = 5) -> None:
        """RSS after a warm-up, then after each of `segments` slices of N mixed requests."""
        s = self.settings
        c = s.memory_concurrency
        base = LoadSpec(url=gateway.url, model=MODEL, concurrency=c, mode="mixed", api_key=API_KEY)
        warmup = max(s.warmup, 10) * 10
        run_subprocess(
            replace(base, requests=warmup, label=f"memory warm-up c={c}"), self.cpus.client
        )
        before = rss_bytes(gateway.pid)
        samples: list[dict[str, Any]] = [{"requests": 0, "rss_mb": round(before / 2**20, 2)}]
        sent = ok = 0
        cpu_s = elapsed_s = 0.0
        for i in range(segments):
            n = s.memory_requests // segments + (s.memory_requests % segments if i == 0 else 0)
            label = f"memory {sent + n}/{s.memory_requests} mixed c={c}"
            spec = replace(base, requests=n, cpu_pids=(gateway.pid,), label=label)
            result = run_subprocess(spec, self.cpus.client)
            sent, ok = sent + result.sent, ok + result.ok
            cpu_s += result.server_cpu_s or 0.0
            elapsed_s += result.elapsed_s
            rss = rss_bytes(gateway.pid)
            samples.append(
                {
                    "requests": sent,
                    "rss_mb": round(rss / 2**20, 2),
                    "p50_ms": result.latency_ms.get("p50"),
                    "p99_ms": result.latency_ms.get("p99"),
                    "rps": result.rps,
                }
            )
        after = rss_bytes(gateway.pid)
        self.memory = {
            "requests": sent,
            "ok": ok,
            "concurrency": c,
            "mode": "mixed",
            "rss_before_mb": round(before / 2**20, 2),
            "rss_after_mb": round(after / 2**20, 2),
            "ratio": round(after / before, 4) if before else None,
            "rps": round(sent / elapsed_s, 2) if elapsed_s else None,
            "cpu_ms_per_request": round(cpu_s * 1000 / sent, 4) if sent else None,
            "samples": samples,
        }


def rss_bytes(pid: int) -> int:
    import psutil

    root = psutil.Process(pid)
    return sum(p.memory_info().rss for p in (root, *root.children(recursive=True)))


def machine() -> dict[str, Any]:
    model = ""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return {
        "cpus": os.cpu_count(),
        "cpu_model": model,
        "platform": platform.platform(),
        "python": platform.python_version(),
        "load_avg_at_start": [round(x, 2) for x in os.getloadavg()],
    }


# --------------------------------------------------------------------------- main


def run(settings: Settings, work: Path) -> dict[str, Any]:
    cpus = CpuPlan.choose(settings.pin)
    bench = Bench(settings, cpus, work)
    started = time.monotonic()
    info = machine()
    print(f"bench overhead: {cpus.describe()}; scratch {work}", file=sys.stderr)
    mock = start_mock(work, cpus.client)
    gateways: dict[str, Server] = {}
    try:
        for level in settings.log_levels:
            name = "gateway" if level == settings.log_levels[0] else f"gateway/{level}-log"
            gateways[name] = start_gateway(work, mock, level, cpus.server)
        bench.grid(mock, gateways)
        if settings.memory_requests:
            bench.memory_phase(gateways["gateway"])
        for gateway in gateways.values():
            gateway.stop()
        if settings.litellm:
            bench.litellm_grid(mock)
    finally:
        for server in (*gateways.values(), mock):
            server.stop()
    order = {"direct": 0, "gateway": 1, "litellm": 9}
    rows = sorted(
        bench.rows, key=lambda r: (MODES.index(r.mode), r.concurrency, order.get(r.target, 5))
    )
    figures = [row.figures() for row in rows]
    checks, ratios = evaluate(figures, bench.memory, "gateway")
    return {
        "kind": "flywheel-bench-overhead",
        "date": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "machine": info,
        "cpu_plan": cpus.describe(),
        "settings": {
            "concurrency": list(settings.concurrency),
            "requests": {c: settings.requests_for(c) for c in settings.concurrency},
            "warmup": settings.warmup,
            "litellm_seconds": settings.litellm_seconds,
            "log_levels": list(settings.log_levels),
            "memory_requests": settings.memory_requests,
            "mock": "zero latency, 20 output tokens (20 content chunks per stream)",
        },
        "litellm": bench.litellm or {"available": False, "reason": "skipped (--no-litellm)"},
        "rows": figures,
        "memory": bench.memory,
        "ratios": ratios,
        "targets": [asdict(c) for c in checks],
        "all_ok": all(f["ok"] == f["requests"] and f["requests"] > 0 for f in figures)
        and (bench.memory is None or bench.memory["ok"] == bench.memory["requests"]),
        "duration_s": round(time.monotonic() - started, 1),
    }


def main(argv: list[str] | None = None) -> int:
    settings = parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="flywheel-bench-") as tmp:
        try:
            report = run(settings, Path(tmp))
        except RuntimeError as exc:
            print(f"bench overhead: {exc}", file=sys.stderr)
            return 2
    checks = [Check(**c) for c in report["targets"]]
    print(render_table(report["rows"]))
    print(render_summary(checks, report["ratios"], report["memory"], report["litellm"]))
    print(
        f"\n{report['date']}, {report['machine']['cpus']} CPUs "
        f"({report['machine']['cpu_model']}), {report['cpu_plan']}, "
        f"{report['duration_s']} s"
    )
    if settings.save is not None:
        settings.save.parent.mkdir(parents=True, exist_ok=True)
        settings.save.write_text(json.dumps(report, indent=2) + "\n")
    if settings.json:
        print(json.dumps(report))
    if not report["all_ok"]:
        print("bench overhead: some requests failed (see the ok column)", file=sys.stderr)
        return 1
    if settings.strict and any(c.status == "FAIL" for c in checks):
        return 1
    return 0

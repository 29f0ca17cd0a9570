"""The report of `flywheel bench overhead`: targets checked against the figures, the
table and the summary. Kept apart from the orchestration in overhead.py."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

# Targets for one gateway worker (the numbers).
ADDED_P50_MS = 1.0
ADDED_P99_MS = 3.0
TTFT_ADDED_MS = 1.0
CPU_MS_PER_REQUEST = 1.0
LITELLM_RATIO = 20.0
RSS_GROWTH = 1.10
MODES = ("plain", "stream")


# --------------------------------------------------------------------------- report


@dataclass(frozen=True, slots=True)
class Check:
    name: str
    value: float | None
    limit: float
    unit: str
    status: str  # PASS | FAIL | SKIP
    detail: str = ""


def _check(
    name: str,
    value: float | None,
    limit: float,
    unit: str,
    *,
    at_least: bool = False,
    detail: str = "",
) -> Check:
    if value is None:
        return Check(name, None, limit, unit, "SKIP", detail)
    ok = value >= limit if at_least else value <= limit
    return Check(name, round(value, 4), limit, unit, "PASS" if ok else "FAIL", detail)


def _value(row: dict[str, Any] | None, key: str) -> float | None:
    if row is None or row.get(key) is None:
        return None
    return float(row[key])


def _find(figures: list[dict[str, Any]], target: str, mode: str, c: int) -> dict[str, Any] | None:
    for f in figures:
        if (f["target"], f["mode"], f["concurrency"]) == (target, mode, c):
            return f
    return None


def evaluate(
    figures: list[dict[str, Any]], memory: dict[str, Any] | None, primary: str
) -> tuple[list[Check], list[dict[str, Any]]]:
    """The issue's targets, judged on the primary gateway (the first log level)."""
    checks: list[Check] = []
    for mode in MODES:
        one = _find(figures, primary, mode, 1)
        p50, p99 = _value(one, "added_p50_ms"), _value(one, "added_p99_ms")
        checks.append(_check(f"added latency p50, {mode}, c=1", p50, ADDED_P50_MS, "ms"))
        checks.append(_check(f"added latency p99, {mode}, c=1", p99, ADDED_P99_MS, "ms"))
    ttft = _value(_find(figures, primary, "stream", 1), "added_ttft_p50_ms")
    checks.append(_check("time-to-first-token overhead p50, c=1", ttft, TTFT_ADDED_MS, "ms"))

    gateway = [f for f in figures if f["target"] == primary]
    measured = [f for f in gateway if f["cpu_ms_per_request"] is not None]
    worst = max(measured, key=lambda f: float(f["cpu_ms_per_request"]), default=None)
    checks.append(
        _check(
            "gateway CPU per request (worst phase)",
            _value(worst, "cpu_ms_per_request"),
            CPU_MS_PER_REQUEST,
            "ms",
            detail=f"{worst['mode']} c={worst['concurrency']}" if worst else "",
        )
    )

    ratios = []
    for f in gateway:
        peer = _find(figures, "litellm", f["mode"], f["concurrency"])
        if peer is not None and peer["rps"]:
            ratios.append(
                {
                    "mode": f["mode"],
                    "concurrency": f["concurrency"],
                    "gateway_rps": f["rps"],
                    "litellm_rps": peer["rps"],
                    "ratio": round(f["rps"] / peer["rps"], 2),
                }
            )
    low = min(ratios, key=lambda r: float(r["ratio"]), default=None)
    checks.append(
        _check(
            "requests/s vs LiteLLM (lowest ratio)",
            _value(low, "ratio"),
            LITELLM_RATIO,
            "x",
            at_least=True,
            detail=f"{low['mode']} c={low['concurrency']}" if low else "not measured",
        )
    )
    detail = "not measured"
    if memory is not None:
        detail = (
            f"{memory['rss_before_mb']} -> {memory['rss_after_mb']} MiB over "
            f"{memory['requests']} requests"
        )
    checks.append(
        _check(
            "resident memory after/before", _value(memory, "ratio"), RSS_GROWTH, "x", detail=detail
        )
    )
    return checks, ratios


def _fmt(value: Any, digits: int = 2) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:.{digits}f}"
    return str(value)


def render_table(figures: list[dict[str, Any]]) -> str:
    head = [
        "target",
        "mode",
        "conc",
        "req/s",
        "p50 ms",
        "p99 ms",
        "added p50",
        "added p99",
        "ttft p50",
        "added ttft",
        "self p50/p99",
        "cpu ms/req",
        "ok",
    ]
    lines = ["| " + " | ".join(head) + " |", "|" + "|".join("---" for _ in head) + "|"]
    for f in figures:
        own = (
            f"{_fmt(f['self_overhead_p50_ms'], 3)}/{_fmt(f['self_overhead_p99_ms'], 3)}"
            if f["self_overhead_p50_ms"] is not None
            else "-"
        )
        cells = [
            f["target"],
            f["mode"],
            str(f["concurrency"]),
            _fmt(f["rps"], 0),
            _fmt(f["p50_ms"]),
            _fmt(f["p99_ms"]),
            _fmt(f["added_p50_ms"]),
            _fmt(f["added_p99_ms"]),
            _fmt(f["ttft_p50_ms"]),
            _fmt(f["added_ttft_p50_ms"]),
            own,
            _fmt(f["cpu_ms_per_request"], 3),
            f"{f['ok']}/{f['requests']}",
        ]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def render_summary(
    checks: list[Check],
    ratios: list[dict[str, Any]],
    memory: dict[str, Any] | None,
    litellm: dict[str, Any],
) -> str:
    lines = ["", "Targets (one gateway worker):"]
    for c in checks:
        bound = ">=" if c.unit == "x" and "LiteLLM" in c.name else "<="
        value = "-" if c.value is None else f"{c.value:g} {c.unit}"
        extra = f"  ({c.detail})" if c.detail else ""
        lines.append(f"  [{c.status}] {c.name}: {value} (target {bound} {c.limit:g}){extra}")
    if ratios:
        lines.append("Gateway req/s / LiteLLM req/s:")
        lines += [
            f"  {r['mode']:<6} c={r['concurrency']:<3} {r['gateway_rps']:.0f} / "
            f"{r['litellm_rps']:.0f} = {r['ratio']:.1f}x"
            for r in ratios
        ]
    if litellm.get("available"):
        lines.append(f"litellm: {litellm['version']}")
    elif litellm:
        lines.append(f"litellm: unavailable ({litellm.get('reason')})")
    if memory:
        lines.append(
            f"Memory: RSS {memory['rss_before_mb']} MiB -> {memory['rss_after_mb']} MiB after "
            f"{memory['requests']} mixed requests at c={memory['concurrency']} "
            f"(x{memory['ratio']})"
        )
        steps = ", ".join(
            f"{x['requests']}: {x['rss_mb']} MiB"
            + (f" (p99 {x['p99_ms']:.1f} ms)" if x.get("p99_ms") is not None else "")
            for x in memory.get("samples", [])
        )
        lines.append(f"  RSS by requests sent: {steps}")
    return "\n".join(lines)

"""Smoke test of `flywheel bench overhead`: real mock upstream and gateway, tiny counts."""

from __future__ import annotations

import json

import pytest

from benchmarks import overhead
from benchmarks.loadgen import percentile, summarize


def test_percentile_interpolates() -> None:
    values = [float(x) for x in range(1, 101)]
    assert percentile(values, 50) == pytest.approx(50.5)
    assert percentile(values, 99) == pytest.approx(99.01)
    assert percentile([3.0], 99) == 3.0
    assert summarize([]) is None


def test_quick_run_reports_every_phase(capsys: pytest.CaptureFixture[str]) -> None:
    status = overhead.main(["--quick", "--no-litellm", "--concurrency", "1,4", "--json"])
    out = capsys.readouterr().out
    assert status == 0, out
    report = json.loads(out.strip().splitlines()[-1])

    assert {"rows", "targets", "ratios", "memory", "litellm", "machine", "all_ok"} <= set(report)
    assert report["all_ok"] is True
    assert report["litellm"]["available"] is False

    phases = {(r["target"], r["mode"], r["concurrency"]) for r in report["rows"]}
    expected = {
        (target, mode, c)
        for target in ("direct", "gateway")
        for mode in ("plain", "stream")
        for c in (1, 4)
    }
    assert phases == expected
    for row in report["rows"]:
        assert row["requests"] > 0 and row["ok"] == row["requests"], row
        assert row["rps"] > 0 and row["p50_ms"] > 0 and row["p99_ms"] >= row["p50_ms"]
        assert row["cpu_ms_per_request"] is not None
        if row["mode"] == "stream":
            assert row["ttft_p50_ms"] is not None and row["chunks_per_stream"] >= 20
        if row["target"] == "gateway":
            assert row["added_p50_ms"] is not None
            assert row["self_overhead_p50_ms"] is not None  # x-flywheel-overhead-ms

    memory = report["memory"]
    assert memory["ok"] == memory["requests"] > 0
    assert memory["rss_before_mb"] > 0 and memory["ratio"] > 0

    names = [t["name"] for t in report["targets"]]
    assert any("added latency p50" in n for n in names)
    litellm_check = next(t for t in report["targets"] if "LiteLLM" in t["name"])
    assert litellm_check["status"] == "SKIP"
    assert "| gateway | stream | 4 |" in out

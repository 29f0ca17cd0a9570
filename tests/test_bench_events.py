"""Smoke test of `flywheel bench events`: a tiny run completes and reports every figure."""

from __future__ import annotations

import json

import pytest

from benchmarks.events import main
from benchmarks.redis_server import available


@pytest.mark.skipif(not available(), reason="redis-server is not installed")
def test_quick_run_reports_every_figure(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--quick", "--json"]) == 0
    figures = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    for backend in ("sqlite", "redis"):
        row = figures["throughput"][backend]
        assert row["stored"] == row["events"] == 2000 and row["events_per_s"] > 0
        assert figures["propagation"][backend]["p99_ms"] < 5000
    assert figures["latency"]["on"]["errors"] == figures["latency"]["off"]["errors"] == 0
    assert set(figures["targets"]) == {
        "redis >= 20k events/s",
        "logging on vs off: p99 difference <= 1 ms",
        "kill-switch propagation p99 <= 1 s",
    }

"""`flywheel bench routing-sim`: a short run reports every figure and learns something."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import yaml

from benchmarks.routing_sim import DEFAULT_SCENARIO, load_scenario, main, recovery
from gateway.cli import main as flywheel

POLICY_KEYS = {"reward_vs_oracle", "cost_vs_strongest", "recovery_requests", "cumulative_regret"}


def short_scenario(tmp_path: Path, **changes: object) -> Path:
    """The default environment, 2k requests, its drift moved to request 1000."""
    data = yaml.safe_load(DEFAULT_SCENARIO.read_text())
    data.update(requests=2000, drift=[{"at": 1000, "arm": "openai/gpt-4o-mini", "quality": -0.25}])
    data["recovery"] = {"window": 200, "tolerance": 0.05}
    data.update(changes)
    path = tmp_path / "short.yaml"
    path.write_text(yaml.safe_dump(data))
    return path


def test_short_run_reports_every_figure(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = short_scenario(tmp_path)
    args = ["--scenario", str(path), "--json", "--no-plot", "--quiet", "--timing-samples", "300"]
    assert main(args) == 0
    out = capsys.readouterr().out
    figures = json.loads(out.strip().splitlines()[-1])
    assert figures["requests"] == 2000 and figures["change_at"] == 1000
    policies = figures["policies"]
    assert set(policies) == {"oracle", "static", "random", "egreedy", "linucb", "lints"}
    for row in policies.values():
        assert set(row) == POLICY_KEYS
        assert isinstance(row["reward_vs_oracle"], float)
        assert isinstance(row["cost_vs_strongest"], float)
        assert isinstance(row["cumulative_regret"], float)
        assert row["recovery_requests"] is None or isinstance(row["recovery_requests"], int)
    assert policies["oracle"]["reward_vs_oracle"] == 1.0
    assert policies["oracle"]["recovery_requests"] == 0
    assert figures["best"] in policies and figures["best"] != "oracle"
    assert policies["linucb"]["reward_vs_oracle"] > policies["random"]["reward_vs_oracle"]
    assert policies["linucb"]["cumulative_regret"] < policies["random"]["cumulative_regret"]
    assert set(figures["choose_us"]) == {"egreedy", "linucb", "lints"}
    assert figures["update_events_per_s"] > 0 and figures["featurize_us"] > 0
    assert "linucb" in out and "Targets" in out


def test_plot_is_written(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    pytest.importorskip("matplotlib")
    png = tmp_path / "regret.png"
    path = short_scenario(tmp_path, requests=500)
    args = ["--scenario", str(path), "--plot", str(png), "--quiet", "--timing-samples", "50"]
    assert flywheel(["bench", "routing-sim", *args]) == 0
    assert png.read_bytes().startswith(b"\x89PNG")
    assert str(png) in capsys.readouterr().out


def test_bad_scenarios_name_the_problem(tmp_path: Path) -> None:
    with pytest.raises(SystemExit, match="latency_weigth"):
        load_scenario(short_scenario(tmp_path, reward={"latency_weigth": 1.0}))
    with pytest.raises(SystemExit, match="unknown arms"):
        load_scenario(short_scenario(tmp_path, drift=[{"at": 5, "arm": "nope"}]))
    assert load_scenario(DEFAULT_SCENARIO).name == "default"


def test_recovery_counts_until_the_ratio_holds_for_a_window(tmp_path: Path) -> None:
    scenario = load_scenario(short_scenario(tmp_path))  # window 200, tolerance 5%
    oracle = np.ones(3000)
    assert recovery(oracle, oracle, 1000, scenario) == 0
    slow = oracle.copy()
    slow[1000:1100] = 0.5  # the trailing window holds > 20 of these (< 95%) until 1279
    assert recovery(slow, oracle, 1000, scenario) == 279
    slow[2500:2550] = 0.0  # a later dip, once recovered, does not count
    assert recovery(slow, oracle, 1000, scenario) == 279
    never = oracle.copy()
    never[1000:] = 0.5
    assert recovery(never, oracle, 1000, scenario) is None
    assert recovery(oracle, oracle, None, scenario) is None

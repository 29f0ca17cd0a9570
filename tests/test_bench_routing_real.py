"""`flywheel bench routing-real --quick`: the harness end to end (real gateway, learner and
mock upstream; the shipped public outcome data). Sanity only: no quality claim on 400 prompts."""

from __future__ import annotations

import json
import math
import subprocess
import sys

from benchmarks.routing_real import DATA, SOURCES, load


def test_the_shipped_subset_holds_only_the_licensed_sources() -> None:
    import gzip

    with gzip.open(DATA, "rt", encoding="utf-8") as f:
        sources = {json.loads(line)["source"] for line in f}
    assert sources == set(SOURCES)
    rows = load("gemini")
    assert len(rows) == 6340 and {r.dataset for r in rows} == {
        "gsm8k", "math-l5", "cruxeval-o", "mmlu-pro"}  # fmt: skip
    assert all(r.cost_weak > 0 for r in rows)  # estimated costs: a few rows' terse answers
    assert sum(r.cost_strong for r in rows) > 10 * sum(r.cost_weak for r in rows)


def test_quick_run_streams_through_the_real_loop_and_publishes() -> None:
    done = subprocess.run(
        [sys.executable, "-m", "gateway", "bench", "routing-real", "--quick", "--json", "--quiet"],
        capture_output=True, text=True, timeout=300, check=True,
    )  # fmt: skip
    result = json.loads(done.stdout.strip().splitlines()[-1])
    seed = result["seeds"][0]
    assert result["prompts"] == 400 and seed["n_eval"] == 200
    assert seed["publications"] > 0
    online = seed["online"]
    assert 0 <= online["strong_share"] <= 1 and 0 < online["cost_rel"] <= 1.0 + 1e-9
    numbers = [online["quality"], seed["pick_minus_random"]["mean"], seed["offline"]["area"]]
    assert all(math.isfinite(v) for v in numbers)
    assert seed["oracle"]["quality"] >= seed["always_strong"]["quality"]
    assert "pick - random at same share" in done.stdout

"""`flywheel bench routing-real`: learned routing replayed on public per-prompt outcomes.

Data: benchmarks/data/routing_real/outcomes.jsonl.gz (ZeroEval GSM8K, MATH-L5, CRUXEval-O and
MMLU-Pro; see its README). Default pair gemini-1.5-pro (strong) vs gemini-1.5-flash (weak);
`--pair llama`: llama-3.1-70b vs 8b. Per seed, the prompts are shuffled (seeded) and streamed
through a REAL gateway and learner (the mock upstream answers; the models `strong` and `weak`
are priced in the data's cost ratio) from an empty learner: the openai SDK sends each prompt
to `auto` (a `bandit` rule, quality-target mode by default: >= 0.95 x strong's quality), reads
`x-flywheel-route` and `x-flywheel-request-id`, and posts feedback 1/0, the recorded outcome
of the routed model, to /v1/feedback. `--mode reward` uses the weighted reward instead.

Reported over the second half of each stream (quality = mean outcome, cost = the data's USD,
relative to always-strong): the online router vs always-strong, always-weak, random at the
same strong share, the oracle (the cheapest model that is right) and an offline router
(logistic regressions of each model's correctness on hashed word n-grams + dataset, fitted on
the first half; its threshold swept for the curve). Pick quality minus random at the same
share is the mean of per-request differences with a 95% bootstrap interval. Curve area: mean
quality over relative cost from always-weak to always-strong (random's is the straight line).
Cost at 95%: the least relative cost reaching 0.95 x strong's quality. Publications per
quarter of the stream show whether learning freezes; three seeds check agreement of the
strong share. `--quick`: 400 prompts, one seed (a smoke test of the harness).
"""

from __future__ import annotations

import argparse
import gzip
import json
import sqlite3
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import openai
from tqdm import tqdm

from benchmarks.processes import (
    Server,
    clean_env,
    free_port,
    start_gateway,
    start_mock,
    start_server,
)

DATA = Path(__file__).parent / "data" / "routing_real" / "outcomes.jsonl.gz"
PLOT = Path(__file__).parent / "routing_real_curves.png"
PAIRS = {
    "gemini": ("gemini-1.5-pro", "gemini-1.5-flash"),
    "llama": ("llama-3.1-70b-instruct", "llama-3.1-8b-instruct"),
}
SOURCES = ("zeroeval", "mmlu-pro")
KEY, ADMIN = "sk-routing-real", "sk-routing-real-admin"
TARGET = 0.95


@dataclass(frozen=True)
class Row:
    prompt: str
    dataset: str
    strong: float  # outcome 0/1
    weak: float
    cost_strong: float  # USD
    cost_weak: float


def load(pair: str) -> list[Row]:
    strong, weak = PAIRS[pair]
    rows = []
    with gzip.open(DATA, "rt", encoding="utf-8") as f:
        for line in f:
            raw = json.loads(line)
            if raw["source"] not in SOURCES or not {strong, weak} <= set(raw["outcomes"]):
                continue
            rows.append(
                Row(
                    raw["prompt"],
                    raw["dataset"].split("/")[0],
                    raw["outcomes"][strong],
                    raw["outcomes"][weak],
                    raw["cost"][strong],
                    raw["cost"][weak],
                )
            )
    return rows


def policy_yaml(mode: str, publish_every: int) -> str:
    objective = (
        ", objective: {reference: strong, min_quality_ratio: 0.95}" if mode == "target" else ""
    )
    cost_weight = 0 if mode == "target" else 200
    return f"""tenant: bench
classifier_tier: fast
learning:
  algorithm: egreedy
  exploration: 0.0
  min_explore: 0.05
  max_shift: 0.25
  publish_every: {publish_every}
  ope_tolerance: 0.02
  min_ess: 30
  initial_explore: 1.0
  reward: {{horizon_s: 1.0, default: null, retry_window_s: 0, cost_weight: {cost_weight}}}
rules:
  - name: learned
    route: {{strategy: bandit, chain: [strong, weak]{objective}}}
"""


def gateway_yaml(work: Path, mock: Server, ratio: float) -> str:
    return (
        f'store: "sqlite:///{work / "flywheel.db"}"\n'
        "events: {flush_interval_ms: 20}\n"
        "feedback: {rate_per_minute: 1000000, bytes_per_minute: 1000000000}\n"
        f'policies_dir: "{work / "policies"}"\n'
        f'providers:\n  up: {{kind: openai, base_url: "{mock.url}/v1"}}\n'
        "models:\n"
        f"  strong: {{provider: up, model: mock-strong, cost_per_mtok: {{input: {ratio:.4f}, "
        f"output: {ratio:.4f}}}}}\n"
        "  weak: {provider: up, model: mock-weak, cost_per_mtok: {input: 1.0, output: 1.0}}\n"
        "tenants:\n  bench: {api_keys_env: RR_KEYS}\n"
        "admin: {api_key_env: RR_ADMIN}\n"
    )


@dataclass
class Served:
    route: list[str]
    sent_at: list[float]
    publications: list[float]  # times of the learner's publications


def replay(rows: list[Row], args: argparse.Namespace, work: Path) -> Served:
    """Stream `rows` through a fresh gateway + learner; what was routed, and when."""
    (work / "policies").mkdir(parents=True)
    (work / "policies" / "bench.yaml").write_text(policy_yaml(args.mode, args.publish_every))
    ratio = float(np.mean([r.cost_strong for r in rows]) / np.mean([r.cost_weak for r in rows]))
    mock = start_mock(work, None)
    servers = [mock]
    try:
        gateway = start_gateway(
            work, "gateway", gateway_yaml(work, mock, ratio), {"RR_KEYS": KEY, "RR_ADMIN": ADMIN}
        )
        servers.append(gateway)
        config = work / "gateway" / "flywheel.yaml"
        port = free_port()
        argv = [
            sys.executable,
            "-m",
            "gateway",
            "learner",
            "run",
            "--config",
            str(config),
            "--state-dir",
            str(work / "learner"),
            "--metrics-port",
            str(port),
        ]
        servers.append(
            start_server(
                "learner",
                argv,
                port=port,
                ready_path="/metrics",
                log_path=work / "learner.log",
                env=clean_env(RR_KEYS=KEY, RR_ADMIN=ADMIN),
                timeout_s=60,
            )
        )
        time.sleep(1.5)  # the initial exploring publication reaches the gateway within ~1 s
        client = openai.OpenAI(base_url=f"{gateway.url}/v1", api_key=KEY, max_retries=2)
        http = httpx.Client(base_url=gateway.url, headers={"authorization": f"Bearer {KEY}"})
        route = [""] * len(rows)
        sent = [0.0] * len(rows)

        def one(i: int) -> None:
            sent[i] = time.time()
            raw = client.chat.completions.with_raw_response.create(
                model="auto", messages=[{"role": "user", "content": rows[i].prompt}], max_tokens=16
            )
            route[i] = raw.headers["x-flywheel-route"]
            good = rows[i].strong if route[i] == "strong" else rows[i].weak
            http.post(
                "/v1/feedback",
                json={
                    "request_id": raw.headers["x-flywheel-request-id"],
                    "kind": "thumbs",
                    "value": "up" if good else "down",
                },
            ).raise_for_status()

        with ThreadPoolExecutor(args.concurrency) as pool:
            for start in tqdm(
                range(0, len(rows), args.concurrency),
                desc="replay",
                unit_scale=args.concurrency,
                disable=args.quiet,
            ):
                list(pool.map(one, range(start, min(start + args.concurrency, len(rows)))))
                if args.pace_ms:
                    time.sleep(args.pace_ms / 1000)
        time.sleep(2.0)  # the last horizon and publication
    finally:
        for server in reversed(servers):
            server.stop()
    with sqlite3.connect(work / "flywheel.db") as db:
        stamps = [
            ts
            for (ts,) in db.execute(
                "SELECT ts FROM audit WHERE actor = 'learner' AND action = 'learner.publish' "
                "ORDER BY ts"
            )
        ]
    return Served(route, sent, stamps)


def offline_scores(train: list[Row], test: list[Row]) -> np.ndarray:
    """Predicted P(strong right) - P(weak right) per test row, from models fitted on `train`."""
    from scipy.sparse import hstack
    from sklearn.feature_extraction.text import HashingVectorizer
    from sklearn.linear_model import LogisticRegression
    from sklearn.preprocessing import OneHotEncoder

    words = HashingVectorizer(n_features=2**14, ngram_range=(1, 2), alternate_sign=False, norm="l2")
    sets = OneHotEncoder(handle_unknown="ignore").fit([[r.dataset] for r in train])

    def features(rows: list[Row]) -> Any:
        lengths = np.log1p([[len(r.prompt)] for r in rows]) / 10
        return hstack(
            [
                words.transform([r.prompt for r in rows]),
                sets.transform([[r.dataset] for r in rows]),
                lengths,
            ]
        ).tocsr()

    X_train, X_test = features(train), features(test)
    out = np.zeros(len(test))
    for sign, name in ((1.0, "strong"), (-1.0, "weak")):
        y = np.array([getattr(r, name) for r in train])
        model = LogisticRegression(C=1.0, max_iter=2000).fit(X_train, y)
        out += sign * model.predict_proba(X_test)[:, 1]
    return out


def bootstrap(values: np.ndarray, seed: int, reps: int = 2000) -> tuple[float, float]:
    rng = np.random.default_rng(seed)
    means = values[rng.integers(0, len(values), (reps, len(values)))].mean(axis=1)
    low, high = np.quantile(means, [0.025, 0.975])
    return float(low), float(high)


def curve_area(cost: np.ndarray, quality: np.ndarray, low: float) -> float:
    """Mean quality over relative cost in [low, 1] (the curve made monotone, ends clamped)."""
    order = np.argsort(cost)
    xs, ys = cost[order], np.maximum.accumulate(quality[order])
    grid = np.linspace(low, 1.0, 201)
    return float(np.interp(grid, xs, ys).mean())


def cost_at(cost: np.ndarray, quality: np.ndarray, target: float) -> float | None:
    ok = cost[quality >= target]
    return float(ok.min()) if len(ok) else None


def evaluate(rows: list[Row], served: Served, seed: int) -> dict[str, Any]:
    half = len(rows) // 2
    test, train, routes = rows[half:], rows[:half], served.route[half:]
    s = np.array([r.strong for r in test])
    w = np.array([r.weak for r in test])
    cs, cw = np.array([r.cost_strong for r in test]), np.array([r.cost_weak for r in test])
    strong_cost = cs.mean()
    picked = np.array([rt == "strong" for rt in routes])
    share = float(picked.mean())
    quality = np.where(picked, s, w)
    cost = np.where(picked, cs, cw)
    random_q = share * s + (1 - share) * w
    gain = quality - random_q
    oracle = np.where(w >= s, w, s)
    oracle_cost = np.where(w >= s, cw, cs)
    scores = offline_scores(train, test)
    sweep_q, sweep_c = [], []
    for t in np.quantile(scores, np.linspace(0, 1, 41)):
        to_strong = scores > t
        sweep_q.append(float(np.where(to_strong, s, w).mean()))
        sweep_c.append(float(np.where(to_strong, cs, cw).mean() / strong_cost))
    sweep_q += [float(s.mean()), float(w.mean())]
    sweep_c += [1.0, float(cw.mean() / strong_cost)]
    low = float(cw.mean() / strong_cost)
    shares = np.linspace(0, 1, 41)
    rand_q = shares * s.mean() + (1 - shares) * w.mean()
    rand_c = (shares * cs.mean() + (1 - shares) * cw.mean()) / strong_cost
    target = TARGET * float(s.mean())
    times = np.array(served.sent_at)
    edges = np.quantile(times, [0, 0.25, 0.5, 0.75, 1.0])
    pubs = np.array(served.publications)
    per_quarter = [
        int(((pubs >= edges[i]) & (pubs < edges[i + 1] + (1e9 if i == 3 else 0))).sum())
        for i in range(4)
    ]
    low_ci, high_ci = bootstrap(gain, seed)
    return {
        "n_eval": len(test),
        "online": {
            "quality": float(quality.mean()),
            "cost_rel": float(cost.mean() / strong_cost),
            "strong_share": share,
        },
        "always_strong": {"quality": float(s.mean()), "cost_rel": 1.0},
        "always_weak": {"quality": float(w.mean()), "cost_rel": low},
        "oracle": {
            "quality": float(oracle.mean()),
            "cost_rel": float(oracle_cost.mean() / strong_cost),
        },
        "random_same_share": {
            "quality": float(random_q.mean()),
            "cost_rel": float((share * cs + (1 - share) * cw).mean() / strong_cost),
        },
        "pick_minus_random": {"mean": float(gain.mean()), "ci95": [low_ci, high_ci]},
        "quality_vs_strong": float(quality.mean() / s.mean()),
        "offline": {
            "area": curve_area(np.array(sweep_c), np.array(sweep_q), low),
            "cost_rel_at_95": cost_at(np.array(sweep_c), np.array(sweep_q), target),
            "curve": [[c, q] for c, q in zip(sweep_c, sweep_q, strict=True)],
        },
        "random": {
            "area": curve_area(rand_c, rand_q, low),
            "cost_rel_at_95": cost_at(rand_c, rand_q, target),
        },
        "publications": len(served.publications),
        "publications_per_quarter": per_quarter,
    }


def table(results: dict[str, Any]) -> str:
    first = results["seeds"][0]
    lines = [
        f"pair {results['pair']} ({results['strong']} vs {results['weak']}), mode "
        f"{results['mode']}, {results['prompts']} prompts, eval on the second half "
        f"({first['n_eval']}), seeds {results['seed_list']}",
        f"{'router':<26}{'quality':>9}{'cost/strong':>13}{'strong share':>14}",
    ]
    for name in ("always_strong", "always_weak", "oracle", "random_same_share"):
        v = first[name]
        lines.append(f"{name:<26}{v['quality']:>9.4f}{v['cost_rel']:>13.3f}{'':>14}")
    for i, seed in enumerate(results["seeds"]):
        o = seed["online"]
        lines.append(
            f"{'online seed ' + str(results['seed_list'][i]):<26}{o['quality']:>9.4f}"
            f"{o['cost_rel']:>13.3f}{o['strong_share']:>14.3f}"
        )
    for i, seed in enumerate(results["seeds"]):
        g = seed["pick_minus_random"]
        lines.append(
            f"seed {results['seed_list'][i]}: pick - random at same share "
            f"{g['mean']:+.4f} [{g['ci95'][0]:+.4f}, {g['ci95'][1]:+.4f}]; quality "
            f"{seed['quality_vs_strong']:.3f} x strong; publications "
            f"{seed['publications']} per quarter {seed['publications_per_quarter']}"
        )
    off, rnd = first["offline"], first["random"]
    lines.append(
        f"curve area: offline router {off['area']:.4f}, random {rnd['area']:.4f}; cost "
        f"at 95% of strong: offline {_fmt(off['cost_rel_at_95'])}, random "
        f"{_fmt(rnd['cost_rel_at_95'])}"
    )
    lines.append(f"strong share across seeds: spread {results['share_spread']:.3f}")
    return "\n".join(lines)


def _fmt(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.3f}"


def plot(results: dict[str, Any], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    first = results["seeds"][0]
    fig, ax = plt.subplots(figsize=(6.4, 4.6))
    curve = np.array(sorted(first["offline"]["curve"]))
    ax.plot(curve[:, 0], curve[:, 1], "-", color="tab:blue", label="offline router (1st half)")
    ends = [first["always_weak"], first["always_strong"]]
    ax.plot(
        [e["cost_rel"] for e in ends],
        [e["quality"] for e in ends],
        "--",
        color="gray",
        label="random",
    )
    for name, marker in (("always_strong", "s"), ("always_weak", "v"), ("oracle", "*")):
        ax.plot(first[name]["cost_rel"], first[name]["quality"], marker, label=name)
    for seed in results["seeds"]:
        ax.plot(seed["online"]["cost_rel"], seed["online"]["quality"], "o", color="tab:red")
    ax.plot([], [], "o", color="tab:red", label="online (per seed)")
    ax.axhline(TARGET * first["always_strong"]["quality"], color="k", lw=0.5, ls=":")
    ax.set_xlabel("cost / always-strong")
    ax.set_ylabel("quality (mean outcome), second half")
    ax.set_title(f"routing-real: {results['strong']} vs {results['weak']}")
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="flywheel bench routing-real",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--pair", choices=sorted(PAIRS), default="gemini")
    parser.add_argument("--mode", choices=("target", "reward"), default="target")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--limit", type=int, default=0, help="prompts per stream (0: all)")
    parser.add_argument("--quick", action="store_true", help="400 prompts, one seed")
    parser.add_argument("--concurrency", type=int, default=8)
    parser.add_argument("--publish-every", type=int, default=200)
    parser.add_argument("--pace-ms", type=float, default=0.0)
    parser.add_argument("--plot", type=Path, default=PLOT)
    parser.add_argument("--json", action="store_true", help="print one JSON object last")
    parser.add_argument("--quiet", action="store_true")
    args = parser.parse_args(argv)
    if args.quick:
        args.limit, args.seeds, args.publish_every = args.limit or 400, args.seeds[:1], 50
    rows = load(args.pair)
    seeds = []
    for seed in args.seeds:
        order = np.random.default_rng(seed).permutation(len(rows))
        stream = [rows[i] for i in order[: args.limit or len(rows)]]
        with tempfile.TemporaryDirectory(prefix="routing-real-") as tmp:
            served = replay(stream, args, Path(tmp))
        seeds.append(evaluate(stream, served, seed))
    shares = [s["online"]["strong_share"] for s in seeds]
    strong, weak = PAIRS[args.pair]
    results = {
        "pair": args.pair,
        "strong": strong,
        "weak": weak,
        "mode": args.mode,
        "prompts": len(stream),
        "seed_list": args.seeds,
        "seeds": seeds,
        "share_spread": float(max(shares) - min(shares)),
    }
    print(table(results))
    if args.plot and not args.quick:
        plot(results, args.plot)
        print(f"plot: {args.plot}")
    if args.json:
        print(json.dumps(results))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

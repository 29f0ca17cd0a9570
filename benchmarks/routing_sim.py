"""`flywheel bench routing-sim`: contextual-bandit routing against a simulated environment.

The environment (routing_sim_scenarios/default.yaml, or `--scenario FILE`) has arms whose
quality, cost and latency depend on intent, complexity tier and tools; rewards are noisy,
arrive some requests late, and a drift event changes an arm mid-run. Policies, over the
same requests and the same noise:

- oracle: the best arm per request, knowing the true expected rewards;
- static: the one arm with the best total expected reward in hindsight;
- random: uniform over arms;
- egreedy, linucb, lints: learner/bandits.py classes fed the delayed rewards, publishing
  every `publish_every` requests through JSON (`to_params` -> `to_json` -> `from_json`,
  with the scenario's safeguards), the gateway's `featurize` + `choose` deciding.

Figures (expected, noiseless rewards of the chosen arms): `reward_vs_oracle` = total reward /
the oracle's; `cost_vs_strongest` = total cost / the cost of always choosing the strongest
arm (highest mean quality over the run); `cumulative_regret` = sum of oracle minus policy
reward; `recovery_requests` = requests after the first drift event until the policy's
reward over the trailing `window` requests is back within `tolerance` of the oracle's over
the same requests and stays there for `window` requests: the smallest r >= 0 such that
policy(t-window, t] >= (1 - tolerance) * oracle(t-window, t] for every t in
[change + r, change + r + window); null if no such r leaves a full window before the end
(and for every policy when no change falls inside the run). `best`: the non-oracle policy
with the highest average reward. `decision us`: mean featurize + choose time in the run.
Also timed on one core: `choose()` p50/p99 per algorithm on the final parameters, and the
learner's `update` throughput. The last line with `--json` is one JSON object:
{"requests", "policies": {name: {reward_vs_oracle, cost_vs_strongest, recovery_requests,
cumulative_regret}}, "best", ...extra keys (choose_us, update_events_per_s, targets...)}.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections import deque
from pathlib import Path
from typing import Any, Literal

import numpy as np
import yaml
from pydantic import BaseModel, ConfigDict, Field
from tqdm import tqdm

from gateway.policy.bandit_features import FloatArray, featurize
from gateway.policy.bandit_scorer import BanditParams, choose
from learner.bandits import EpsilonGreedy, LinearBandit, LinearThompson, LinUCB, Safeguards

DEFAULT_SCENARIO = Path(__file__).parent / "routing_sim_scenarios" / "default.yaml"
Tier = Literal["low", "medium", "high"]
TIERS: tuple[Tier, ...] = ("low", "medium", "high")
BANDITS: dict[str, type[LinearBandit]] = {
    "egreedy": EpsilonGreedy,
    "linucb": LinUCB,
    "lints": LinearThompson,
}


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Quality(Strict):  # additive offsets
    base: float
    intent: dict[str, float] = {}
    tier: dict[Tier, float] = {}
    tools: float = 0.0


class Scaled(Strict):  # multipliers of base
    base: float = Field(ge=0)
    intent: dict[str, float] = {}
    tier: dict[Tier, float] = {}


class Arm(Strict):
    quality: Quality
    cost_usd: Scaled
    latency_s: Scaled


class Drift(Strict):
    at: int = Field(ge=0)
    arm: str
    quality: float = 0.0  # added
    cost: float = 1.0  # multiplied
    latency: float = 1.0  # multiplied


class Reward(Strict):
    cost_weight: float = Field(0.0, ge=0)
    cost_ref_usd: float = Field(0.01, gt=0)
    latency_weight: float = Field(0.0, ge=0)
    latency_ref_s: float = Field(10.0, gt=0)


class Feedback(Strict):
    noise: float = Field(0.1, ge=0)
    delay: tuple[int, int] = (0, 0)
    rate: float = Field(1.0, gt=0, le=1)


class Contexts(Strict):
    intents: dict[str, float] = Field(min_length=1)
    complexity: dict[str, tuple[float, float]] = {"default": (2.0, 3.0)}
    tools: dict[str, float] = {}


class Learner(Strict):
    publish_every: int = Field(200, ge=1)
    min_explore: float = Field(0.02, ge=0, le=1)
    max_shift: float = Field(0.3, gt=0, le=1)
    reward_floor: float = Field(0.0, ge=0, le=1)
    discount: float = Field(0.997, gt=0, le=1)
    ridge: float = Field(1.0, gt=0)
    reference_contexts: int = Field(1000, ge=1)
    exploration: dict[str, float] = {}


class Recovery(Strict):
    window: int = Field(500, ge=1)
    tolerance: float = Field(0.05, ge=0, lt=1)


class Scenario(Strict):
    name: str
    requests: int = Field(20_000, ge=100)
    seed: int = 7
    reward: Reward = Reward()
    feedback: Feedback = Feedback()
    contexts: Contexts
    arms: dict[str, Arm] = Field(min_length=2)
    drift: list[Drift] = []
    learner: Learner = Learner()
    recovery: Recovery = Recovery()


def load_scenario(path: Path) -> Scenario:
    try:
        scenario = Scenario.model_validate(yaml.safe_load(path.read_text()))
    except (OSError, yaml.YAMLError, ValueError) as exc:
        raise SystemExit(f"routing-sim: bad scenario {path}: {exc}") from None
    if unknown := [d.arm for d in scenario.drift if d.arm not in scenario.arms]:
        raise SystemExit(f"routing-sim: {path}: drift names unknown arms {unknown}")
    return scenario


class Environment:
    """The scenario's requests: contexts, true expected rewards R [T, K], costs, noise."""

    def __init__(self, s: Scenario, requests: int, seed: int) -> None:
        rng, ctx, T = np.random.default_rng(seed), s.contexts, requests
        self.arms, names = tuple(s.arms), list(ctx.intents)
        shares = np.array(list(ctx.intents.values()))
        intent = rng.choice(len(names), size=T, p=shares / shares.sum())
        default = ctx.complexity.get("default", (2.0, 3.0))
        beta = np.array([ctx.complexity.get(n, default) for n in names])[intent]
        complexity = rng.beta(beta[:, 0], beta[:, 1])
        tier = np.searchsorted([0.35, 0.65], complexity, side="right")
        p_tools = [ctx.tools.get(n, ctx.tools.get("default", 0.0)) for n in names]
        tools = rng.random(T) < np.array(p_tools)[intent]
        chars = np.exp(rng.normal(5.0 + 3.0 * complexity, 0.6)).astype(int)
        messages = 1 + rng.poisson(0.5 + 2.0 * complexity)
        self.contexts = [
            {"intent": names[i], "complexity": float(c), "input_chars": int(n),
             "messages": int(m), "has_tools": bool(t), "has_images": names[i] == "multimodal"}
            for i, c, n, m, t in zip(intent, complexity, chars, messages, tools, strict=True)
        ]  # fmt: skip

        def table(spec: Quality | Scaled) -> FloatArray:
            add = isinstance(spec, Quality)
            by_intent = np.array([spec.intent.get(n, 0.0 if add else 1.0) for n in names])
            by_tier = np.array([spec.tier.get(t, 0.0 if add else 1.0) for t in TIERS])
            if isinstance(spec, Quality):
                values = spec.base + by_intent[intent] + by_tier[tier] + spec.tools * tools
            else:
                values = spec.base * by_intent[intent] * by_tier[tier]
            return np.asarray(values, dtype=np.float64)

        Q = np.stack([table(arm.quality) for arm in s.arms.values()], axis=1)
        self.cost = np.stack([table(arm.cost_usd) for arm in s.arms.values()], axis=1)
        L = np.stack([table(arm.latency_s) for arm in s.arms.values()], axis=1)
        for d in s.drift:
            k, after = self.arms.index(d.arm), slice(d.at, None)
            Q[after, k] += d.quality
            self.cost[after, k] *= d.cost
            L[after, k] *= d.latency
        w = s.reward
        penalty = w.cost_weight * self.cost / w.cost_ref_usd
        self.R = np.clip(Q - penalty - w.latency_weight * L / w.latency_ref_s, 0.0, 1.0)
        self.strongest = int(Q.mean(axis=0).argmax())
        noise = rng.normal(0.0, s.feedback.noise, self.R.shape)
        self.observed = np.clip(self.R + noise, 0.0, 1.0)
        self.delay = rng.integers(s.feedback.delay[0], s.feedback.delay[1] + 1, size=T)
        self.has_feedback = rng.random(T) < s.feedback.rate
        self.change = min((d.at for d in s.drift if d.at < T), default=None)


def run_bandit(
    env: Environment, s: Scenario, name: str, seed: int, bar: tqdm[Any]
) -> tuple[np.ndarray, float, BanditParams]:
    """Route every request with one bandit; returns arms [T], seconds deciding, last params."""
    cfg = s.learner
    exploration = cfg.exploration.get(name)
    learner = BANDITS[name](env.arms, exploration, ridge=cfg.ridge, discount=cfg.discount)
    guard = Safeguards(cfg.min_explore, cfg.max_shift, cfg.reward_floor)
    recent: deque[FloatArray] = deque(maxlen=cfg.reference_contexts)
    T = len(env.contexts)
    due: list[list[int]] = [[] for _ in range(T + int(env.delay.max()) + 1)]
    arms, xs = np.zeros(T, dtype=np.int64), np.zeros((T, len(learner.features)))
    rng, deciding = np.random.default_rng(seed), 0.0
    params = BanditParams.from_json(learner.to_params(f"{name}-0", guard).to_json())
    for t, context in enumerate(env.contexts):
        for past in due[t]:
            learner.update(xs[past], int(arms[past]), float(env.observed[past, arms[past]]))
        if t and t % cfg.publish_every == 0:
            published = learner.to_params(f"{name}-{t}", guard, np.array(recent), params)
            params = BanditParams.from_json(published.to_json())
        started = time.perf_counter()
        x = featurize(context)
        arm = choose(params, x, rng).arm_index
        deciding += time.perf_counter() - started
        arms[t], xs[t] = arm, x
        recent.append(x)
        if env.has_feedback[t]:
            due[t + int(env.delay[t])].append(t)
        if t % 1000 == 999:
            bar.update(1000)
    return arms, deciding, params


def recovery(policy: FloatArray, oracle: FloatArray, change: int | None, s: Scenario) -> int | None:
    """Requests from the change until the trailing-window reward ratio stays within tolerance
    for a full window (module docstring); None when that never happens within the run."""
    if change is None or change >= len(policy):
        return None
    window, tolerance = s.recovery.window, s.recovery.tolerance

    def trailing(r: FloatArray) -> FloatArray:
        total = np.concatenate(([0.0], np.cumsum(r)))
        ends = np.arange(change, len(r)) + 1
        result: FloatArray = total[ends] - total[np.maximum(ends - window, 0)]
        return result

    bad = np.flatnonzero(trailing(policy) < (1.0 - tolerance) * trailing(oracle))
    n = len(policy) - change
    for start in (0, *(bad + 1)):
        following = bad[np.searchsorted(bad, start) :]
        if (following[0] if len(following) else n) - start >= window:
            return int(start)
    return None


def timings(
    env: Environment, s: Scenario, finals: dict[str, BanditParams], samples: int
) -> dict[str, Any]:
    """choose() p50/p99 per algorithm, featurize mean, and `update` events/s, on one core."""
    X = np.array([featurize(c) for c in env.contexts[:samples]])
    rng, result = np.random.default_rng(0), {}
    for name, params in finals.items():
        times = []
        for x in X:
            started = time.perf_counter_ns()
            choose(params, x, rng)
            times.append(time.perf_counter_ns() - started)
        p50, p99 = np.percentile(times, [50, 99]) / 1e3
        result[name] = {"p50": round(float(p50), 2), "p99": round(float(p99), 2)}
    started = time.perf_counter_ns()
    for context in env.contexts[:samples]:
        featurize(context)
    featurize_us = (time.perf_counter_ns() - started) / samples / 1e3
    learner, rewards = LinUCB(env.arms, discount=s.learner.discount), env.observed[:samples]
    arms = rng.integers(0, len(env.arms), samples)
    started = time.perf_counter_ns()
    for x, arm, r in zip(X, arms, rewards[np.arange(samples), arms], strict=True):
        learner.update(x, int(arm), float(r))
    per_s = samples / ((time.perf_counter_ns() - started) / 1e9)
    return {
        "choose_us": result,
        "featurize_us": round(featurize_us, 2),
        "update_events_per_s": round(per_s),
    }


def simulate(s: Scenario, requests: int, seed: int, quiet: bool, timing: int) -> dict[str, Any]:
    env = Environment(s, requests, seed)
    T, rows = requests, np.arange(requests)
    oracle = env.R.argmax(axis=1)
    chosen: dict[str, np.ndarray] = {
        "oracle": oracle,
        "static": np.full(T, int(env.R.sum(axis=0).argmax())),
        "random": np.random.default_rng(seed + 1).integers(0, len(env.arms), T),
    }
    deciding: dict[str, float | None] = dict.fromkeys(chosen)
    finals: dict[str, BanditParams] = {}
    with tqdm(
        total=T // 1000 * 1000 * len(BANDITS),
        desc="routing-sim",
        unit="req",
        file=sys.stderr,
        disable=quiet,
    ) as bar:
        for name in BANDITS:
            chosen[name], seconds, finals[name] = run_bandit(env, s, name, seed + 2, bar)
            deciding[name] = round(seconds / T * 1e6, 2)
    best_reward = env.R[rows, oracle]
    strongest_cost = float(env.cost[:, env.strongest].sum())
    policies, avg, curves = {}, {}, {}
    for name, arms in chosen.items():
        reward = env.R[rows, arms]
        curves[name] = np.cumsum(best_reward - reward)
        avg[name] = round(float(reward.mean()), 4)
        policies[name] = {
            "reward_vs_oracle": round(float(reward.sum() / best_reward.sum()), 4),
            "cost_vs_strongest": round(float(env.cost[rows, arms].sum()) / strongest_cost, 4),
            "recovery_requests": recovery(reward, best_reward, env.change, s),
            "cumulative_regret": round(float(curves[name][-1]), 2),
        }
    best = max((n for n in policies if n != "oracle"), key=lambda n: avg[n])
    measured = timings(env, s, finals, min(timing, T))
    vs_oracle = [float(policies[n]["reward_vs_oracle"] or 0) for n in BANDITS]
    recovered = [r for n in BANDITS if isinstance(r := policies[n]["recovery_requests"], int)]
    targets = {
        "best bandit >= 95% of oracle reward": max(vs_oracle) >= 0.95,
        "recovery <= 2000 requests": env.change is None or min(recovered, default=10**9) <= 2000,
        "update >= 10k events/s": measured["update_events_per_s"] >= 10_000,
        "choose p50 <= 50 us": all(v["p50"] <= 50 for v in measured["choose_us"].values()),
    }
    return {
        "requests": T,
        "policies": policies,
        "best": best,
        "scenario": s.name,
        "change_at": env.change,
        "arms": list(env.arms),
        "strongest": env.arms[env.strongest],
        "avg_reward": avg,
        "decision_us": deciding,
        **measured,
        "targets": targets,
        "_curves": curves,
    }


def render(figures: dict[str, Any]) -> str:
    lines = [
        f"routing-sim: scenario {figures['scenario']}, {figures['requests']} requests, "
        f"arms {', '.join(figures['arms'])} (strongest {figures['strongest']}), "
        f"change at {figures['change_at']}",
        "",
        f"{'policy':<9}{'avg reward':>11}{'vs oracle':>11}{'cost vs strongest':>19}"
        f"{'recovery':>10}{'cum. regret':>13}{'decision us':>13}",
    ]
    for name, p in figures["policies"].items():
        us = figures["decision_us"][name]
        recovery = p["recovery_requests"]
        lines.append(
            f"{name:<9}{figures['avg_reward'][name]:>11.4f}{p['reward_vs_oracle']:>11.4f}"
            f"{p['cost_vs_strongest']:>19.4f}{'never' if recovery is None else recovery:>10}"
            f"{p['cumulative_regret']:>13.1f}{'-' if us is None else f'{us:.1f}':>13}"
        )
    lines += ["", f"best: {figures['best']}", f"featurize: {figures['featurize_us']:.2f} us"]
    for name, t in figures["choose_us"].items():
        lines.append(f"choose() {name}: p50 {t['p50']:.1f} us, p99 {t['p99']:.1f} us")
    lines.append(f"learner update: {figures['update_events_per_s']:,.0f} events/s (one core)")
    lines += ["", "Targets"]
    lines += [f"  {'PASS' if ok else 'FAIL'}  {name}" for name, ok in figures["targets"].items()]
    return "\n".join(lines)


def plot(figures: dict[str, Any], path: Path) -> str:
    try:
        import matplotlib
    except ImportError:
        return "no plot: matplotlib is not installed (pip install 'flywheel[bench]')"

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(8, 5))
    for name, curve in figures["_curves"].items():
        ax.plot(curve, label=name)
    if figures["change_at"] is not None:
        ax.axvline(figures["change_at"], color="grey", linestyle="--", label="change")
    ax.set(
        xlabel="request",
        ylabel="cumulative regret vs oracle",
        title=f"routing-sim: {figures['scenario']}",
    )
    ax.legend()
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return f"cumulative regret curves: {path}"


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="flywheel bench routing-sim",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--scenario", type=Path, default=DEFAULT_SCENARIO, help="YAML file")
    parser.add_argument("--requests", type=int, help="override the scenario's request count")
    parser.add_argument("--seed", type=int, help="override the scenario's seed")
    parser.add_argument(
        "--plot", type=Path, default=Path("benchmarks/results/routing_sim_regret.png"), help="PNG"
    )
    parser.add_argument("--no-plot", action="store_true", help="skip the PNG")
    parser.add_argument("--timing-samples", type=int, default=20_000, help="for choose/update")
    parser.add_argument("--quiet", action="store_true", help="no progress bar")
    parser.add_argument("--json", action="store_true", help="last line: one JSON object")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    scenario = load_scenario(args.scenario)
    requests = args.requests or scenario.requests
    seed = scenario.seed if args.seed is None else args.seed
    figures = simulate(scenario, requests, seed, args.quiet, args.timing_samples)
    note = "no plot (--no-plot)" if args.no_plot else plot(figures, args.plot)
    figures["plot"] = str(args.plot) if note.startswith("cumulative") else None
    print(render(figures))
    print(note)
    if args.json:
        print(json.dumps({k: v for k, v in figures.items() if not k.startswith("_")}))
    return 0

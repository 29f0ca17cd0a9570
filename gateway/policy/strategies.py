"""Order a rule's candidate chain by its strategy, and say how likely the choice was.

Every strategy returns the chain to try in order (the dispatcher falls back along it)
and the propensity of the first pick, so any policy can later be evaluated off-policy.

- first: as written (propensity 1).
- weighted: the first pick sampled by weight, sticky by (tenant, rule, user) so a user
  keeps their arm; the rest follow in order.
- lowest_latency: by the live latency EWMA of each model; models never measured go
  first, in written order, so every candidate gets measured.
- lowest_cost: by estimated cost (prompt estimate x input price + expected answer x
  output price), keeping only models whose latency EWMA meets the SLA.
- bandit: the learner's published arm scores when there are any and no kill switch or
  flag says otherwise; until then the static chain (the safeguard policy).
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass, field

from gateway.catalog import ModelRoute


@dataclass
class LatencyTracker:
    """Exponentially weighted moving average of each model's latency, in seconds."""

    alpha: float = 0.2
    ewma: dict[str, float] = field(default_factory=dict)

    def observe(self, model: str, seconds: float) -> None:
        previous = self.ewma.get(model)
        self.ewma[model] = (
            seconds if previous is None else (previous + self.alpha * (seconds - previous))
        )

    def get(self, model: str) -> float | None:
        return self.ewma.get(model)


def sticky_unit(*parts: str) -> float:
    """A stable position in [0, 1) for the given key parts."""
    digest = hashlib.blake2b("\x00".join(parts).encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big") / 2**64


@dataclass(frozen=True, slots=True)
class Ordered:
    chain: tuple[ModelRoute, ...]
    propensity: float
    note: str
    version: str | None = None  # the bandit parameters' version, when they decided


def first(chain: Sequence[ModelRoute]) -> Ordered:
    return Ordered(tuple(chain), 1.0, "as written")


def weighted(chain: Sequence[ModelRoute], weights: Sequence[float], key: str) -> Ordered:
    total = sum(weights)
    point = sticky_unit(key) * total
    cumulative = 0.0
    pick = len(chain) - 1
    for index, weight in enumerate(weights):
        cumulative += weight
        if point < cumulative:
            pick = index
            break
    rest = [route for i, route in enumerate(chain) if i != pick]
    return Ordered(
        (chain[pick], *rest),
        weights[pick] / total,
        f"sampled {chain[pick].name} (weight {weights[pick] / total:.2f})",
    )


def lowest_latency(chain: Sequence[ModelRoute], latency: LatencyTracker) -> Ordered:
    unmeasured = [r for r in chain if latency.get(r.name) is None]
    measured = sorted(
        (r for r in chain if latency.get(r.name) is not None),
        key=lambda r: latency.get(r.name) or 0.0,
    )
    ordered = (*unmeasured, *measured)
    return Ordered(
        ordered,
        1.0,
        "by latency EWMA: " + ", ".join(f"{r.name}={_ms(latency.get(r.name))}" for r in ordered),
    )


def _ms(seconds: float | None) -> str:
    return "unmeasured" if seconds is None else f"{seconds * 1000:.0f}ms"


def estimated_cost(route: ModelRoute, input_tokens: int, output_tokens: int) -> float:
    return route.cost_usd(input_tokens, output_tokens)


def lowest_cost(
    chain: Sequence[ModelRoute],
    latency: LatencyTracker,
    input_tokens: int,
    output_tokens: int,
    sla_s: float | None,
) -> Ordered:
    def meets_sla(route: ModelRoute) -> bool:
        seen = latency.get(route.name)
        return sla_s is None or seen is None or seen <= sla_s

    fits = [r for r in chain if meets_sla(r)] or list(chain)
    ordered = sorted(fits, key=lambda r: estimated_cost(r, input_tokens, output_tokens))
    ordered += [r for r in chain if r not in ordered]  # SLA misses last, as fallbacks
    described = ", ".join(
        f"{r.name}=${estimated_cost(r, input_tokens, output_tokens):.6f}" for r in ordered
    )
    return Ordered(tuple(ordered), 1.0, f"by estimated cost: {described}")

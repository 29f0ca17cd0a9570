"""The `bandit` strategy with published parameters: score the rule's arms, pick one, and
log its exact propensity; the remaining arms follow as fallbacks, best scored first."""

from __future__ import annotations

from collections.abc import Sequence

from gateway.catalog import ModelRoute
from gateway.events import RequestContext
from gateway.policy.bandit_features import featurize
from gateway.policy.bandit_scorer import BanditParams, choose
from gateway.policy.strategies import Ordered, sticky_unit


def order_by_bandit(
    params: BanditParams, chain: Sequence[ModelRoute], context: RequestContext, key: str
) -> Ordered | None:
    """The chain ordered by the bandit's choice; None when the parameters name no arm this
    request may use (the caller then keeps the static chain)."""
    routes = [next((r for r in chain if arm in (r.name, r.alias)), None) for arm in params.arms]
    allowed = [route is not None for route in routes]
    if not any(allowed):
        return None
    choice = choose(params, featurize(context), sticky_unit(params.version, key), allowed)
    ordered = [route for i in choice.ranking() if (route := routes[i]) is not None]
    ordered += [r for r in chain if r not in ordered]
    note = f"bandit {params.algorithm} {params.version}: {choice.arm} (p={choice.propensity:.3f})"
    return Ordered(tuple(ordered), choice.propensity, note, version=params.version)

"""The runtime model catalog: each configured model with its provider, prices,
breaker and fallback chain, and which tenants may use it.

Built once from the validated config (phase two of config loading); the request path
only reads it.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

from gateway.config import BreakerConfig, FlywheelConfig, RetryConfig
from gateway.errors import ModelNotFound
from gateway.providers.base import Provider
from gateway.reliability.breaker import BreakerState, CircuitBreaker


@dataclass(slots=True)
class ModelRoute:
    """One model a request can be sent to."""

    name: str
    provider: Provider
    upstream_model: str
    context_window: int | None
    input_usd_per_token: float
    output_usd_per_token: float
    retry: RetryConfig
    breaker: CircuitBreaker
    timeout_s: float | None
    tenants: frozenset[str] | None
    chain: tuple[str, ...] = ()
    # Set on routes derived for a LoRA adapter (gateway/adapters/resolve.py): the adapter
    # id served, and the name the request or policy used when it is not `name` (a bare
    # adapter name that resolved to a version).
    adapter: str | None = None
    alias: str | None = None

    def cost_usd(self, input_tokens: int, output_tokens: int) -> float:
        return input_tokens * self.input_usd_per_token + output_tokens * self.output_usd_per_token

    def allows(self, tenant: str) -> bool:
        return self.tenants is None or tenant in self.tenants


@dataclass
class ModelCatalog:
    routes: dict[str, ModelRoute]
    _chains: dict[tuple[str, str], tuple[ModelRoute, ...]] = field(default_factory=dict)

    def resolve(self, tenant: str, model: str) -> tuple[ModelRoute, ...]:
        """The ordered chain for `model` as `tenant` may use it; 404 otherwise, the same for
        a model that exists but is not this tenant's (no existence oracle)."""
        key = (tenant, model)
        chain = self._chains.get(key)
        if chain is not None:
            return chain
        route = self.routes.get(model)
        if route is None or not route.allows(tenant):
            # A model reserved to other tenants reads exactly as one that does not exist.
            raise ModelNotFound(f"The model '{model}' does not exist", param="model")
        chain = tuple(self.routes[n] for n in route.chain if self.routes[n].allows(tenant))
        self._chains[key] = chain
        return chain

    def visible_to(self, tenant: str) -> list[ModelRoute]:
        return [route for route in self.routes.values() if route.allows(tenant)]


def build_catalog(
    config: FlywheelConfig,
    providers: dict[str, Provider],
    on_breaker_change: Callable[[str, BreakerState], None] | None = None,
) -> ModelCatalog:
    routes: dict[str, ModelRoute] = {}
    for name, model in config.models.items():
        breaker_config: BreakerConfig = model.breaker or config.routing.breaker
        routes[name] = ModelRoute(
            name=name,
            provider=providers[model.provider],
            upstream_model=model.model,
            context_window=model.context_window,
            input_usd_per_token=model.cost_per_mtok.input / 1e6,
            output_usd_per_token=model.cost_per_mtok.output / 1e6,
            retry=model.retry or config.routing.retry,
            breaker=CircuitBreaker(
                failure_threshold=breaker_config.failure_threshold,
                cooldown_s=breaker_config.cooldown_s,
                on_change=_bind(on_breaker_change, name),
            ),
            timeout_s=model.timeout_s,
            tenants=frozenset(model.tenants) if model.tenants is not None else None,
        )
    for name, route in routes.items():
        route.chain = tuple(
            fallback_chain(name, lambda n: config.models[n].fallbacks, config.routing.max_chain)
        )
    return ModelCatalog(routes)


def fallback_chain(
    start: str, fallbacks_of: Callable[[str], Iterable[str]], limit: int
) -> list[str]:
    """`start` then its fallbacks, depth first and transitively, each once, at most `limit`."""
    chain: list[str] = []
    stack = [start]
    while stack and len(chain) < limit:
        name = stack.pop()
        if name in chain:
            continue
        chain.append(name)
        stack.extend(reversed(list(fallbacks_of(name))))
    return chain


def _bind(
    callback: Callable[[str, BreakerState], None] | None, name: str
) -> Callable[[BreakerState], None] | None:
    if callback is None:
        return None
    return lambda state: callback(name, state)

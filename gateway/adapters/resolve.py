"""Model names with an adapter, `<catalog model>:<adapter>`, turned into model routes.

The catalog model must be served by a provider with `location: local` (our own model
worker, or vLLM with LoRA). The route derived for the chosen version shares the base
model's provider, prices, retries and circuit breaker; its name is
`local/smollm2-135m:support-v3` (what `x-flywheel-route` and the event say) and the
upstream is asked for `smollm2-135m:support-v3`, which the worker loads from the
registry on first use. The chain continues with the base model's fallbacks.
"""

from __future__ import annotations

import dataclasses
import re

from gateway.adapters.index import AdapterIndex
from gateway.adapters.registry import NAME_PATTERN, AdapterRecord
from gateway.catalog import ModelCatalog, ModelRoute
from gateway.errors import ModelNotFound, PermissionDenied

_REF = re.compile(NAME_PATTERN)

Chain = tuple[ModelRoute, ...]


def adapter_target(routes: dict[str, ModelRoute], model: str) -> tuple[ModelRoute, str] | None:
    """(base route, adapter ref) when `model` names an adapter of a local catalog model."""
    if model in routes or ":" not in model:
        return None
    base_name, _, ref = model.rpartition(":")
    base = routes.get(base_name)
    if base is None or base.provider.location != "local" or not _REF.match(ref):
        return None
    return base, ref


class AdapterResolver:
    def __init__(self, catalog: ModelCatalog, index: AdapterIndex) -> None:
        self._catalog = catalog
        self.index = index
        self._chains: dict[tuple[str, str, str], Chain] = {}
        self._generation = -1

    def handles(self, model: str) -> bool:
        """Is this a name for the resolver (not a catalog model, with an adapter part)?"""
        return model not in self._catalog.routes and ":" in model

    def resolve(self, tenant: str, model: str, key: str) -> tuple[Chain, str]:
        """The chain serving `model` for this request and a note on the version chosen:
        404 unless the tenant may use such an adapter (never saying it exists for others)."""
        target = adapter_target(self._catalog.routes, model)
        if target is None:
            raise _not_found(model)
        base, ref = target
        if not base.allows(tenant):
            raise _not_found(model)
        pick = self.index.pick(ref, tenant, base.upstream_model, key)
        if pick is None:
            raise _not_found(model)
        return self._chain(tenant, model, base, pick.record), pick.note

    def candidate(self, tenant: str, model: str, key: str) -> ModelRoute | None:
        """For a policy rule's chain: the route `model` resolves to, or None (skipped)."""
        try:
            chain, _ = self.resolve(tenant, model, key)
        except (ModelNotFound, PermissionDenied):
            return None
        return chain[0] if chain else None

    def models_for(self, tenant: str) -> list[tuple[str, ModelRoute]]:
        """(`local/smollm2-135m:support`, base route) for each adapter the tenant can name."""
        return [
            (f"{route.name}:{name}", route)
            for route in self._catalog.visible_to(tenant)
            if route.provider.location == "local"
            for name in self.index.usable(tenant, route.upstream_model)
        ]

    def _chain(
        self, tenant: str, model: str, base: ModelRoute, record: AdapterRecord | None
    ) -> Chain:
        """The adapter's route (the base model's own when `record` is None) then the base
        model's fallbacks; cached until the registry changes."""
        if self._generation != self.index.generation:
            self._chains.clear()
            self._generation = self.index.generation
        key = (tenant, model, record.id if record is not None else "")
        chain = self._chains.get(key)
        if chain is None:
            fallbacks = self._catalog.resolve(tenant, base.name)[1:]
            if record is None:
                route = dataclasses.replace(base, alias=model)
            else:
                name = f"{base.name}:{record.id}"
                route = dataclasses.replace(
                    base,
                    name=name,
                    upstream_model=(
                        record.id
                        if base.provider.adapter_naming == "adapter"
                        else f"{base.upstream_model}:{record.id}"
                    ),
                    chain=(name, *(r.name for r in fallbacks)),
                    adapter=record.id,
                    alias=model,
                )
            chain = self._chains[key] = (route, *fallbacks)
        return chain


def _not_found(model: str) -> ModelNotFound:
    return ModelNotFound(f"The model '{model}' does not exist", param="model")

"""Pure logic of adapter routing: which version a model name with an adapter resolves to
for a tenant (gateway/adapters/index.py, resolve.py), with no store and no network."""

from __future__ import annotations

import time

import pytest

from gateway.adapters.index import AdapterIndex, canary_bucket
from gateway.adapters.registry import AdapterRecord, Status
from gateway.adapters.resolve import AdapterResolver, adapter_target
from gateway.catalog import ModelCatalog, build_catalog
from gateway.config import FlywheelConfig
from gateway.errors import ModelNotFound
from gateway.providers.factory import build_provider

BASE = "local/smollm2-135m"


def catalog(adapter_naming: str = "base:adapter") -> ModelCatalog:
    config = FlywheelConfig.model_validate(
        {
            "providers": {
                "local": {
                    "kind": "openai",
                    "base_url": "http://127.0.0.1:1/v1",
                    "location": "local",
                    "adapter_naming": adapter_naming,
                },
                "ext": {"kind": "openai", "base_url": "http://127.0.0.1:2/v1"},
            },
            "models": {
                BASE: {"provider": "local", "model": "smollm2-135m", "fallbacks": ["ext/big"]},
                "local/other": {"provider": "local", "model": "other-base"},
                "local/private": {"provider": "local", "model": "smollm2-135m", "tenants": ["a"]},
                "ext/big": {"provider": "ext", "model": "big"},
            },
            "tenants": {"a": {}, "b": {}},
        }
    )
    providers = {n: build_provider(n, p) for n, p in config.providers.items()}
    return build_catalog(config, providers)


def record(
    version: int,
    status: Status,
    *,
    name: str = "support",
    tenants: list[str] | None = None,
    share: float = 0.0,
    activated_at: float | None = None,
    base: str = "smollm2-135m",
) -> AdapterRecord:
    return AdapterRecord(
        name=name,
        version=version,
        base_model=base,
        location=f"/a/{name}-v{version}",
        status=status,
        tenants=tenants or ["*"],
        canary_share=share,
        activated_at=activated_at if activated_at is not None else time.time(),
    )


def resolver(*records: AdapterRecord) -> AdapterResolver:
    index = AdapterIndex()
    index.load(list(records))
    return AdapterResolver(catalog(), index)


def route_names(r: AdapterResolver, model: str, tenant: str = "a", key: str = "k") -> list[str]:
    chain, _ = r.resolve(tenant, model, key)
    return [route.name for route in chain]


def test_bare_name_is_the_active_version_with_the_base_models_fallbacks() -> None:
    r = resolver(record(1, "retired", activated_at=1), record(2, "active", activated_at=2))
    chain, note = r.resolve("a", f"{BASE}:support", "k")
    assert [c.name for c in chain] == [f"{BASE}:support-v2", "ext/big"]
    route = chain[0]
    assert route.upstream_model == "smollm2-135m:support-v2"
    assert (route.adapter, route.alias) == ("support-v2", f"{BASE}:support")
    assert route.breaker is r._catalog.routes[BASE].breaker  # one worker, one breaker
    assert "support-v2" in note
    assert r.resolve("a", f"{BASE}:support", "k")[0] is chain  # cached


def test_an_explicit_version_unless_retired() -> None:
    r = resolver(record(1, "retired"), record(2, "active"), record(3, "candidate"))
    assert route_names(r, f"{BASE}:support-v3")[0] == f"{BASE}:support-v3"
    assert route_names(r, f"{BASE}:support-v2")[0] == f"{BASE}:support-v2"
    for missing in ("support-v1", "support-v9", "nothing", "nothing-v1"):
        with pytest.raises(ModelNotFound, match="does not exist"):
            r.resolve("a", f"{BASE}:{missing}", "k")


def test_only_eligible_tenants_and_the_matching_base_model() -> None:
    r = resolver(record(1, "active", tenants=["a"]), record(1, "active", name="x", base="zzz"))
    assert route_names(r, f"{BASE}:support", "a")[0] == f"{BASE}:support-v1"
    with pytest.raises(ModelNotFound) as refused:
        r.resolve("b", f"{BASE}:support", "k")
    assert refused.value.code == "model_not_found" and refused.value.status == 404
    assert "b" not in refused.value.message.replace(BASE, "")  # nothing about who may
    with pytest.raises(ModelNotFound):
        r.resolve("a", "local/other:support", "k")  # another base model
    with pytest.raises(ModelNotFound):
        r.resolve("a", f"{BASE}:x", "k")
    with pytest.raises(ModelNotFound) as hidden:
        r.resolve("b", "local/private:support", "k")  # the base model itself is not b's
    assert hidden.value.status == 404 and "may not" not in hidden.value.message


def test_only_local_catalog_models_take_adapters() -> None:
    r = resolver(record(1, "active", base="big"))
    routes = r._catalog.routes
    assert adapter_target(routes, "ext/big:support") is None
    assert adapter_target(routes, f"{BASE}:Bad Name") is None
    assert adapter_target(routes, BASE) is None
    assert adapter_target(routes, f"{BASE}:support-v2") is not None
    with pytest.raises(ModelNotFound):
        r.resolve("a", "ext/big:support", "k")
    assert r.handles(f"{BASE}:support") and not r.handles(BASE) and not r.handles("auto")


def test_canary_takes_its_share_sticky_by_key() -> None:
    r = resolver(
        record(1, "active", activated_at=1), record(2, "canary", share=0.3, activated_at=None)
    )
    picks = {key: route_names(r, f"{BASE}:support", key=key)[0] for key in map(str, range(2000))}
    canary = [k for k, name in picks.items() if name.endswith("support-v2")]
    assert 0.25 < len(canary) / len(picks) < 0.35
    assert all((canary_bucket("support", k) < 0.3) == (k in canary) for k in picks)
    everyone = resolver(record(1, "active"), record(2, "canary", share=1.0))
    assert {route_names(everyone, f"{BASE}:support", key=str(k))[0] for k in range(50)} == {
        f"{BASE}:support-v2"
    }


def test_a_first_canary_shares_traffic_with_the_base_model() -> None:
    r = resolver(record(1, "canary", share=0.5))
    names = {route_names(r, f"{BASE}:support", key=str(k))[0] for k in range(100)}
    assert names == {f"{BASE}:support-v1", BASE}
    control = next(
        r.resolve("a", f"{BASE}:support", str(k))[0][0]
        for k in range(100)
        if canary_bucket("support", str(k)) >= 0.5
    )
    assert (control.name, control.adapter, control.alias) == (BASE, None, f"{BASE}:support")


def test_changes_replace_the_copy_and_the_cached_routes() -> None:
    r = resolver(record(1, "active"))
    assert route_names(r, f"{BASE}:support")[0].endswith("support-v1")
    r.index.load([record(1, "retired", activated_at=1), record(2, "active", activated_at=2)])
    assert route_names(r, f"{BASE}:support")[0].endswith("support-v2")
    r.index.on_store_change("adapters", {"support-v3": "{broken", "x-v1": "{}"})
    with pytest.raises(ModelNotFound):
        r.resolve("a", f"{BASE}:support", "k")
    r.index.on_store_change("flags", {})  # other namespaces are not ours


def test_models_for_lists_the_adapters_a_tenant_can_name() -> None:
    r = resolver(
        record(1, "active", tenants=["a"]),
        record(1, "canary", name="beta", share=0.1),
        record(1, "candidate", name="draft"),
        record(1, "active", name="elsewhere", base="other-base"),
    )
    assert sorted(name for name, _ in r.models_for("a")) == [
        "local/other:elsewhere",
        "local/private:beta",
        "local/private:support",
        f"{BASE}:beta",
        f"{BASE}:support",
    ]
    assert sorted(name for name, _ in r.models_for("b")) == [
        "local/other:elsewhere",
        f"{BASE}:beta",
    ]


def test_vllm_style_providers_get_the_adapter_name_alone() -> None:
    index = AdapterIndex()
    index.load([record(2, "active")])
    vllm = AdapterResolver(catalog(adapter_naming="adapter"), index)
    chain, _ = vllm.resolve("a", f"{BASE}:support", "k")
    assert chain[0].upstream_model == "support-v2"
    assert chain[0].name == f"{BASE}:support-v2"

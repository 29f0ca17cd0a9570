"""Everything a gateway process holds, built once from config and passed explicitly."""

from __future__ import annotations

import asyncio
import logging
import os
from dataclasses import dataclass, field
from pathlib import Path

from gateway.adapters.index import AdapterIndex
from gateway.adapters.registry import NAMESPACE as ADAPTERS
from gateway.adapters.resolve import AdapterResolver
from gateway.auth import KeyIndex
from gateway.catalog import ModelCatalog, build_catalog
from gateway.classify import load_default_classifier
from gateway.config import FlywheelConfig, ScanConfig
from gateway.dispatch import Dispatcher
from gateway.event_log import EventLog, EventLogMetrics, EventLogSettings
from gateway.flags import FLAGS, KILL, Flags
from gateway.guardrails import Guardrails
from gateway.limits import Limiter
from gateway.maintenance import run_maintenance
from gateway.metrics import GatewayMetrics
from gateway.policy.bandit_book import NAMESPACE as BANDIT_PARAMS
from gateway.policy.bandit_book import BanditBook
from gateway.policy.checks import policy_checker
from gateway.policy.library import PolicyLibrary
from gateway.policy.router import Router
from gateway.policy.strategies import LatencyTracker
from gateway.policy.watch import reload_all, watch
from gateway.prompting import TemplateLibrary
from gateway.providers.base import Provider
from gateway.providers.factory import build_provider
from gateway.redaction.service import PIIService
from gateway.scanning import Scanner
from gateway.serving.inference import InferenceService
from gateway.store.base import Store, StoreUnavailable
from gateway.store.scrub import safe_url
from gateway.store_sync import StoreSync
from gateway.tenants import KEYS, TENANTS, TenantDirectory
from gateway.usage_sync import UsageSync

log = logging.getLogger("flywheel.gateway")

SYNCED = (FLAGS, KILL, KEYS, TENANTS, ADAPTERS, BANDIT_PARAMS)


@dataclass
class AppState:
    config: FlywheelConfig
    providers: dict[str, Provider]
    catalog: ModelCatalog
    keys: KeyIndex
    tenants: TenantDirectory
    limiter: Limiter
    metrics: GatewayMetrics
    inference: InferenceService
    flags: Flags
    router: Router
    pii: PIIService
    guardrails: Guardrails
    adapters: AdapterResolver
    store: Store | None = None
    sync: StoreSync | None = None
    events: EventLog | None = None
    usage_sync: UsageSync | None = None
    scanner: Scanner = field(default_factory=lambda: Scanner(ScanConfig()))
    ready: bool = field(default=False)
    _background: list[asyncio.Task[None]] = field(default_factory=list)

    @classmethod
    def build(cls, config: FlywheelConfig, metrics: GatewayMetrics | None = None) -> AppState:
        metrics = metrics or GatewayMetrics()
        providers = {name: build_provider(name, spec) for name, spec in config.providers.items()}
        catalog = build_catalog(config, providers, metrics.breaker_changed)
        for name in catalog.routes:
            metrics.breaker_state.labels(name).set(0)
        keys = KeyIndex.from_config(config)
        tenants = TenantDirectory(config, keys)
        adapters = AdapterResolver(catalog, AdapterIndex())
        bandits = BanditBook()
        store = sync = events = None
        if config.store:
            from gateway.store import open_store

            store = open_store(config.store)
            sync = StoreSync(store, SYNCED)
            sync.on_change(tenants.on_store_change)
            sync.on_change(adapters.index.on_store_change)
            sync.on_change(bandits.on_store_change)
            settings = EventLogSettings.from_config(config)
            events = EventLog(
                store, settings, EventLogMetrics(metrics.registry), tenants.durable_events
            )
        limiter = Limiter()
        flags = Flags(sync)
        templates = TemplateLibrary.load_dir(Path(config.templates_dir))
        policies = PolicyLibrary(Path(config.policies_dir), policy_checker(catalog, templates))
        for problem in reload_all(policies, templates):
            log.warning("policy or template rejected", extra={"fields": {"problem": problem}})
        latency = LatencyTracker()
        router = Router(
            catalog, policies, templates, load_default_classifier(), flags, latency, adapters,
            bandits,
        )  # fmt: skip
        router.warm()
        inference = InferenceService(Dispatcher(metrics), limiter, metrics, events, latency)
        inference.pickers = dict(catalog.routes)
        return cls(
            config=config,
            providers=providers,
            catalog=catalog,
            keys=keys,
            tenants=tenants,
            limiter=limiter,
            metrics=metrics,
            inference=inference,
            flags=flags,
            router=router,
            pii=PIIService(metrics.registry, _hash_secret()),
            guardrails=Guardrails(metrics.registry),
            adapters=adapters,
            store=store,
            sync=sync,
            events=events,
            usage_sync=UsageSync(store, limiter) if store is not None else None,
            scanner=Scanner(config.scan),
        )

    async def start(self) -> None:
        await asyncio.gather(*(provider.start() for provider in self.providers.values()))
        if self.store is not None and self.sync is not None:
            try:
                await self.store.start()
            except StoreUnavailable as exc:  # serve anyway: events queue, flags stay safe
                log.warning("store unreachable at start", extra={"fields": {"error": str(exc)}})
            await self.sync.start()
        if self.events is not None:
            self.events.start()
        if self.usage_sync is not None:
            self.usage_sync.start()
        if self.store is not None:
            task = run_maintenance(self.store, self.config, self.tenants)
            self._background.append(asyncio.create_task(task, name="maintenance"))
        if self.config.watch_files:
            dirs = [Path(self.config.policies_dir), Path(self.config.templates_dir)]
            watcher = watch(dirs, self.router)
            self._background.append(asyncio.create_task(watcher, name="policy-watch"))
        self.ready = True
        store_url = safe_url(self.config.store) if self.config.store else None
        log.info(
            "gateway ready",
            extra={"fields": {"models": sorted(self.catalog.routes), "store": store_url}},
        )

    async def close(self) -> None:
        self.ready = False
        self.scanner.close()
        for task in self._background:
            task.cancel()
        if self.events is not None:
            await self.events.close()
        if self.usage_sync is not None:
            await self.usage_sync.close()
        if self.sync is not None:
            await self.sync.close()
        if self.store is not None:
            await self.store.close()
        await asyncio.gather(*(provider.close() for provider in self.providers.values()))


def _hash_secret() -> bytes:
    """The key of PII `hash` placeholders: set FLYWHEEL_PII_HASH_KEY so every replica (and
    restart) hashes a value the same way; otherwise one random key per process."""
    configured = os.environ.get("FLYWHEEL_PII_HASH_KEY", "")
    return configured.encode() if configured else os.urandom(32)

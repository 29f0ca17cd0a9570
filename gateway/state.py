"""Everything a gateway process holds, built once from config and passed explicitly."""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass, field

from gateway.auth import KeyIndex
from gateway.catalog import ModelCatalog, build_catalog
from gateway.config import FlywheelConfig
from gateway.dispatch import Dispatcher
from gateway.limits import Limiter
from gateway.metrics import GatewayMetrics
from gateway.providers.base import Provider
from gateway.providers.factory import build_provider
from gateway.serving.inference import InferenceService

log = logging.getLogger("flywheel.gateway")


@dataclass
class AppState:
    config: FlywheelConfig
    providers: dict[str, Provider]
    catalog: ModelCatalog
    keys: KeyIndex
    limiter: Limiter
    metrics: GatewayMetrics
    inference: InferenceService
    ready: bool = field(default=False)

    @classmethod
    def build(cls, config: FlywheelConfig, metrics: GatewayMetrics | None = None) -> AppState:
        metrics = metrics or GatewayMetrics()
        providers = {name: build_provider(name, spec) for name, spec in config.providers.items()}
        catalog = build_catalog(config, providers, metrics.breaker_changed)
        for name in catalog.routes:
            metrics.breaker_state.labels(name).set(0)
        limiter = Limiter()
        return cls(
            config=config,
            providers=providers,
            catalog=catalog,
            keys=KeyIndex.from_config(config),
            limiter=limiter,
            metrics=metrics,
            inference=InferenceService(Dispatcher(metrics), limiter, metrics),
        )

    async def start(self) -> None:
        await asyncio.gather(*(provider.start() for provider in self.providers.values()))
        self.ready = True
        log.info("gateway ready", extra={"fields": {"models": sorted(self.catalog.routes)}})

    async def close(self) -> None:
        self.ready = False
        await asyncio.gather(*(provider.close() for provider in self.providers.values()))

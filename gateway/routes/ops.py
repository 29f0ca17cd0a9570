"""Liveness, readiness and Prometheus metrics."""

from __future__ import annotations

import os

from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest
from prometheus_client.multiprocess import MultiProcessCollector
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from gateway.http import json_response
from gateway.reliability.breaker import BreakerState
from gateway.state import AppState

MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"


class OpsRoutes:
    def __init__(self, state: AppState) -> None:
        self._state = state

    def routes(self) -> list[Route]:
        return [
            Route("/healthz", self.healthz, methods=["GET"]),
            Route("/readyz", self.readyz, methods=["GET"]),
            Route("/metrics", self.metrics, methods=["GET"]),
        ]

    async def healthz(self, request: Request) -> Response:
        return json_response({"status": "ok"})

    async def readyz(self, request: Request) -> Response:
        routes = self._state.catalog.routes.values()
        open_breakers = sorted(r.name for r in routes if r.breaker.state is BreakerState.OPEN)
        if not self._state.ready:
            return json_response({"status": "starting"}, 503)
        if routes and len(open_breakers) == len(routes):
            return json_response({"status": "no model available", "open": open_breakers}, 503)
        return json_response({"status": "ready", "open_breakers": open_breakers})

    async def metrics(self, request: Request) -> Response:
        registry = self._state.metrics.registry
        if os.environ.get(MULTIPROC_ENV):  # several workers: merge their samples
            registry = CollectorRegistry()
            MultiProcessCollector(registry)  # type: ignore[no-untyped-call]
        return Response(generate_latest(registry), 200, media_type=CONTENT_TYPE_LATEST)

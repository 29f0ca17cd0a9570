"""Liveness, readiness and Prometheus metrics.

/metrics carries per-tenant series, so it can require a token: with
`server.metrics_token_env: FLYWHEEL_METRICS_TOKEN` in flywheel.yaml, a scrape must send
`Authorization: Bearer <that variable's value>` (Prometheus: `authorization:` in the
scrape config) or gets 401. If the variable is empty, every scrape is refused (fail
closed). /healthz and /readyz stay open for load balancers and orchestrators.
"""

from __future__ import annotations

import hmac
import logging
import os

from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest
from prometheus_client.multiprocess import MultiProcessCollector
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from gateway.auth import hash_key
from gateway.errors import AuthenticationFailed
from gateway.http import error_response, json_response
from gateway.logs import log_event
from gateway.reliability.breaker import BreakerState
from gateway.state import AppState

MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"

log = logging.getLogger("flywheel.gateway")


class OpsRoutes:
    def __init__(self, state: AppState) -> None:
        self._state = state
        self._metrics_token = _metrics_token_hash(state.config.server.metrics_token_env)

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
        expected = self._metrics_token
        if expected is not None:
            try:
                _check_token(request.headers.get("authorization"), expected)
            except AuthenticationFailed as exc:
                return error_response(exc, {"www-authenticate": "Bearer"})
        registry = self._state.metrics.registry
        if os.environ.get(MULTIPROC_ENV):  # several workers: merge their samples
            registry = CollectorRegistry()
            MultiProcessCollector(registry)  # type: ignore[no-untyped-call]
        return Response(generate_latest(registry), 200, media_type=CONTENT_TYPE_LATEST)


def _metrics_token_hash(env_name: str | None) -> str | None:
    """The SHA-256 of the token /metrics needs; None: /metrics is open; "" (no token
    can match): the variable is named but empty."""
    if env_name is None:
        return None
    token = os.environ.get(env_name, "").strip()
    if not token:
        log_event(
            log,
            "metrics token variable is empty: /metrics refuses every scrape",
            logging.WARNING,
            env=env_name,
        )
        return ""
    return hash_key(token)


def _check_token(authorization: str | None, expected: str) -> None:
    scheme, _, token = (authorization or "").partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise AuthenticationFailed(
            "/metrics needs 'Authorization: Bearer <metrics token>'", code="missing_api_key"
        )
    if not expected or not hmac.compare_digest(hash_key(token.strip()), expected):
        raise AuthenticationFailed("Incorrect metrics token provided")

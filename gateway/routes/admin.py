"""The admin API under /admin/, guarded by the admin key (not a tenant key): status,
the learner's report, and resetting a model's circuit breaker (audited)."""

from __future__ import annotations

import time

import orjson
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from gateway.errors import NotFound
from gateway.http import json_response
from gateway.routes.admin_audit import AdminAudit
from gateway.routes.admin_guard import Handler, admin_only
from gateway.state import AppState


class AdminRoutes:
    def __init__(self, state: AppState) -> None:
        self._state = state
        self._audit = AdminAudit(state)

    def routes(self) -> list[Route]:
        return [
            Route("/admin/status", self._guard(self.status), methods=["GET"]),
            Route("/admin/learner", self._guard(self.learner), methods=["GET"]),
            Route(
                "/admin/breakers/{model:path}/reset",
                self._guard(self.reset_breaker, "breaker.reset"),
                methods=["POST"],
            ),
        ]

    def _guard(self, handler: Handler, action: str | None = None) -> Handler:
        return admin_only(self._state.keys, handler, self._audit, action)

    async def status(self, request: Request) -> Response:
        state = self._state
        models = {
            name: {
                "provider": route.provider.name,
                "upstream_model": route.upstream_model,
                "breaker": route.breaker.state.name.lower(),
                "consecutive_failures": route.breaker.failures,
                "retry_in_s": round(route.breaker.retry_in_s(), 3),
                "chain": list(route.chain),
            }
            for name, route in state.catalog.routes.items()
        }
        now = time.monotonic()
        tenants = {
            name: {
                # counted only where a limit of that kind applies
                "requests_last_minute": usage.requests.used(now),
                "tokens_last_minute": usage.tokens.used(now),
                "usd_today": round(usage.spend.day_usd, 6),
                "usd_this_month": round(usage.spend.month_usd, 6),
            }
            for name in state.config.tenants
            for usage in (state.limiter.usage("tenant", name),)
        }
        return json_response({"ready": state.ready, "models": models, "tenants": tenants})

    async def learner(self, request: Request) -> Response:
        """What the learner last reported, the live bandit versions, its recent decisions."""
        store = self._state.store
        if store is None:
            raise NotFound("No store configured: the learner needs one", param="store")
        reported = await store.hgetall("learner")
        params = await store.hgetall("bandit_params")
        audit = [e for e in await store.read_audit(200) if e.action.startswith("learner.")]
        rules = {
            name.removeprefix("rule:"): orjson.loads(value)
            for name, value in reported.items()
            if name.startswith("rule:")
        }
        live = {name: orjson.loads(text).get("version") for name, text in params.items()}
        return json_response(
            {
                "status": orjson.loads(reported["status"]) if "status" in reported else None,
                "rules": rules,
                "live_versions": live,
                "decisions": [
                    {"ts": e.ts, "action": e.action, "rule": e.target, "from": e.old,
                     "detail": orjson.loads(e.new) if e.new else None}
                    for e in audit[:20]
                ],
            }
        )  # fmt: skip

    async def reset_breaker(self, request: Request) -> Response:
        name = request.path_params["model"]
        route = self._state.catalog.routes.get(name)
        if route is None:
            raise NotFound(f"No model named '{name}'", param="model")
        old = route.breaker.state.name.lower()
        route.breaker.record_success()
        new = route.breaker.state.name.lower()
        await self._audit.record(request, "breaker.reset", name, old, new)
        return json_response({"model": name, "breaker": new})

"""Admin API for routing policies, templates and the classifier: list, reload, upload,
explain a decision, classify a text. `flywheel ctl policy ...` and `ctl classify` use it.

`PUT /admin/policies/{tenant}` validates the whole policy before anything changes: it
must parse within the YAML budget, fit the policy's limits, name only models, templates,
intents and SLA tiers that exist, and be for `{tenant}` (a configured tenant, else 404).
Then its intents are learned and it is installed, all in a worker thread. A refused
policy answers 400 with every problem in `problems` and changes nothing. Uploads and
reloads are audited (`policy.put`, `policy.reload`; refusals as `<action>.refused`).
"""

from __future__ import annotations

import asyncio
import hashlib
import secrets
from typing import Any, Literal

import orjson
from pydantic import Field
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from gateway.classify import request_text
from gateway.errors import InvalidRequest, NotFound
from gateway.http import json_response, parse_json, read_body
from gateway.policy.library import LoadedPolicy, PolicyError
from gateway.policy.model import Policy
from gateway.policy.watch import prepare_for, reload_router
from gateway.protocol import Wire, validate
from gateway.routes.admin_audit import AdminAudit
from gateway.routes.admin_guard import Handler, admin_only
from gateway.serving.usage import estimate_tokens
from gateway.state import AppState


class ExplainBody(Wire):
    tenant: str
    text: str | None = None
    messages: list[dict[str, Any]] | None = None
    model: str = "auto"
    headers: dict[str, str] = Field(default_factory=dict)
    user: str | None = None


class ClassifyBody(Wire):
    text: str = Field(min_length=1)
    tenant: str | None = None
    tier: Literal["fast", "auto", "semantic"] = "auto"


class InvalidPolicy(InvalidRequest):
    """A policy upload refused; the body lists every problem (`file:line: key: why`)."""

    default_code = "invalid_policy"

    def __init__(self, problems: list[str]) -> None:
        super().__init__("\n".join(problems))
        self.problems = problems

    def body(self) -> dict[str, Any]:
        return {**super().body(), "problems": self.problems}


class AdminPolicyRoutes:
    def __init__(self, state: AppState) -> None:
        self._state = state
        self._audit = AdminAudit(state)

    def routes(self) -> list[Route]:
        guard = self._guard
        return [
            Route("/admin/policies", guard(self.list_policies), methods=["GET"]),
            Route("/admin/policies/reload", guard(self.reload, "policy.reload"), methods=["POST"]),
            Route("/admin/policies/explain", guard(self.explain), methods=["POST"]),
            Route(
                "/admin/policies/{tenant}", guard(self.put_policy, "policy.put"), methods=["PUT"]
            ),
            Route("/admin/classify", guard(self.classify), methods=["POST"]),
        ]

    def _guard(self, handler: Handler, action: str | None = None) -> Handler:
        return admin_only(self._state.keys, handler, self._audit, action)

    async def list_policies(self, request: Request) -> Response:
        router = self._state.router
        return json_response(
            {
                "policies": {
                    tenant: {
                        "version": loaded.policy.version,
                        "source": loaded.source,
                        "rules": [r.name for r in loaded.policy.rules],
                        "virtual_models": loaded.policy.virtual_models,
                    }
                    for tenant, loaded in sorted(router.policies.all().items())
                },
                "templates": router.templates.describe(),
                "errors": [*router.templates.errors, *router.policies.errors],
            }
        )

    async def reload(self, request: Request) -> Response:
        problems = await reload_router(self._state.router)
        await self._audit.record(
            request, "policy.reload", "policies", None, orjson.dumps({"errors": problems}).decode()
        )
        return json_response({"reloaded": True, "errors": problems}, 400 if problems else 200)

    async def put_policy(self, request: Request) -> Response:
        tenant = request.path_params["tenant"]
        if self._state.tenants.get(tenant) is None:
            raise NotFound(f"No tenant '{tenant}'", param="tenant")
        raw = await read_body(request, self._state.config.server.max_body_bytes)
        try:
            text = raw.decode("utf-8")
        except UnicodeDecodeError:
            raise InvalidRequest("the policy must be UTF-8 YAML text") from None
        try:
            policy, previous = await asyncio.to_thread(self._validate_and_install, text, tenant)
        except PolicyError as exc:
            raise InvalidPolicy(exc.problems) from None
        new = {"version": policy.version, "sha256": hashlib.sha256(raw).hexdigest()}
        await self._audit.record(
            request, "policy.put", tenant, _described(previous), orjson.dumps(new).decode()
        )
        return json_response({"tenant": tenant, "version": policy.version, "source": "admin"})

    def _validate_and_install(self, text: str, tenant: str) -> tuple[Policy, LoadedPolicy | None]:
        """In a worker thread: validate completely, learn the intents, then install."""
        router = self._state.router
        policy = router.policies.parse(text, tenant)
        prepare_for(router)(policy)
        return policy, router.policies.install(policy)

    async def explain(self, request: Request) -> Response:
        raw = await read_body(request, self._state.config.server.max_body_bytes)
        body: ExplainBody = validate(ExplainBody, parse_json(raw))  # type: ignore[assignment]
        messages = body.messages or [{"role": "user", "content": body.text or ""}]
        chat: dict[str, Any] = {"model": body.model, "messages": messages}
        if body.user:
            chat["user"] = body.user
        request_id = "explain_" + secrets.token_hex(6)
        plan = await self._state.router.plan(
            body.tenant, "chat/completions", chat, body.headers, request_id, estimate_tokens(raw)
        )
        c = plan.classification
        return json_response(
            {
                "tenant": body.tenant,
                "classification": {
                    "intent": c.intent,
                    "confidence": c.confidence,
                    "complexity": c.complexity,
                    "tier": c.tier,
                    "source": c.source,
                },
                "rule": plan.rule,
                "strategy": plan.strategy,
                "policy_version": plan.policy_version,
                "template": "@".join(plan.template[:2]) + f"/{plan.template[2]}"
                if plan.template
                else None,
                "chain": [r.name for r in plan.chain],
                "propensity": plan.propensity,
                "deadline_s": plan.deadline_s,
                "messages_sent": plan.body.get("messages"),
                "explain": plan.explain,
            }
        )

    async def classify(self, request: Request) -> Response:
        raw = await read_body(request, self._state.config.server.max_body_bytes)
        body: ClassifyBody = validate(ClassifyBody, parse_json(raw))  # type: ignore[assignment]
        router = self._state.router
        policy = router.policies.get(body.tenant) if body.tenant else None
        classifier = (
            router.classifier.for_tenant(policy.intents)
            if policy and policy.intents
            else router.classifier
        )
        view = request_text(
            "chat/completions", {"messages": [{"role": "user", "content": body.text}]}
        )
        c = await classifier.aclassify(view, tier=body.tier)
        return json_response(
            {
                "intent": c.intent,
                "confidence": c.confidence,
                "complexity": c.complexity,
                "tier": c.tier,
                "source": c.source,
                "scores": c.scores,
            }
        )


def _described(loaded: LoadedPolicy | None) -> str | None:
    if loaded is None:
        return None
    return orjson.dumps({"version": loaded.policy.version, "source": loaded.source}).decode()

"""The OpenAI-compatible endpoints: a thin HTTP shell over `InferenceService`.

Each handler authenticates, reads the body, admits the request against its limits
(before any work that grows with the input), bounds and validates the body, inspects
its text within the scanner's bounds, resolves the model chain the tenant may use, and
hands it on. Every refusal is an OpenAI error body with the right status and the
request id.
"""

from __future__ import annotations

import logging
import secrets
import time
from typing import Any

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from gateway.dispatch import Trace
from gateway.errors import GatewayError
from gateway.guardrails import cap_output, findings_for_event
from gateway.http import error_response, json_response, parse_json, read_body
from gateway.limits import Admission
from gateway.logs import log_event
from gateway.protocol import (
    ChatCompletionRequest,
    CompletionRequest,
    EmbeddingRequest,
    ResponsesRequest,
    Wire,
    validate,
)
from gateway.providers.base import Endpoint
from gateway.scanning import count_items
from gateway.serving.inference import Call
from gateway.serving.relay import SSEResponse
from gateway.serving.usage import estimate_tokens
from gateway.state import AppState

log = logging.getLogger("flywheel.request")

_WIRE: dict[Endpoint, type[Wire]] = {
    Endpoint.CHAT: ChatCompletionRequest,
    Endpoint.COMPLETIONS: CompletionRequest,
    Endpoint.EMBEDDINGS: EmbeddingRequest,
    Endpoint.RESPONSES: ResponsesRequest,
}


def new_request_id() -> str:
    return "req_" + secrets.token_hex(12)


class OpenAIRoutes:
    def __init__(self, state: AppState) -> None:
        self._state = state

    def routes(self) -> list[Route]:
        return [
            Route("/v1/chat/completions", self._handler(Endpoint.CHAT), methods=["POST"]),
            Route("/v1/completions", self._handler(Endpoint.COMPLETIONS), methods=["POST"]),
            Route("/v1/embeddings", self._handler(Endpoint.EMBEDDINGS), methods=["POST"]),
            Route("/v1/responses", self._handler(Endpoint.RESPONSES), methods=["POST"]),
            Route("/v1/models", self.list_models, methods=["GET"]),
        ]

    def _handler(self, endpoint: Endpoint) -> Any:
        async def handle(request: Request) -> Response | SSEResponse:
            return await self.infer(request, endpoint)

        return handle

    async def infer(self, request: Request, endpoint: Endpoint) -> Response | SSEResponse:
        state = self._state
        started = time.perf_counter()
        request_id = new_request_id()
        tenant = "-"
        admission: Admission | None = None
        try:
            principal = state.keys.authenticate(request.headers.get("authorization"))
            tenant = principal.tenant
            raw = await read_body(request, state.config.server.max_body_bytes)
            estimate = estimate_tokens(raw)
            # Limits first: all that follows scales with the input, and a tenant over its
            # limits gets none of it. A request refused below gives its admission back.
            admission = state.limiter.admit(principal, estimate)
            max_items = state.config.scan.max_items
            body = parse_json(raw, first=lambda b: count_items(endpoint.value, b, max_items))
            wire = validate(_WIRE[endpoint], body)
            model: str = wire.model  # type: ignore[attr-defined]
            policy = state.router.policies.get(tenant)
            guard = policy.guard if policy else None
            scanner = state.scanner
            deadline = scanner.deadline()
            findings, safer_rule = await state.guardrails.check(
                tenant, guard, endpoint.value, body, estimate, scanner, deadline
            )
            plan = await state.router.plan(
                tenant, endpoint.value, body, request.headers, request_id, estimate, safer_rule
            )
            plan.body = cap_output(guard, endpoint.value, plan.body)
            log_content = state.events is not None and state.tenants.content_logging(tenant)
            pii = await state.pii.scan_request(
                tenant,
                policy.pii if policy else None,
                endpoint.value,
                plan.body,
                scanner,
                deadline,
                log_content,
            )
        except GatewayError as exc:
            if admission is not None:
                state.limiter.release(admission)
            self._rejected(request_id, tenant, endpoint, exc)
            return error_response(exc, {"x-flywheel-request-id": request_id})
        except BaseException:
            if admission is not None:
                state.limiter.release(admission)
            raise
        call = Call(
            request_id=request_id,
            started=started,
            principal=principal,
            endpoint=endpoint,
            model=model,
            body=plan.body,
            admission=admission,
            trace=Trace(request_id),
            arrived=time.time(),
            log_content=log_content,
            plan=plan,
            pii=pii,
            guard=findings_for_event(findings),
        )
        return await state.inference.serve(call, plan.chain, request.receive)

    def _rejected(
        self, request_id: str, tenant: str, endpoint: Endpoint, exc: GatewayError
    ) -> None:
        reason = exc.code or type(exc).__name__
        self._state.metrics.rejected.labels(tenant, reason).inc()
        log_event(
            log,
            "rejected",
            logging.WARNING,
            request_id=request_id,
            tenant=tenant,
            endpoint=endpoint.value,
            status=exc.status,
            reason=reason,
            error=exc.message,
        )

    async def list_models(self, request: Request) -> Response:
        try:
            principal = self._state.keys.authenticate(request.headers.get("authorization"))
        except GatewayError as exc:
            return error_response(exc)
        data = [
            {"id": route.name, "object": "model", "created": 0, "owned_by": route.provider.name}
            for route in self._state.catalog.visible_to(principal.tenant)
        ]
        data += [  # adapters this tenant can name, from the registry
            {"id": name, "object": "model", "created": 0, "owned_by": route.provider.name}
            for name, route in self._state.adapters.models_for(principal.tenant)
        ]
        return json_response({"object": "list", "data": data})

"""`POST /v1/feedback` and `GET /v1/requests/{id}`: a tenant's view of its own requests.

Feedback names a request id from `x-flywheel-request-id`. A tenant may only rate its
own requests: another tenant's id is a 404, as is inspecting one. Feedback for an id
whose event is not stored yet is kept and joins when the event arrives (up to the
configured horizon).
"""

from __future__ import annotations

import secrets
import time
from typing import Any, Literal

from pydantic import Field, StrictBool, StrictFloat, StrictInt, model_validator
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from gateway.errors import GatewayError, NotFound, UpstreamUnavailable
from gateway.events import Feedback
from gateway.http import error_response, json_response, parse_json, read_body
from gateway.protocol import Wire, validate
from gateway.state import AppState
from gateway.store.base import StoreUnavailable

MAX_TEXT = 32_000


class FeedbackRequest(Wire):
    request_id: str = Field(min_length=1, max_length=128)
    kind: Literal["thumbs", "score", "correction", "click", "dwell"]
    value: StrictBool | StrictInt | StrictFloat | Literal["up", "down"] | None = None
    text: str | None = Field(None, max_length=MAX_TEXT)
    user: str | None = Field(None, max_length=256)

    @model_validator(mode="after")
    def _value_fits_kind(self) -> FeedbackRequest:
        self.normalised()
        return self

    def normalised(self) -> float:
        """The value as a number: thumbs +1/-1, score in [0, 1], click 1/0, dwell seconds."""
        value = self.value
        if self.kind == "thumbs":
            if value in (True, 1, "up"):
                return 1.0
            if value in (False, -1, 0, "down"):
                return -1.0
            raise ValueError("thumbs takes true/false, 1/-1 or 'up'/'down'")
        if self.kind == "correction":
            if not self.text:
                raise ValueError("a correction needs the corrected text in 'text'")
            return 0.0
        if self.kind == "click":
            if value in (None, True, 1):
                return 1.0
            if value in (False, 0):
                return 0.0
            raise ValueError("click takes true/false or 1/0")
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise ValueError(f"{self.kind} takes a number in 'value'")
        if self.kind == "score" and not 0 <= value <= 1:
            raise ValueError("score takes a number between 0 and 1")
        if self.kind == "dwell" and value < 0:
            raise ValueError("dwell takes seconds, not negative")
        return float(value)


class FeedbackRoutes:
    def __init__(self, state: AppState) -> None:
        self._state = state

    def routes(self) -> list[Route]:
        return [
            Route("/v1/feedback", self.feedback, methods=["POST"]),
            Route("/v1/requests/{request_id}", self.inspect, methods=["GET"]),
        ]

    async def feedback(self, request: Request) -> Response:
        state = self._state
        try:
            principal = state.keys.authenticate(request.headers.get("authorization"))
            raw = await read_body(request, state.config.server.max_body_bytes)
            wire = validate(FeedbackRequest, parse_json(raw))
            assert isinstance(wire, FeedbackRequest)
            store = self._store()
            event = await store.get_event(wire.request_id)
            if event is not None and event.tenant != principal.tenant:
                raise _unknown(wire.request_id)
            text = wire.text
            if text:  # the store keeps the tenant's `logs` form of it (redacted by default)
                policy = state.router.policies.get(principal.tenant)
                text = state.pii.text_for_logs(
                    principal.tenant, policy.pii if policy else None, text
                )
            feedback = Feedback(
                feedback_id="fb_" + secrets.token_hex(12),
                request_id=wire.request_id,
                tenant=principal.tenant,
                kind=wire.kind,
                value=wire.normalised(),
                text=text,
                user=wire.user,
                ts=time.time(),
            )
            await store.put_feedback(feedback)
        except GatewayError as exc:
            return error_response(exc)
        except StoreUnavailable as exc:
            return error_response(UpstreamUnavailable(f"The store is unreachable: {exc}"))
        return json_response(
            {
                "id": feedback.feedback_id,
                "object": "feedback",
                "request_id": feedback.request_id,
                "status": "joined" if event is not None else "pending_event",
            },
            201,
        )

    async def inspect(self, request: Request) -> Response:
        state = self._state
        try:
            principal = state.keys.authenticate(request.headers.get("authorization"))
            request_id = request.path_params["request_id"]
            store = self._store()
            event = await store.get_event(request_id)
            if event is None or event.tenant != principal.tenant:
                raise _unknown(request_id)
            feedback = [
                f for f in await store.feedback_for(request_id) if f.tenant == principal.tenant
            ]
        except GatewayError as exc:
            return error_response(exc)
        except StoreUnavailable as exc:
            return error_response(UpstreamUnavailable(f"The store is unreachable: {exc}"))
        body: dict[str, Any] = {
            "event": event.model_dump(),
            "feedback": [f.model_dump() for f in feedback],
        }
        return json_response(body)

    def _store(self) -> Any:
        if self._state.store is None:
            raise NotFound("This gateway keeps no interaction log (no store configured)")
        return self._state.store


def _unknown(request_id: str) -> NotFound:
    return NotFound(
        f"No request '{request_id}' for this tenant", param="request_id", code="request_not_found"
    )

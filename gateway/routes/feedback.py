"""`POST /v1/feedback` and `GET /v1/requests/{id}`: a tenant's view of its own requests.

Feedback names a request id from `x-flywheel-request-id`. A tenant may only rate its
own requests: another tenant's id is a 404, as is inspecting one, whether the event is
stored or still queued in this gateway; the store joins feedback only to an event of the
same tenant, so feedback that raced ahead of another tenant's event never joins it.
Feedback for an id whose event is not stored yet is kept and joins when the event
arrives (up to the configured horizon).

Posts are limited per tenant (`feedback.rate_per_minute`, `feedback.bytes_per_minute`:
429 with Retry-After). While the store is down, feedback is buffered in memory and
written when it returns (202, `"status": "buffered"`); with the buffer full, 503 with
Retry-After. Store errors never reach the client: the message is a fixed sentence, and
the (scrubbed) cause goes to the log.
"""

from __future__ import annotations

import logging
import secrets
import time
from typing import Any, Literal

from pydantic import Field, StrictBool, StrictFloat, StrictInt, model_validator
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from gateway.errors import GatewayError, NotFound, UpstreamUnavailable
from gateway.events import Feedback
from gateway.feedback_limits import FeedbackLimiter, FeedbackLimits
from gateway.http import error_response, json_response, parse_json, read_body
from gateway.logs import log_event
from gateway.protocol import Wire, validate
from gateway.state import AppState
from gateway.store.base import Store, StoreUnavailable

MAX_TEXT = 32_000
STORE_RETRY_S = 5.0  # Retry-After when the store is down and nothing can be kept
BUFFERED_NOTE = (
    "The interaction store is unreachable; this feedback is kept by the gateway and"
    " stored when the store returns."
)

log = logging.getLogger("flywheel.feedback")


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
        settings = state.config.feedback
        self._limiter = FeedbackLimiter(
            FeedbackLimits(settings.rate_per_minute, settings.bytes_per_minute)
        )

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
            self._limiter.admit(principal.tenant, len(raw))
            wire = validate(FeedbackRequest, parse_json(raw))
            assert isinstance(wire, FeedbackRequest)
            store = self._store()
            queued = state.events.queued_tenant(wire.request_id) if state.events else None
            if queued is not None and queued != principal.tenant:
                raise _unknown(wire.request_id)  # another tenant's event, not stored yet
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
            status = await self._put(store, feedback)
        except GatewayError as exc:
            return error_response(exc)
        body: dict[str, Any] = {
            "id": feedback.feedback_id,
            "object": "feedback",
            "request_id": feedback.request_id,
            "status": status,
        }
        if status == "buffered":
            body["note"] = BUFFERED_NOTE
            return json_response(body, 202)
        return json_response(body, 201)

    async def _put(self, store: Store, feedback: Feedback) -> str:
        """Store it (joined or pending its event), or buffer it while the store is down."""
        try:
            status = await store.put_feedback(feedback)
        except StoreUnavailable as exc:
            events = self._state.events
            kept = events is not None and events.buffer_feedback(feedback)
            log_event(
                log,
                "feedback buffered" if kept else "feedback refused: store down, buffer full",
                logging.WARNING,
                request_id=feedback.request_id,
                tenant=feedback.tenant,
                error=str(exc),
            )
            if not kept:
                raise _store_down() from None
            return "buffered"
        if status == "refused":  # another tenant's event, stored since we looked
            raise _unknown(feedback.request_id)
        return status

    async def inspect(self, request: Request) -> Response:
        state = self._state
        request_id = request.path_params["request_id"]
        try:
            principal = state.keys.authenticate(request.headers.get("authorization"))
            store = self._store()
            try:
                event = await store.get_event(request_id)
                if event is None or event.tenant != principal.tenant:
                    raise _unknown(request_id)
                feedback = await store.feedback_for(request_id, principal.tenant)
            except StoreUnavailable as exc:
                log_event(
                    log,
                    "request inspection failed",
                    logging.WARNING,
                    request_id=request_id,
                    tenant=principal.tenant,
                    error=str(exc),
                )
                raise _store_down() from None
        except GatewayError as exc:
            return error_response(exc)
        body: dict[str, Any] = {
            "event": event.model_dump(),
            "feedback": [f.model_dump() for f in feedback],
        }
        return json_response(body)

    def _store(self) -> Store:
        if self._state.store is None:
            raise NotFound("This gateway keeps no interaction log (no store configured)")
        return self._state.store


def _unknown(request_id: str) -> NotFound:
    return NotFound(
        f"No request '{request_id}' for this tenant", param="request_id", code="request_not_found"
    )


def _store_down() -> UpstreamUnavailable:
    """What a client hears about a store outage: no URL, host or cause, just when to retry."""
    return UpstreamUnavailable(
        "The interaction store is unreachable; retry later",
        retry_after_s=STORE_RETRY_S,
        code="store_unavailable",
    )

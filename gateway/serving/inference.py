"""Serve one validated inference request: dispatch it along its chain, answer the
client (JSON or a relayed stream), then account for it once: metrics, limits, log.

Bodies pass through untouched except `model`, which becomes the upstream's name for
the chosen route. The only other change is asking for a usage chunk on streams (when
the provider allows it), which is removed before the client sees it.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from typing import Any, Protocol

import orjson
from starlette.responses import Response
from starlette.types import Receive

from gateway.auth import Principal
from gateway.catalog import ModelRoute
from gateway.dispatch import Dispatcher, Trace
from gateway.errors import (
    ClientDisconnected,
    GatewayError,
    InternalError,
    UpstreamError,
    status_of,
)
from gateway.events import InteractionEvent
from gateway.http import JSON, error_response
from gateway.limits import Admission, Limiter
from gateway.logs import log_event
from gateway.metrics import GatewayMetrics
from gateway.policy.model import EnsembleSpec
from gateway.policy.router import RoutePlan
from gateway.policy.strategies import LatencyTracker
from gateway.providers.base import CallOptions, Endpoint
from gateway.redaction.redactor import RequestPII
from gateway.responses_api import chat_request_from_responses, response_from_chat
from gateway.serving.disconnect import until_disconnect
from gateway.serving.ensemble import run_ensemble
from gateway.serving.event_builder import build_event, plan_headers
from gateway.serving.relay import Relay, SSEResponse, StreamEnd, open_relay
from gateway.serving.transforms import (
    ChatPassthrough,
    ResponsesFromChat,
    ResponsesPassthrough,
    StreamTransform,
    parse_chunk,
)
from gateway.serving.usage import Usage, usage_from

log = logging.getLogger("flywheel.request")


@dataclass(slots=True)
class Call:
    """One inference request in flight, from admission to its last byte."""

    request_id: str
    started: float
    principal: Principal
    endpoint: Endpoint
    model: str
    body: dict[str, Any]
    admission: Admission
    trace: Trace
    arrived: float = 0.0  # unix time, for the interaction event
    log_content: bool = True
    ttft_s: float | None = None
    plan: RoutePlan | None = None
    pii: RequestPII | None = None
    guard: list[dict[str, Any]] = field(default_factory=list)
    # Calls made for this request besides the answer's (ensemble members, a judge).
    extra_usd: float = 0.0
    extra_tokens: int = 0
    pick: str | None = None  # how an ensemble chose the answer, for the event
    finished: bool = False  # accounted for (limits settled, logged, event sent)
    _chat_body: tuple[dict[str, Any], dict[str, Any]] | None = None

    @property
    def stream(self) -> bool:
        return bool(self.body.get("stream"))

    def body_for(self, route: ModelRoute) -> dict[str, Any]:
        """The body as this route's destination may see it (PII masked for external)."""
        if self.pii is None:
            return self.body
        return self.pii.body_for(route.provider.location)

    def chat_body(self, route: ModelRoute) -> dict[str, Any]:
        """For /v1/responses on a chat-only provider: the request as Chat Completions."""
        body = self.body_for(route)
        if self._chat_body is None or self._chat_body[0] is not body:
            self._chat_body = (body, chat_request_from_responses(body))
        return self._chat_body[1]


@dataclass(slots=True)
class Answer:
    body: bytes
    usage: Usage


class EventSink(Protocol):
    def publish(self, event: InteractionEvent) -> None: ...

    async def written(self, request_id: str) -> bool: ...


class InferenceService:
    def __init__(
        self,
        dispatcher: Dispatcher,
        limiter: Limiter,
        metrics: GatewayMetrics,
        events: EventSink | None = None,
        latency: LatencyTracker | None = None,
    ) -> None:
        self._dispatcher = dispatcher
        self._limiter = limiter
        self._metrics = metrics
        self.events = events
        self._latency = latency or LatencyTracker()
        self.pickers: dict[str, ModelRoute] = {}  # every model: an ensemble's judge or scorer

    async def serve(
        self, call: Call, chain: tuple[ModelRoute, ...], receive: Receive | None = None
    ) -> Response | SSEResponse:
        """Answer `call`. With the request's `receive` channel (its body already read), a
        client that disconnects before the answer is ready cancels the upstream call."""
        try:
            response = await self._serve(call, chain, receive)
        except Exception as exc:  # the one boundary: a bug answers 500, with the request id
            response = self._internal_error(call, exc)
        if self.events is not None:
            await self._stored(call)
        return response

    async def _stored(self, call: Call) -> None:
        """A `durable_events` tenant's event reaches the store before its answer leaves
        (a bounded wait: a store outage still never fails the request)."""
        assert self.events is not None
        try:
            await self.events.written(call.request_id)
        except Exception as exc:  # the answer is ready: a failure here is ours, not the client's
            self._event_failed(call, exc)

    async def _serve(
        self, call: Call, chain: tuple[ModelRoute, ...], receive: Receive | None
    ) -> Response | SSEResponse:
        plan = call.plan
        if plan is not None and plan.deadline_s is not None:
            call.trace.deadline = call.started + plan.deadline_s
        relay: Relay | None = None
        try:
            if call.stream:
                work: Any = self._dispatcher.run(chain, self._stream_attempt(call), call.trace)
            elif plan is not None and plan.ensemble is not None and call.endpoint is Endpoint.CHAT:
                work = self._ensemble(call, chain, plan.ensemble)
            else:
                work = self._dispatcher.run(chain, self._attempt(call), call.trace)
            result = await until_disconnect(work, receive)
        except ClientDisconnected as exc:
            self._metrics.client_disconnects.labels(call.endpoint.value).inc()
            self.finish(call, Usage(), status=exc.status, error=exc)
            return error_response(exc, self.headers(call))
        except GatewayError as exc:
            self.finish(call, Usage(), status=status_of(exc), error=exc)
            return error_response(exc, self.headers(call))
        if call.stream:
            relay = result
            assert relay is not None
            call.ttft_s = time.perf_counter() - call.started
            self._metrics.ttft.labels(call.principal.tenant, call.model).observe(call.ttft_s)
            return SSEResponse(relay, self.headers(call), lambda r: self._stream_done(call, r))
        answer: Answer = result
        if call.pii is not None:  # masked values back, after any ensemble judged the answers
            answer.body = call.pii.restore(answer.body)
        self.finish(call, answer.usage, status=200, answer=answer.body)
        return Response(answer.body, 200, self.headers(call), media_type=JSON)

    def _internal_error(self, call: Call, exc: Exception) -> Response:
        """An unexpected failure on the request path: logged with the request id and a
        traceback, counted, accounted for as a 500, and answered in OpenAI's format."""
        fields = {
            "request_id": call.request_id,
            "tenant": call.principal.tenant,
            "endpoint": call.endpoint.value,
            "error": f"{type(exc).__name__}: {exc}",
        }
        log.error("internal_error", exc_info=exc, extra={"fields": fields})
        self._metrics.internal_errors.labels("serve").inc()
        error = InternalError("The gateway hit an internal error")
        if not call.finished:
            self.finish(call, Usage(), status=error.status, error=error)
        return error_response(error, self.headers(call))

    async def _ensemble(
        self, call: Call, chain: tuple[ModelRoute, ...], spec: EnsembleSpec
    ) -> Answer:
        picker = self._picker_route(chain, spec)
        question = call.body_for(picker) if picker is not None else call.body
        # A picker that sees the request unmasked reads the answers unmasked too.
        reveal = call.pii.restore if call.pii is not None and question is call.body else None
        result = await run_ensemble(
            self._dispatcher, spec, chain, self._attempt(call), call.request_id, question, picker,
            reveal,
        )  # fmt: skip
        trace, winner = call.trace, result.winner
        trace.route = winner.route
        trace.fallbacks = chain.index(winner.route)
        extras = [*result.others, *([result.picker] if result.picker else [])]
        for candidate in (winner, *extras):
            trace.attempts += candidate.trace.attempts
            trace.upstream_s = max(trace.upstream_s, candidate.trace.upstream_s)
            trace.errors += candidate.trace.errors
        call.extra_usd = sum(c.cost for c in extras)
        call.extra_tokens = sum(c.usage.total for c in extras)
        call.pick = result.note
        if call.plan is not None:
            call.plan.explain.append(result.note)
        log_event(log, "ensemble", request_id=call.request_id, pick=result.note)
        return Answer(winner.body, winner.usage)

    def _picker_route(self, chain: tuple[ModelRoute, ...], spec: EnsembleSpec) -> ModelRoute | None:
        """The judge's or the scorer's route: a chain entry (it may be an adapter's) or any
        model of the catalog."""
        name = spec.picker
        if name is None:
            return None
        return next((r for r in chain if r.name == name), None) or self.pickers.get(name)

    def _attempt(self, call: Call) -> Any:
        async def attempt(route: ModelRoute, options: CallOptions) -> Answer:
            provider = route.provider
            if call.endpoint is Endpoint.RESPONSES and not provider.supports_responses:
                chat = {**call.chat_body(route), "model": route.upstream_model}
                raw = await provider.send(Endpoint.CHAT, chat, options)
                translated = response_from_chat(parse_chunk(raw), call.body)
                try:
                    raw = orjson.dumps(translated)
                except orjson.JSONEncodeError as exc:  # e.g. nested past orjson's limit
                    raise UpstreamError(f"the upstream's answer cannot be relayed: {exc}") from exc
            else:
                body = {**call.body_for(route), "model": route.upstream_model}
                raw = await provider.send(call.endpoint, body, options)
            return Answer(raw, _usage_of(raw))

        return attempt

    def _stream_attempt(self, call: Call) -> Any:
        async def attempt(route: ModelRoute, options: CallOptions) -> Relay:
            provider = route.provider
            transform: StreamTransform
            if call.endpoint is Endpoint.RESPONSES:
                if provider.supports_responses:
                    endpoint, body = Endpoint.RESPONSES, dict(call.body_for(route))
                    transform = ResponsesPassthrough()
                else:
                    endpoint, body = Endpoint.CHAT, dict(call.chat_body(route))
                    transform = ResponsesFromChat(call.body)
            else:
                endpoint, body = call.endpoint, dict(call.body_for(route))
                options_in = body.get("stream_options") or {}
                strip = provider.stream_usage and not options_in.get("include_usage")
                if strip:
                    body["stream_options"] = {**options_in, "include_usage": True}
                transform = ChatPassthrough(strip_usage_chunk=strip, capture=call.log_content)
            body["model"] = route.upstream_model
            if call.pii is not None:
                transform = call.pii.stream_transform(transform)
            upstream = await provider.stream(endpoint, body, options)
            return await open_relay(upstream, transform)

        return attempt

    def headers(self, call: Call) -> dict[str, str]:
        trace = call.trace
        elapsed = time.perf_counter() - call.started
        overhead_ms = max(0.0, (elapsed - trace.upstream_s) * 1000)
        headers = plan_headers(call.plan)
        headers |= {
            "x-flywheel-request-id": call.request_id,
            "x-flywheel-fallbacks": str(trace.fallbacks),
            "x-flywheel-attempts": str(trace.attempts),
            "x-flywheel-overhead-ms": f"{overhead_ms:.3f}",
        }
        if trace.route is not None:
            headers["x-flywheel-route"] = trace.route.name
        return headers

    def _stream_done(self, call: Call, relay: Relay) -> None:
        usage = relay.transform.usage
        status = 200
        if relay.end is StreamEnd.UPSTREAM_ERROR and relay.error is not None:
            route = call.trace.route.name if call.trace.route else ""
            self._metrics.stream_errors.labels(route).inc()
        elif relay.end is StreamEnd.CLIENT_GONE:
            self._metrics.client_disconnects.labels(call.endpoint.value).inc()
            status = 499
        content = relay.transform.content() if call.log_content else None
        self.finish(
            call, usage, status=status, error=relay.error, stream_end=relay.end, content=content
        )

    def finish(
        self,
        call: Call,
        usage: Usage,
        *,
        status: int,
        error: GatewayError | None = None,
        stream_end: StreamEnd | None = None,
        answer: bytes | None = None,
        content: dict[str, Any] | None = None,
    ) -> None:
        """Account for a finished request exactly once: limits, metrics, log, event."""
        call.finished = True
        trace, metrics = call.trace, self._metrics
        total_s = time.perf_counter() - call.started
        tenant = call.principal.tenant
        route = trace.route
        route_name = route.name if route is not None else ""
        cost = route.cost_usd(usage.input_tokens, usage.output_tokens) if route else 0.0
        cost += call.extra_usd  # every call an ensemble made is paid for
        tokens = (usage.total if route else 0) + call.extra_tokens
        self._limiter.settle(call.admission, tokens, cost)
        endpoint = call.endpoint.value
        metrics.requests.labels(tenant, call.model, route_name, endpoint, str(status)).inc()
        metrics.latency.labels(tenant, call.model, endpoint).observe(total_s)
        metrics.overhead.labels(endpoint).observe(max(0.0, total_s - trace.upstream_s))
        if route is not None:
            metrics.upstream_latency.labels(route_name).observe(trace.upstream_s)
            metrics.tokens.labels(tenant, route_name, "input").inc(usage.input_tokens)
            metrics.tokens.labels(tenant, route_name, "output").inc(usage.output_tokens)
            metrics.cost.labels(tenant, route_name).inc(cost)
        log_event(
            log,
            "request",
            request_id=call.request_id,
            tenant=tenant,
            key=call.principal.key_id,
            endpoint=endpoint,
            model=call.model,
            route=route_name,
            stream=call.stream,
            status=status,
            stream_end=stream_end.value if stream_end else None,
            attempts=trace.attempts,
            fallbacks=trace.fallbacks,
            errors=trace.errors or None,
            latency_ms=round(total_s * 1000, 3),
            ttft_ms=round(call.ttft_s * 1000, 3) if call.ttft_s is not None else None,
            upstream_ms=round(trace.upstream_s * 1000, 3),
            input_tokens=usage.input_tokens,
            output_tokens=usage.output_tokens,
            cost_usd=round(cost, 8),
            error=error.message if error else None,
        )
        if route is not None and status == 200:
            self._latency.observe(route_name, trace.upstream_s)
        if self.events is not None:
            self._publish(call, usage, status, total_s, cost, error, stream_end, answer, content)

    def _publish(
        self,
        call: Call,
        usage: Usage,
        status: int,
        total_s: float,
        cost: float,
        error: GatewayError | None,
        stream_end: StreamEnd | None,
        answer: bytes | None,
        content: dict[str, Any] | None,
    ) -> None:
        """Build and publish the request's event. The client has (or is about to have) its
        answer, so a failure here is a bug to log and count, never the client's error."""
        assert self.events is not None
        try:
            if call.log_content and answer is not None:
                content = _json_or_none(answer)
            event = build_event(call, usage, status, total_s, cost, error, stream_end, content)
            self.events.publish(event)
        except Exception as exc:  # the boundary the answer must cross unharmed
            self._event_failed(call, exc)

    def _event_failed(self, call: Call, exc: Exception) -> None:
        fields = {
            "request_id": call.request_id,
            "tenant": call.principal.tenant,
            "error": f"{type(exc).__name__}: {exc}",
        }
        log.error("event_failed", exc_info=exc, extra={"fields": fields})
        self._metrics.internal_errors.labels("event").inc()


def _json_or_none(raw: bytes) -> dict[str, Any] | None:
    try:
        value = orjson.loads(raw)
    except orjson.JSONDecodeError:
        return None
    return value if isinstance(value, dict) else None


def _usage_of(raw: bytes) -> Usage:
    try:
        return usage_from(orjson.loads(raw)) or Usage()
    except orjson.JSONDecodeError:
        return Usage()

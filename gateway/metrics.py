"""Prometheus metrics for the gateway, conventional names, one registry per app.

Labels: tenant, model (what was asked for), route (the model that answered),
endpoint, status. Label values are bounded: tenants and models come from config.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

from gateway.reliability.breaker import BreakerState

LATENCY_BUCKETS = (
    0.001,
    0.0025,
    0.005,
    0.01,
    0.025,
    0.05,
    0.1,
    0.25,
    0.5,
    1,
    2.5,
    5,
    10,
    30,
    60,
    120,
)
OVERHEAD_BUCKETS = (0.0001, 0.00025, 0.0005, 0.001, 0.002, 0.005, 0.01, 0.025, 0.05, 0.1)


@dataclass
class GatewayMetrics:
    registry: CollectorRegistry = field(default_factory=CollectorRegistry)

    def __post_init__(self) -> None:
        r = self.registry
        self.requests = Counter(
            "flywheel_requests_total",
            "Requests answered, by outcome",
            ["tenant", "model", "route", "endpoint", "status"],
            registry=r,
        )
        self.latency = Histogram(
            "flywheel_request_duration_seconds",
            "Total request latency as the client saw it (to the last byte)",
            ["tenant", "model", "endpoint"],
            buckets=LATENCY_BUCKETS,
            registry=r,
        )
        self.ttft = Histogram(
            "flywheel_time_to_first_token_seconds",
            "Streaming: time until the first chunk was sent to the client",
            ["tenant", "model"],
            buckets=LATENCY_BUCKETS,
            registry=r,
        )
        self.upstream_latency = Histogram(
            "flywheel_upstream_duration_seconds",
            "Time spent waiting on upstream calls (to the first chunk for streams)",
            ["route"],
            buckets=LATENCY_BUCKETS,
            registry=r,
        )
        self.overhead = Histogram(
            "flywheel_gateway_overhead_seconds",
            "Time spent in the gateway itself: total minus upstream",
            ["endpoint"],
            buckets=OVERHEAD_BUCKETS,
            registry=r,
        )
        self.tokens = Counter(
            "flywheel_tokens_total",
            "Tokens in and out",
            ["tenant", "route", "direction"],
            registry=r,
        )
        self.cost = Counter(
            "flywheel_cost_usd_total",
            "Spend in USD from model prices",
            ["tenant", "route"],
            registry=r,
        )
        self.retries = Counter(
            "flywheel_upstream_retries_total",
            "Retries on the same model",
            ["route", "reason"],
            registry=r,
        )
        self.fallbacks = Counter(
            "flywheel_fallbacks_total",
            "Moves to the next model in a chain",
            ["route", "reason"],
            registry=r,
        )
        self.upstream_errors = Counter(
            "flywheel_upstream_errors_total",
            "Failed upstream attempts",
            ["route", "kind"],
            registry=r,
        )
        self.breaker_state = Gauge(
            "flywheel_circuit_breaker_state",
            "Circuit breaker per model: 0 closed, 1 half-open, 2 open",
            ["route"],
            registry=r,
            multiprocess_mode="livemax",
        )
        self.rejected = Counter(
            "flywheel_rejected_requests_total",
            "Requests refused before reaching an upstream",
            ["tenant", "reason"],
            registry=r,
        )
        self.stream_errors = Counter(
            "flywheel_stream_errors_total",
            "Streams that failed after the first chunk",
            ["route"],
            registry=r,
        )
        self.client_disconnects = Counter(
            "flywheel_client_disconnects_total",
            "Clients gone before the answer ended",
            ["endpoint"],
            registry=r,
        )
        self.internal_errors = Counter(
            "flywheel_internal_errors_total",
            "Bugs caught at a request's boundary: 500s, and events that could not be built",
            ["where"],
            registry=r,
        )

    def breaker_changed(self, route: str, state: BreakerState) -> None:
        self.breaker_state.labels(route).set(int(state))

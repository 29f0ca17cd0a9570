"""Prometheus metrics of the worker, on its own registry (`GET /metrics`)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

if TYPE_CHECKING:
    from local_worker.server import Worker


class WorkerMetrics:
    def __init__(self, worker: Worker) -> None:
        self.registry = CollectorRegistry()
        r = self.registry
        self.requests = Counter(
            "flywheel_worker_requests_total", "Requests by endpoint and status",
            ["endpoint", "status"], registry=r,
        )  # fmt: skip
        self.completion_tokens = Counter(
            "flywheel_worker_completion_tokens_total", "Tokens generated", registry=r
        )
        self.ttft = Histogram(
            "flywheel_worker_time_to_first_token_seconds", "Submit to first token", registry=r,
            buckets=(0.025, 0.05, 0.1, 0.15, 0.25, 0.5, 1, 2, 5),
        )  # fmt: skip
        self.adapter_load = Histogram(
            "flywheel_worker_adapter_load_seconds", "LoRA adapter load time", registry=r,
            buckets=(0.05, 0.1, 0.25, 0.5, 1, 2, 5),
        )  # fmt: skip
        running = Gauge("flywheel_worker_running_sequences", "Sequences in the batch", registry=r)
        running.set_function(lambda: worker.engine.running)
        loaded = Gauge("flywheel_worker_loaded_adapters", "LoRA adapters loaded", registry=r)
        loaded.set_function(lambda: len(worker.adapters.loaded))
        failed = Gauge(
            "flywheel_worker_adapter_load_failures", "Adapter loads refused since start", registry=r
        )
        failed.set_function(lambda: worker.adapters.failed_loads)
        steps = Gauge("flywheel_worker_decode_steps", "Decoding steps since start", registry=r)
        steps.set_function(lambda: worker.engine.steps)

"""The mock's shared runtime state: live behaviours, the request log, per-model stats.

Handlers reach it through `request.app[STATE]`; nothing here is a module global.
"""

from __future__ import annotations

import time
from collections import deque
from dataclasses import dataclass

from aiohttp import web

from benchmarks.mock_upstream.behaviour import BehaviourTable, MockConfig
from benchmarks.mock_upstream.plan import JSON

LOGGED_HEADERS = frozenset({"authorization", "content-type"})


@dataclass(slots=True)
class ModelStats:
    requests: int = 0
    failures: int = 0  # injected failures and context-length refusals
    streams_started: int = 0
    streams_completed: int = 0
    streams_cancelled: int = 0  # the client went away before the end


class MockState:
    """Everything the handlers share: behaviours, request log, stats, the id counter."""

    def __init__(self, config: MockConfig) -> None:
        self.config = config
        self.table = BehaviourTable(config)
        self.auth = f"Bearer {config.api_key}" if config.api_key else None
        self.log: deque[JSON] | None = deque(maxlen=config.log_size) if config.log_size else None
        self.stats: dict[str, ModelStats] = {}
        self.seq = 0

    def next_seq(self) -> int:
        self.seq += 1
        return self.seq

    def stats_for(self, model: str) -> ModelStats:
        stats = self.stats.get(model)
        if stats is None:
            stats = self.stats[model] = ModelStats()
        return stats

    def record(self, request: web.Request, raw: bytes, model: str | None) -> None:
        if self.log is None:
            return
        headers = {}
        for name, value in request.headers.items():
            lower = name.lower()
            if lower in LOGGED_HEADERS or lower.startswith("x-"):
                headers[lower] = value
        self.log.append(
            {
                "path": request.path,
                "model": model,
                "headers": headers,
                "body": raw.decode("utf-8", "replace"),
                "received_at": time.time(),
            }
        )

    def clear(self) -> None:
        if self.log is not None:
            self.log.clear()
        self.stats.clear()
        self.seq = 0


STATE = web.AppKey("mock_state", MockState)

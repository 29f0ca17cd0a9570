"""Run the gateway under uvicorn (uvloop + httptools, with the limits of http_limits)."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import Any

import uvicorn

from gateway.app import CONFIG_ENV, build_app
from gateway.config import FlywheelConfig, ServerConfig
from gateway.http_limits import HttpLimits, protocol_factory
from gateway.logs import setup_logging
from gateway.routes.ops import MULTIPROC_ENV
from gateway.state import AppState


def serve(config: FlywheelConfig, config_path: Path | None) -> None:
    server = config.server
    setup_logging(server.log_level)
    options: dict[str, Any] = {
        "host": server.host,
        "port": server.port,
        "loop": "uvloop",
        "http": protocol_factory(http_limits(server)),
        "log_level": "warning",
        "access_log": False,
        "timeout_keep_alive": 30,
    }
    if server.workers > 1:
        # Each worker process builds its own app from the same file via the factory,
        # and /metrics aggregates every worker's samples from a shared directory.
        if config_path is not None:
            os.environ[CONFIG_ENV] = str(config_path.resolve())
        os.environ.setdefault(MULTIPROC_ENV, tempfile.mkdtemp(prefix="flywheel-metrics-"))
        uvicorn.run("gateway.app:create_app", factory=True, workers=server.workers, **options)
    else:
        uvicorn.run(build_app(AppState.build(config)), **options)


def http_limits(server: ServerConfig) -> HttpLimits:
    return HttpLimits(
        max_header_bytes=server.max_header_bytes,
        max_headers=server.max_headers,
        header_timeout_s=server.header_timeout_s,
        body_timeout_s=server.body_timeout_s,
        body_total_timeout_s=server.body_total_timeout_s,
    )

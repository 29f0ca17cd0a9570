"""An OpenAI-compatible mock upstream for tests and benchmarks.

Per-model behaviour (latency, pacing, context window, injected failures) is configurable
at startup and live through a control API under /_mock; every request body received is
logged verbatim. Run it with `python -m benchmarks.mock_upstream` or in-process with
`start_mock(config)`.
"""

from __future__ import annotations

from benchmarks.mock_upstream.behaviour import MockConfig, ModelBehaviour, load_config
from benchmarks.mock_upstream.cli import cli_main
from benchmarks.mock_upstream.server import build_app, start_mock

__all__ = ["MockConfig", "ModelBehaviour", "build_app", "cli_main", "load_config", "start_mock"]

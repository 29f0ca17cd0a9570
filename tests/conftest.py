"""Session fixtures: a real mock upstream and a real gateway, each a process on loopback."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import openai
import pytest

from tests.support.gateway_config import ENV, MAIN_KEY, gateway_yaml
from tests.support.processes import MockControl, Server, free_port, start_gateway, start_server


@pytest.fixture(scope="session")
def mock_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    port = free_port()
    logs = tmp_path_factory.mktemp("mock")
    server = start_server(
        ["-m", "benchmarks.mock_upstream", "--port", str(port), "--output-tokens", "8"],
        port,
        logs / "mock.log",
        "/healthz",
    )
    yield server
    server.stop()


@pytest.fixture
def mock(mock_server: Server) -> Iterator[MockControl]:
    control = MockControl(mock_server.url)
    control.reset()
    yield control


@pytest.fixture(scope="session")
def gateway(mock_server: Server, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    work = tmp_path_factory.mktemp("gateway")
    config = work / "flywheel.yaml"
    config.write_text(gateway_yaml(mock_server.url, f"http://127.0.0.1:{free_port()}"))
    server = start_gateway(config, ENV)
    yield server
    server.stop()


@pytest.fixture
def client(gateway: Server) -> openai.OpenAI:
    return make_client(gateway, MAIN_KEY)


def make_client(gateway: Server, key: str) -> openai.OpenAI:
    return openai.OpenAI(base_url=f"{gateway.url}/v1", api_key=key, max_retries=0, timeout=20)


@pytest.fixture
def gateway_log(gateway: Server) -> Path:
    return gateway.log_path

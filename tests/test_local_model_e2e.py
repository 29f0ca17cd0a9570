"""End to end on the real SmolLM2-135M: the openai SDK -> gateway -> local worker.

The worker runs the converted SmolLM2 (`flywheel local-model prepare`, which `make` runs
once) and finds adapters in the same SQLite store the gateway reads, so a registry
promote or rollback changes which adapter answers, with no load call in between.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import openai
import pytest

pytest.importorskip("torch")
pytest.importorskip("peft")

from local_worker.model_files import resolve
from tests.conftest import make_client
from tests.support.processes import Server, free_port, start_gateway, start_server
from tests.support.tiny_model import build_adapter

ADMIN = "sk-local-admin"
KEYS = {"L_MAIN_KEYS": "sk-local-main", "L_ADMIN": ADMIN}
BASE = "local/smollm2-135m"
USER = [{"role": "user", "content": "What is the capital of France?"}]


@pytest.fixture(scope="module")
def stack(mock_server: Server, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    work = tmp_path_factory.mktemp("local-e2e")
    store = f"sqlite:///{work / 'flywheel.db'}"
    port = free_port()
    worker = start_server(
        ["-m", "gateway", "local-model", "serve", "--port", str(port), "--store", store,
         "--embedding-model", "none", "--max-model-len", "1024",
         "--adapters-root", str(tmp_path_factory.getbasetemp())],  # the tests' adapters
        port, work / "worker.log", "/healthz", timeout_s=180,
    )  # fmt: skip
    config = work / "flywheel.yaml"
    config.write_text(f"""
store: "{store}"
providers:
  local: {{kind: openai, base_url: "http://127.0.0.1:{port}/v1", location: local,
           read_timeout_s: 60}}
  up: {{kind: openai, base_url: "{mock_server.url}/v1"}}
models:
  {BASE}: {{provider: local, model: smollm2-135m, fallbacks: [big]}}
  big: {{provider: up, model: mock-large, context_window: 100000}}
tenants:
  main: {{api_keys_env: L_MAIN_KEYS}}
admin: {{api_key_env: L_ADMIN}}
""")
    gateway = start_gateway(config, KEYS)
    yield gateway
    gateway.stop()
    worker.stop()


@pytest.fixture
def client(stack: Server) -> openai.OpenAI:
    return make_client(stack, "sk-local-main").with_options(timeout=120)


def ask(client: openai.OpenAI, model: str = BASE) -> tuple[str, str]:
    raw = client.chat.completions.with_raw_response.create(
        model=model,
        messages=USER,
        max_tokens=12,
        temperature=0,  # type: ignore[arg-type]
    )
    return str(raw.parse().choices[0].message.content), raw.headers["x-flywheel-route"]


def test_real_model_answers_through_the_gateway(client: openai.OpenAI) -> None:
    reply = client.chat.completions.create(
        model=BASE,
        messages=USER,
        max_tokens=12,
        temperature=0,  # type: ignore[arg-type]
    )
    assert "Paris" in str(reply.choices[0].message.content)
    assert reply.usage is not None and 0 < reply.usage.completion_tokens <= 12
    stream = client.chat.completions.create(
        model=BASE, messages=USER, max_tokens=12, temperature=0, stream=True,  # type: ignore[arg-type]
    )  # fmt: skip
    text = "".join(c.choices[0].delta.content or "" for c in stream if c.choices)
    assert text == reply.choices[0].message.content


def test_context_overflow_falls_back_to_a_bigger_model(client: openai.OpenAI) -> None:
    long = [{"role": "user", "content": "lorem ipsum dolor " * 600}]
    raw = client.chat.completions.with_raw_response.create(
        model=BASE,
        messages=long,
        max_tokens=8,  # type: ignore[arg-type]
    )
    assert raw.headers["x-flywheel-route"] == "big"
    assert raw.headers["x-flywheel-fallbacks"] == "1"


def test_registry_promote_and_rollback_change_the_answering_adapter(
    client: openai.OpenAI, stack: Server, tmp_path: Path
) -> None:
    base_dir = resolve("smollm2-135m").path
    admin = httpx.Client(
        base_url=stack.url, headers={"authorization": f"Bearer {ADMIN}"}, timeout=30
    )
    for seed in (1, 2):
        path = build_adapter(base_dir, tmp_path / f"v{seed}", seed=seed, r=4, alpha=256)
        created = admin.post(
            "/admin/adapters",
            json={"name": "style", "base_model": "smollm2-135m", "location": str(path)},
        )
        assert created.status_code == 201, created.text
    base_text, _ = ask(client)

    def routed(version: int) -> str:
        for _ in range(40):  # the gateway sees registry changes within about a second
            try:
                text, route = ask(client, f"{BASE}:style")
            except openai.NotFoundError:  # nothing active yet in this replica's cache
                time.sleep(0.1)
                continue
            if route == f"{BASE}:style-v{version}":
                return text
        raise AssertionError(f"never routed to v{version}")

    assert admin.post("/admin/adapters/style/promote", json={"version": 1}).status_code == 200
    v1 = routed(1)
    assert admin.post("/admin/adapters/style/promote", json={"version": 2}).status_code == 200
    v2 = routed(2)
    assert len({base_text, v1, v2}) == 3  # each version answers with its own weights
    assert admin.post("/admin/adapters/style/rollback").status_code == 200
    assert routed(1) == v1

"""Adapter canaries judged on live traffic, end to end: gateway + mock upstream + learner.

A `location: local` provider points at the mock upstream (standing in for the worker),
so the route header says which adapter version answered. A trained version (registered
by a job) goes into canary; users like it better than the active one, and the learner
promotes it. The next trained version is worse; the learner rolls it back.
"""

from __future__ import annotations

import random
import time
from collections.abc import Iterator

import httpx
import openai
import pytest

from tests.conftest import make_client
from tests.support.gateway_config import one_tenant_config
from tests.support.processes import Server, start_gateway, start_learner

ADMIN = "sk-canary-admin"
KEYS = {"C_KEYS": "sk-canary", "C_ADMIN": ADMIN}
BASE = "local/smollm2-135m"
POLICY = """tenant: canary
virtual_models: [auto]
learning:
  reward: {horizon_s: 0.3, default: null, retry_window_s: 0}
  # The mock answers in ~2 ms, so one scheduling hiccup (28 ms) would triple a p95; this
  # test is about reward, so latency only counts beyond 20x.
  canary: {share: 0.5, min_requests: 12, max_latency_ratio: 20}
rules:
  - name: all
    route: {strategy: first, chain: [local/smollm2-135m]}
"""
QUALITY = {"style-v1": 0.5, "style-v2": 0.9, "style-v3": 0.1}


@pytest.fixture(scope="module")
def stack(mock_server: Server, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    work = tmp_path_factory.mktemp("canary")
    config = one_tenant_config(
        work,
        "canary",
        POLICY,
        providers={"local": f'{{kind: openai, base_url: "{mock_server.url}/v1", location: local}}'},
        models={BASE: "{provider: local, model: smollm2-135m}"},
        keys_env="C_KEYS",
        admin_env="C_ADMIN",
    )
    gateway = start_gateway(config, KEYS)
    # The learner's own defaults (5%, 50 requests) give way to the tenant's policy.
    learner = start_learner(config, work, KEYS)
    yield gateway
    learner.stop()
    gateway.stop()


def traffic(client: openai.OpenAI, http: httpx.Client, rng: random.Random, n: int) -> list[str]:
    """n requests with feedback by each version's quality; the versions that answered."""
    seen = []
    for _ in range(n):
        raw = client.chat.completions.with_raw_response.create(
            model=f"{BASE}:style", messages=[{"role": "user", "content": "hello"}]
        )
        version = raw.headers["x-flywheel-route"].rpartition(":")[2]
        seen.append(version)
        good = rng.random() < QUALITY[version]
        rating = {"kind": "thumbs", "value": "up" if good else "down"}
        request_id = raw.headers["x-flywheel-request-id"]
        http.post("/v1/feedback", json={"request_id": request_id, **rating})
    return seen


def status_of(admin: httpx.Client, adapter: str) -> str:
    return str(admin.get(f"/admin/adapters/{adapter}").json()["status"])


def test_canary_is_promoted_when_better_and_rolled_back_when_worse(stack: Server) -> None:
    client = make_client(stack, "sk-canary")
    http = httpx.Client(base_url=stack.url, headers={"authorization": "Bearer sk-canary"})
    admin = httpx.Client(base_url=stack.url, headers={"authorization": f"Bearer {ADMIN}"})
    rng = random.Random(3)

    def add(created_by: str) -> None:
        body = {"name": "style", "base_model": "smollm2-135m", "location": "/adapters/x",
                "created_by": created_by, "tenants": ["canary"]}  # fmt: skip
        assert admin.post("/admin/adapters", json=body).status_code == 201

    add("alice")
    assert admin.post("/admin/adapters/style/promote", json={"version": 1}).status_code == 200
    time.sleep(1.2)  # every replica routes by the new registry within a second
    add("job:sft-1")  # a trained version: the learner starts its canary
    deadline = time.monotonic() + 10
    while status_of(admin, "style-v2") != "canary":
        assert time.monotonic() < deadline, "v2 never became the canary"
        time.sleep(0.1)
    assert admin.get("/admin/adapters/style-v2").json()["canary_share"] == 0.5  # the policy's
    deadline = time.monotonic() + 60
    while status_of(admin, "style-v2") != "active":
        assert time.monotonic() < deadline, "v2 was never promoted"
        traffic(client, http, rng, 10)
    assert status_of(admin, "style-v1") == "retired"
    time.sleep(1.2)  # every replica routes by the new registry
    assert set(traffic(client, http, rng, 8)) == {"style-v2"}

    add("job:rl-1")  # worse than the active one: rolled back automatically
    deadline = time.monotonic() + 60
    while status_of(admin, "style-v3") != "retired":
        assert time.monotonic() < deadline, "v3 was never rolled back"
        traffic(client, http, rng, 10)
    assert status_of(admin, "style-v2") == "active"
    audit = admin.get("/admin/audit").json()
    actions = {(e["actor"], e["action"]) for e in audit}
    assert ("learner", "adapter.promote") in actions and ("learner", "adapter.retire") in actions

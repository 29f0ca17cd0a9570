"""The learning loop end to end, with real processes: gateway + mock upstream + learner.

Two upstream models of different quality behind one `bandit` rule whose static chain puts
the weak one first; a feedback generator rates answers like users who prefer the strong
one; the learner turns that into published parameters and the gateway's traffic moves to
the strong model (read from `x-flywheel-route`). Flipping the `bandit` kill switch sends
every request back to the static chain within about a second.
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

ADMIN = "sk-learn-admin"
KEYS = {"LEARN_KEYS": "sk-learn", "LEARN_ADMIN": ADMIN}
POLICY = """tenant: learn
version: "1"
virtual_models: [auto]
classifier_tier: fast
learning:
  algorithm: linucb
  min_explore: 0.2
  max_shift: 1.0
  publish_every: 15
  ope_tolerance: 0.5
  min_ess: 5
  reward: {horizon_s: 0.5, default: null, retry_window_s: 0}
rules:
  - name: learned
    route: {strategy: bandit, chain: [weak, strong]}
"""


@pytest.fixture(scope="module")
def loop(mock_server: Server, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    work = tmp_path_factory.mktemp("learner")
    config = one_tenant_config(
        work,
        "learn",
        POLICY,
        providers={"up": f'{{kind: openai, base_url: "{mock_server.url}/v1"}}'},
        models={
            "weak": "{provider: up, model: mock-weak}",
            "strong": "{provider: up, model: mock-strong}",
        },
        keys_env="LEARN_KEYS",
        admin_env="LEARN_ADMIN",
    )
    gateway = start_gateway(config, KEYS)
    learner = start_learner(config, work, KEYS)
    yield gateway
    learner.stop()
    gateway.stop()


def ask(client: openai.OpenAI, rng: random.Random, http: httpx.Client) -> str:
    raw = client.chat.completions.with_raw_response.create(
        model="auto", messages=[{"role": "user", "content": f"question {rng.random()}"}]
    )
    route = raw.headers["x-flywheel-route"]
    good = rng.random() < (0.9 if route == "strong" else 0.15)
    http.post(
        "/v1/feedback",
        json={"request_id": raw.headers["x-flywheel-request-id"], "kind": "thumbs",
              "value": "up" if good else "down"},
    ).raise_for_status()  # fmt: skip
    return route


def test_traffic_moves_to_the_better_model_and_the_kill_switch_returns_it(loop: Server) -> None:
    client = make_client(loop, "sk-learn")
    http = httpx.Client(base_url=loop.url, headers={"authorization": "Bearer sk-learn"})
    admin = httpx.Client(base_url=loop.url, headers={"authorization": f"Bearer {ADMIN}"})
    rng = random.Random(5)
    first = [ask(client, rng, http) for _ in range(10)]
    assert set(first) == {"weak"}  # nothing published yet: the static chain
    recent: list[str] = []
    deadline = time.monotonic() + 90
    while time.monotonic() < deadline:
        recent = [*recent, ask(client, rng, http)][-30:]
        if len(recent) == 30 and recent.count("strong") >= 21:
            break
        time.sleep(0.02)
    assert recent.count("strong") >= 21, f"traffic never moved: {recent}"
    for _ in range(40):  # the learner reports about once a second
        status = admin.get("/admin/learner").json()
        arms = status["rules"].get("learn/learned", {}).get("arms", {})
        if arms.get("strong", {}).get("decisions"):
            break
        time.sleep(0.1)
    assert status["live_versions"].get("learn/learned")
    assert any(d["action"] == "learner.publish" for d in status["decisions"])
    assert arms["strong"]["mean_reward"] > arms["weak"]["mean_reward"]

    flipped = time.monotonic()
    admin.post("/admin/kill", json={"scope": "job", "target": "bandit", "on": True})
    while (admin.get("/admin/kill").json()["process"] or {}).get("job:bandit") != "on":
        assert time.monotonic() - flipped < 3, "kill switch not seen by the gateway"
        time.sleep(0.02)
    assert time.monotonic() - flipped < 1.5
    assert {ask(client, rng, http) for _ in range(15)} == {"weak"}  # the static chain
    admin.post("/admin/kill", json={"scope": "job", "target": "bandit", "on": False})

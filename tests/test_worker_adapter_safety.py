"""Hostile and malformed adapters, admin tokens and path confinement on a real worker process.

The worker runs a tiny random model with `--max-loras 2`, an adapters root and an admin
token. Every refusal must be a 400 that leaves the base model's answers byte-identical and
the worker able to load, unload and evict afterwards, without growing its memory.
"""

from __future__ import annotations

import asyncio
import json
import shutil
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, cast

import httpx
import openai
import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("peft")

from safetensors.torch import load_file, save_file  # noqa: E402
from starlette.requests import Request  # noqa: E402

from gateway.adapters import register  # noqa: E402
from gateway.errors import AuthenticationFailed, PermissionDenied  # noqa: E402
from gateway.store import open_store  # noqa: E402
from local_worker.admin_auth import AdminToken  # noqa: E402
from local_worker.requests import Limits  # noqa: E402
from local_worker.server import Worker, build_app  # noqa: E402
from tests.support.processes import Server, free_port, start_server  # noqa: E402
from tests.support.tiny_model import build_adapter, build_tiny_model  # noqa: E402

TOKEN = "safety-test-admin-token-0123456789"
ADMIN = {"authorization": f"Bearer {TOKEN}"}
USER = [{"role": "user", "content": "Tell me about the weather."}]
WEIGHTS = "adapter_model.safetensors"
CONFIG = "adapter_config.json"


@pytest.fixture(scope="module")
def files(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("safety")
    tiny = build_tiny_model(root / "tiny", max_positions=128)
    adapters = root / "adapters"
    out = {"root": root, "tiny": tiny, "adapters": adapters}
    for name, seed in (("good1", 1), ("good2", 2), ("good3", 3)):
        out[name] = build_adapter(tiny, adapters / name, seed=seed)
    out["outside"] = build_adapter(tiny, root / "outside" / "adapter", seed=4)
    store_url = f"sqlite:///{root / 'flywheel.db'}"

    async def add() -> None:
        store = open_store(store_url)
        await store.start()
        for name, location in (("inside", out["good1"]), ("escape", out["outside"])):
            await register(
                store, name=name, base_model="tiny", location=str(location), actor="test"
            )
        await store.close()

    asyncio.run(add())
    return out


@pytest.fixture(scope="module")
def worker(files: dict[str, Path]) -> Iterator[Server]:
    port = free_port()
    server = start_server(
        ["-m", "gateway", "local-model", "serve", "--model", str(files["tiny"]),
         "--served-model-name", "tiny", "--port", str(port), "--max-model-len", "128",
         "--max-loras", "2", "--embedding-model", "none", "--adapters-root",
         str(files["adapters"]), "--admin-token-env", "SAFETY_WORKER_TOKEN",
         "--store", f"sqlite:///{files['root'] / 'flywheel.db'}"],
        port, files["root"] / "worker.log", "/healthz", env={"SAFETY_WORKER_TOKEN": TOKEN},
        timeout_s=120,
    )  # fmt: skip
    yield server
    server.stop()


@pytest.fixture(scope="module")
def http(worker: Server) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=worker.url, timeout=60) as client:
        yield client


@pytest.fixture(scope="module")
def client(worker: Server) -> openai.OpenAI:
    return openai.OpenAI(base_url=f"{worker.url}/v1", api_key="unused", max_retries=0, timeout=60)


def answer(client: openai.OpenAI, model: str = "tiny") -> str:
    reply = client.chat.completions.create(
        model=model,
        messages=USER,
        max_tokens=12,
        temperature=0,
        seed=7,  # type: ignore[arg-type]
    )
    return str(reply.choices[0].message.content)


def load(http: httpx.Client, name: str, path: Path | str, **headers: str) -> httpx.Response:
    body = {"lora_name": name, "lora_path": str(path)}
    return http.post("/v1/load_lora_adapter", json=body, headers=headers or ADMIN)


def unload(http: httpx.Client, name: str, **headers: str) -> httpx.Response:
    return http.post("/v1/unload_lora_adapter", json={"lora_name": name}, headers=headers or ADMIN)


def loaded_count(http: httpx.Client) -> float:
    for line in http.get("/metrics").text.splitlines():
        if line.startswith("flywheel_worker_loaded_adapters "):
            return float(line.split()[1])
    raise AssertionError("no loaded-adapters gauge")


def rss_kb(server: Server) -> int:
    for line in Path(f"/proc/{server.process.pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise AssertionError("no VmRSS")


Tensors = dict[str, Any]


def variant(
    good: Path,
    out: Path,
    config: dict[str, Any] | None = None,
    tensors: Callable[[Tensors], Tensors] | None = None,
) -> Path:
    """A copy of a good adapter with its config updated and/or its tensors changed."""
    if out.exists():
        shutil.rmtree(out)
    out.mkdir(parents=True)
    settings = json.loads((good / CONFIG).read_text())
    settings.update(config or {})
    (out / CONFIG).write_text(json.dumps(settings))
    weights = load_file(str(good / WEIGHTS))
    save_file(tensors(weights) if tensors else weights, str(out / WEIGHTS))
    return out


def with_lm_head(model: Path) -> Callable[[Tensors], Tensors]:
    """Adds a full output-embedding matrix of zeros: loaded as-is it silences the base."""
    config = json.loads((model / "config.json").read_text())
    head = torch.zeros(config["vocab_size"], config["hidden_size"])
    return lambda weights: {**weights, "base_model.model.lm_head.weight": head}


def transposed(weights: Tensors) -> Tensors:
    key = next(k for k in weights if k.endswith("q_proj.lora_A.weight"))
    return {**weights, key: weights[key].T.contiguous()}


def embedding(weights: Tensors) -> Tensors:
    extra = {"base_model.model.model.embed_tokens.lora_embedding_A": torch.zeros(8, 100)}
    return {**weights, **extra}


def nan(weights: Tensors) -> Tensors:
    key = next(iter(weights))
    broken = weights[key].clone()
    broken[0, 0] = float("nan")
    return {**weights, key: broken}


def only_a(weights: Tensors) -> Tensors:
    return {k: v for k, v in weights.items() if not k.endswith("o_proj.lora_B.weight")}


MALFORMED: dict[str, tuple[dict[str, Any] | None, Callable[[Tensors], Tensors] | None, str]] = {
    "rank_mismatch": ({"r": 4}, None, "shape"),
    "huge_rank": ({"r": 100000}, None, "max_lora_rank"),
    "modules_to_save": ({"modules_to_save": ["lm_head"]}, None, "modules_to_save"),
    "wrong_shape": (None, transposed, "shape"),
    "embedding_tensor": (None, embedding, "not a LoRA tensor"),
    "target_mismatch": ({"target_modules": ["q_proj", "k_proj"]}, None, "target_modules"),
    "fan_in_fan_out": ({"fan_in_fan_out": True}, None, "fan_in_fan_out"),
    "bias": ({"bias": "all"}, None, "bias"),
    "dora": ({"use_dora": True}, None, "use_dora"),
    "task_type": ({"task_type": "SEQ_CLS"}, None, "task_type"),
    "nan": (None, nan, "NaN"),
    "half_pair": (None, only_a, "alone"),
    "rank_as_text": ({"r": "8"}, None, "rank"),
}


def test_hostile_lm_head_adapter_is_refused_and_the_base_model_is_untouched(
    client: openai.OpenAI, http: httpx.Client, files: dict[str, Path]
) -> None:
    before = answer(client)
    hostile = variant(
        files["good1"], files["adapters"] / "hostile", tensors=with_lm_head(files["tiny"])
    )
    refused = load(http, "hostile", hostile)
    assert refused.status_code == 400, refused.text
    error = refused.json()["error"]
    assert error["code"] == "invalid_adapter" and "lm_head.weight" in error["message"]
    assert str(files["root"]) not in error["message"]
    assert answer(client) == before  # byte-identical: the base weights were not written
    assert answer(client) != ""
    with pytest.raises(openai.NotFoundError):
        answer(client, "tiny:hostile")


@pytest.mark.parametrize("kind", sorted(MALFORMED))
def test_malformed_adapter_is_a_400_and_the_worker_still_loads_unloads_and_evicts(
    kind: str, client: openai.OpenAI, http: httpx.Client, files: dict[str, Path]
) -> None:
    before = answer(client)
    config, tensors, reason = MALFORMED[kind]
    bad = variant(files["good2"], files["adapters"] / f"bad-{kind}", config, tensors)
    refused = load(http, f"bad-{kind}", bad)
    assert refused.status_code == 400, refused.text
    assert reason in refused.json()["error"]["message"]
    assert str(files["root"]) not in refused.json()["error"]["message"]
    assert answer(client) == before
    # max_loras is 2: two good loads, then a third evicts the least recently used
    for name in ("good1", "good2", "good3"):
        assert load(http, name, files[name]).status_code == 200
        assert loaded_count(http) <= 2
    assert answer(client, "tiny:good3") != before
    assert answer(client, "tiny:good1") != before  # evicted: loaded again on use
    for name in ("good1", "good2", "good3"):
        assert unload(http, name).status_code == 200
    assert loaded_count(http) == 0
    assert answer(client) == before


def test_failed_loads_do_not_grow_memory(
    http: httpx.Client, worker: Server, files: dict[str, Path]
) -> None:
    """The old worker kept every half-loaded adapter; r=100000 alone was ~300 MB here."""
    kinds = ["huge_rank", "modules_to_save", "rank_mismatch", "wrong_shape", "embedding_tensor"]
    paths = {
        k: variant(files["good2"], files["adapters"] / f"mem-{k}", *MALFORMED[k][:2]) for k in kinds
    }
    for kind in kinds:  # warm up whatever a refusal allocates once
        assert load(http, f"mem-{kind}", paths[kind]).status_code == 400
    start = rss_kb(worker)
    for i in range(10):
        kind = kinds[i % len(kinds)]
        assert load(http, f"mem-{kind}", paths[kind]).status_code == 400
    grown_mb = (rss_kb(worker) - start) / 1024
    assert grown_mb < 16, f"RSS grew {grown_mb:.1f} MB over 10 failed loads"


def test_admin_endpoints_need_the_token(http: httpx.Client, files: dict[str, Path]) -> None:
    for headers in ({}, {"authorization": "Bearer wrong-token-wrong-token"},
                    {"authorization": TOKEN}, {"authorization": f"Basic {TOKEN}"}):  # fmt: skip
        body = {"lora_name": "good1", "lora_path": str(files["good1"])}
        refused = http.post("/v1/load_lora_adapter", json=body, headers=headers)
        assert refused.status_code == 401, refused.text
        assert refused.json()["error"]["type"] == "authentication_error"
        gone = http.post("/v1/unload_lora_adapter", json={"lora_name": "good1"}, headers=headers)
        assert gone.status_code == 401
    assert loaded_count(http) == 0  # nothing was loaded by the refused calls
    assert load(http, "good1", files["good1"]).status_code == 200
    assert unload(http, "good1").status_code == 200


async def test_without_a_token_the_admin_endpoints_are_disabled() -> None:
    worker = Worker("tiny", cast(Any, None), cast(Any, None), Limits(128, 16))
    transport = httpx.ASGITransport(app=build_app(worker))
    async with httpx.AsyncClient(transport=transport, base_url="http://worker") as client:
        for path in ("/v1/load_lora_adapter", "/v1/unload_lora_adapter"):
            reply = await client.post(path, json={"lora_name": "x", "lora_path": "/x"},
                                      headers={"authorization": "Bearer anything"})  # fmt: skip
            assert reply.status_code == 403 and reply.json()["error"]["code"] == "admin_disabled"


def test_admin_token_unit() -> None:
    def request(header: str | None) -> Request:
        headers = [(b"authorization", header.encode())] if header is not None else []
        return Request({"type": "http", "headers": headers})

    token = AdminToken("a" * 20)
    token.check(request("Bearer " + "a" * 20))
    token.check(request("bearer " + "a" * 20))
    for bad in (None, "", "Bearer", "Bearer " + "a" * 19, "a" * 20):
        with pytest.raises(AuthenticationFailed):
            token.check(request(bad))
    with pytest.raises(PermissionDenied):
        AdminToken(None).check(request("Bearer " + "a" * 20))


def test_paths_outside_the_root_are_refused_alike(
    http: httpx.Client, files: dict[str, Path], tmp_path: Path
) -> None:
    adapters, outside = files["adapters"], files["outside"]
    link = adapters / "link-out"
    link.unlink(missing_ok=True)
    link.symlink_to(outside, target_is_directory=True)
    linked_file = adapters / "linked-weights"
    shutil.rmtree(linked_file, ignore_errors=True)
    linked_file.mkdir()
    shutil.copy(outside / CONFIG, linked_file / CONFIG)
    (linked_file / WEIGHTS).symlink_to(outside / WEIGHTS)
    attempts = {
        "existing adapter": outside,
        "missing path": outside.parent / "no-such-adapter",
        "dot-dot": adapters / ".." / "outside" / "adapter",
        "dot-dot missing": adapters / ".." / "outside" / "nothing-here",
        "symlinked dir": link,
        "symlinked weights": linked_file,
        "system file": "/etc/passwd",
        "missing system path": "/etc/no-such-file-here",
        "root itself": adapters,
        "url": "https://example.com/adapter",
    }
    bodies = {}
    for what, path in attempts.items():
        reply = load(http, "probe", path)
        assert reply.status_code == 400, (what, reply.text)
        bodies[what] = reply.json()
        assert str(path) not in reply.text and "passwd" not in reply.text
    assert len({json.dumps(b, sort_keys=True) for b in bodies.values()}) == 1, bodies
    assert "not allowed" in next(iter(bodies.values()))["error"]["message"]
    assert loaded_count(http) == 0


def test_registry_locations_are_confined_too(client: openai.OpenAI, files: dict[str, Path]) -> None:
    base = answer(client)
    assert answer(client, "tiny:inside-v1") != base
    with pytest.raises(openai.BadRequestError) as refused:
        answer(client, "tiny:escape-v1")
    assert "not allowed" in str(refused.value) and str(files["root"]) not in str(refused.value)
    assert answer(client) == base


def test_models_lists_names_without_paths(
    client: openai.OpenAI, http: httpx.Client, files: dict[str, Path]
) -> None:
    assert load(http, "good2", files["good2"]).status_code == 200
    try:
        listing = http.get("/v1/models")
        ids = {m["id"] for m in listing.json()["data"]}
        assert {"tiny", "good2"} <= ids
        assert str(files["root"]) not in listing.text and "root" not in listing.text
        assert all("/" not in json.dumps(m) for m in listing.json()["data"])
    finally:
        unload(http, "good2")


def test_malformed_admin_requests_get_4xx_not_500(
    http: httpx.Client, files: dict[str, Path]
) -> None:
    cases = [
        (http.post("/v1/load_lora_adapter", content=b"{oops", headers=ADMIN), 400),
        (http.post("/v1/load_lora_adapter", json={"lora_name": "x"}, headers=ADMIN), 400),
        (http.post("/v1/load_lora_adapter", json=["x"], headers=ADMIN), 400),
        (load(http, "../evil", files["good1"]), 400),
        (load(http, "a" * 101, files["good1"]), 400),
        (load(http, "x", 12345), 400),
        (unload(http, "never-loaded"), 404),
        (http.post("/v1/unload_lora_adapter", json={}, headers=ADMIN), 400),
    ]
    for reply, status in cases:
        assert reply.status_code == status, reply.text
        assert set(reply.json()["error"]) == {"message", "type", "param", "code"}
    assert load(http, "good3", files["good3"]).status_code == 200
    again = load(http, "good3", files["good3"])
    assert again.status_code == 400 and "already been loaded" in again.json()["error"]["message"]
    assert unload(http, "good3").status_code == 200

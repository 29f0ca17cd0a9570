"""Held-out accuracy of the classifier, per intent and per tier, on the shipped dataset.

Tiers reported: `fast` (lexical alone), `embedding` (the semantic model alone, for
reference), `semantic` (lexical and semantic averaged: what tier="semantic" serves) and
`auto` (lexical, escalating to the average below the confidence threshold; `escalated`
says what share of prompts paid for an embedding). Tiers needing the semantic model are
left out when it is not loaded.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, cast

from gateway.classify.classifier import Classifier, ClassifyTier, load_dataset
from gateway.classify.features import text_view

TIERS = ("fast", "embedding", "semantic", "auto")


def scores(truth: Sequence[str], predicted: Sequence[str]) -> dict[str, Any]:
    """Accuracy, macro F1 and per-label precision / recall / F1 / support."""
    labels = sorted(set(truth) | set(predicted))
    per: dict[str, dict[str, float]] = {}
    for label in labels:
        tp = sum(1 for t, p in zip(truth, predicted, strict=True) if t == p == label)
        n_pred = sum(1 for p in predicted if p == label)
        n_true = sum(1 for t in truth if t == label)
        precision = tp / n_pred if n_pred else 0.0
        recall = tp / n_true if n_true else 0.0
        f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
        per[label] = {
            "precision": round(precision, 4),
            "recall": round(recall, 4),
            "f1": round(f1, 4),
            "support": n_true,
        }
    correct = sum(1 for t, p in zip(truth, predicted, strict=True) if t == p)
    true_labels = [label for label in labels if per[label]["support"]]
    macro = sum(per[label]["f1"] for label in true_labels) / max(len(true_labels), 1)
    return {
        "accuracy": round(correct / max(len(truth), 1), 4),
        "macro_f1": round(macro, 4),
        "per_intent": per,
    }


def evaluate(
    classifier: Classifier, split: str = "test", tiers: Sequence[str] = TIERS
) -> dict[str, Any]:
    """Per-intent precision / recall / F1 and accuracy of each tier on `split`."""
    rows = [row for row in load_dataset() if row.split == split]
    truth = [row.intent for row in rows]
    texts = [row.text for row in rows]
    result: dict[str, Any] = {"split": split, "n": len(rows), "tiers": {}}
    for tier in tiers:
        if tier != "fast" and classifier.semantic is None:
            continue
        if tier == "embedding":
            assert classifier.semantic is not None
            predicted = classifier.semantic.predict(texts)
            result["tiers"][tier] = scores(truth, predicted)
            continue
        if tier not in ("fast", "auto", "semantic"):
            raise ValueError(f"unknown tier {tier!r}: expected one of {TIERS}")
        name = cast(ClassifyTier, tier)
        decisions = [classifier.classify(text_view(text), name) for text in texts]
        result["tiers"][tier] = scores(truth, [d.intent for d in decisions])
        escalated = sum(1 for d in decisions if d.source == "semantic")
        result["tiers"][tier]["escalated"] = round(escalated / max(len(rows), 1), 4)
    return result

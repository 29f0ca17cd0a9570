"""`InjectionGuard`: heuristics and the small classifier, combined, over a request's texts.

Only user and tool content is scanned (`function`, the legacy tool role, counts as tool);
system, developer and assistant content is the operator's or the model's own. Tool content
is indirect injection: it goes through the same models, and its findings' `where` is
prefixed `tool:` so the event tells the two apart.

Per kind the combined score is `0.5 * h + 0.5 * c + 0.25 * min(h, c)` (clipped to 1),
`h` the heuristic score and `c` the classifier's probability: the mean of the two, plus a
bonus when both agree. On the shipped test split this held precision at 1.00 / 0.96
(injection / exfiltration) where taking the max of the two fell to 0.89 / 0.88 at the
same threshold; a strong pattern hit alone (h >= 0.9) still needs the classifier to lean
a little (c >= ~0.1) to fire. See `benchmarks/guard.py` for the measured table.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass

from gateway.guard.heuristics import heuristic_scores, normalize
from gateway.guard.model import GuardClassifier, train_default
from gateway.guard.types import KINDS, MAX_EVIDENCE, FindingSource, GuardFinding, Kind

SCANNED_ROLES = frozenset({"user", "tool", "function"})
TOOL_ROLES = frozenset({"tool", "function"})
_SENTENCE = re.compile(r"[^.!?\n]+[.!?]?")
_MAX_SENTENCES = 16


@dataclass(frozen=True, slots=True)
class KindScore:
    """One kind's scores for one text, before the threshold."""

    heuristic: float
    classifier: float
    combined: float
    evidence: str


def combine(heuristic: float, classifier: float) -> float:
    """The combined score of one kind (see the module docstring)."""
    mixed = 0.5 * heuristic + 0.5 * classifier + 0.25 * min(heuristic, classifier)
    return min(1.0, mixed)


class InjectionGuard:
    """Scans user and tool texts for prompt injection and system-prompt exfiltration."""

    def __init__(self, threshold: float = 0.5, *, classifier: GuardClassifier | None = None):
        self.threshold = threshold
        self.classifier = classifier if classifier is not None else train_default()

    def score(self, text: str) -> dict[Kind, KindScore]:
        """Every kind's heuristic, classifier and combined score for one text."""
        normalized = normalize(text)
        heuristics = heuristic_scores(text, normalized)
        learned = self.classifier.scores_normalized(normalized)
        return {
            kind: KindScore(
                heuristics[kind][0],
                learned[kind],
                combine(heuristics[kind][0], learned[kind]),
                heuristics[kind][1],
            )
            for kind in KINDS
        }

    def scan(self, texts: Sequence[tuple[str, str, str]]) -> list[GuardFinding]:
        """Findings over `(where, role, text)` triples, one per kind and text at most."""
        findings: list[GuardFinding] = []
        for where, role, text in texts:
            if role not in SCANNED_ROLES or not text.strip():
                continue
            label = (
                f"tool:{where}" if role in TOOL_ROLES and not where.startswith("tool:") else where
            )
            for kind, scored in self.score(text).items():
                if scored.combined < self.threshold:
                    continue
                source: FindingSource = (
                    "heuristic" if scored.heuristic >= scored.classifier else "classifier"
                )
                evidence = scored.evidence or self._evidence(text, kind)
                findings.append(
                    GuardFinding(kind, round(scored.combined, 4), source, label, evidence)
                )
        return findings

    def _evidence(self, text: str, kind: Kind) -> str:
        """The sentence the classifier finds most telling, cut to 80 characters."""
        sentences = [s.strip() for s in _SENTENCE.findall(text)[:_MAX_SENTENCES] if s.strip()]
        if not sentences:
            return text.strip()[:MAX_EVIDENCE]
        best = max(sentences, key=lambda sentence: self.classifier.scores(sentence)[kind])
        return " ".join(best.split())[:MAX_EVIDENCE]

"""Guardrails: prompt-injection and system-prompt-exfiltration detection.

Typical use on the request path::

    guard = InjectionGuard(threshold=0.5)          # trains the classifier (~0.1 s)
    findings = guard.scan([("messages[1]", "user", text), ("messages[3]", "tool", result)])
    # -> [GuardFinding(kind, score, source, where, evidence), ...]

The caller picks the tenant's action per finding (flag in the event, block, or route to a
safer rule) and counts each decision by kind and action; this package only detects.
"""

from gateway.guard.detector import InjectionGuard, KindScore, combine
from gateway.guard.heuristics import heuristic_scores, normalize
from gateway.guard.model import GuardClassifier, load_dataset, train_default
from gateway.guard.types import KINDS, GuardFinding, Kind

__all__ = [
    "KINDS",
    "GuardClassifier",
    "GuardFinding",
    "InjectionGuard",
    "Kind",
    "KindScore",
    "combine",
    "heuristic_scores",
    "load_dataset",
    "normalize",
    "train_default",
]

"""PII detection: structured validators, name and address finders, tenant patterns.

`PIIDetector(types, custom).detect(text)` returns sorted, non-overlapping `Entity` spans.
"""

from gateway.pii.detector import ALL_TYPES, PIIDetector, resolve_overlaps
from gateway.pii.types import STRUCTURED_TYPES, TEXT_TYPES, Entity

__all__ = [
    "ALL_TYPES",
    "STRUCTURED_TYPES",
    "TEXT_TYPES",
    "Entity",
    "PIIDetector",
    "resolve_overlaps",
]

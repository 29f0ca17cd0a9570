"""The one contract of the PII detectors: a found entity, as a half-open span of the text."""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["STRUCTURED_TYPES", "TEXT_TYPES", "Entity"]

#: Types found by regular expressions plus validators (checksums, ranges, context words).
STRUCTURED_TYPES: frozenset[str] = frozenset(
    {"EMAIL", "PHONE", "CREDIT_CARD", "US_SSN", "IBAN", "IP_ADDRESS", "SECRET", "DATE_OF_BIRTH"}
)
#: Types that need more than a regex: gazetteers plus capitalisation and context cues.
TEXT_TYPES: frozenset[str] = frozenset({"PERSON", "STREET_ADDRESS"})


@dataclass(frozen=True, slots=True)
class Entity:
    """One finding: `text[start:end] == self.text`; `score` in (0, 1] ranks overlaps."""

    type: str
    start: int
    end: int
    text: str
    score: float

"""`PIIDetector`: runs the chosen finders (plus a tenant's own patterns) and resolves overlaps.

Overlaps are resolved greedily: longer spans win, then higher scores, then earlier starts,
so "call +44 20 7946 0958" is one PHONE and an email inside a JWT-like blob is not split.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable

from sortedcontainers import SortedKeyList

from gateway.pii.names import find_person, find_street_address, load_gazetteers
from gateway.pii.structured import FINDERS
from gateway.pii.types import STRUCTURED_TYPES, TEXT_TYPES, Entity

__all__ = ["ALL_TYPES", "PIIDetector", "resolve_overlaps"]

ALL_TYPES: frozenset[str] = STRUCTURED_TYPES | TEXT_TYPES
_TEXT_FINDERS: dict[str, Callable[[str], list[Entity]]] = {
    "PERSON": find_person,
    "STREET_ADDRESS": find_street_address,
}


def resolve_overlaps(entities: Iterable[Entity]) -> list[Entity]:
    """Keep a non-overlapping subset, preferring long then high-scoring spans; sorted.

    The greedy choice (longest first, then highest score, then earliest start) is made
    within each run of spans that overlap or touch (found by one sweep in start order);
    spans in different runs cannot overlap, so the result is the greedy over all of them,
    in O(n log n). Most runs are one span and cost nothing.
    """
    ordered = sorted(entities, key=_position)
    kept: list[Entity] = []
    run: list[Entity] = []
    reach = 0
    for entity in ordered:
        if run and entity.start > reach:
            kept.extend(run if len(run) == 1 else _greedy(run))
            run = []
        if not run or entity.end > reach:
            reach = entity.end
        run.append(entity)
    if run:
        kept.extend(run if len(run) == 1 else _greedy(run))
    return kept


def _position(entity: Entity) -> tuple[int, int]:
    return entity.start, entity.end


def _greedy(run: list[Entity]) -> list[Entity]:
    """The greedy choice within one run, sorted by position. A candidate overlaps a kept span
    iff the kept span starting last before the candidate's end reaches past its start: kept
    spans are disjoint, so their ends ascend with their starts."""
    ranked = sorted(run, key=lambda e: (-(e.end - e.start), -e.score, e.start))
    kept: SortedKeyList[Entity] = SortedKeyList(key=_position)
    for entity in ranked:
        before = kept.bisect_key_left((entity.end, -1))  # kept spans starting before its end
        if before and kept[before - 1].end > entity.start:
            continue
        kept.add(entity)
    return list(kept)


class PIIDetector:
    """Finds PII of the given types; `custom` maps a tenant's own type name to a regex.

    `types=None` means every built-in type. Custom patterns always run; a pattern with a
    named group `value` reports only that group (e.g. `cust(?:omer)? id: (?P<value>C-\\d+)`).
    """

    def __init__(self, types: set[str] | None = None, custom: dict[str, str] | None = None):
        chosen = set(ALL_TYPES) if types is None else set(types)
        unknown = chosen - ALL_TYPES
        if unknown:
            raise ValueError(f"unknown PII types: {sorted(unknown)}; known: {sorted(ALL_TYPES)}")
        self.types = frozenset(chosen)
        self.custom = dict(custom or {})
        self._finders = [
            finder
            for name, finder in (*FINDERS.items(), *_TEXT_FINDERS.items())
            if name in self.types
        ]
        self._custom = [(name, re.compile(pattern)) for name, pattern in self.custom.items()]
        if "PERSON" in self.types:
            load_gazetteers()  # ~80 ms once, here rather than on the first request

    def detect(self, text: str) -> list[Entity]:
        """Entities in `text`, sorted by start, never overlapping."""
        found: list[Entity] = []
        for finder in self._finders:
            found.extend(finder(text))
        for name, pattern in self._custom:
            group = "value" if "value" in pattern.groupindex else 0
            for m in pattern.finditer(text):
                if m.end(group) > m.start(group):
                    found.append(Entity(name, m.start(group), m.end(group), m.group(group), 1.0))
        return resolve_overlaps(found)

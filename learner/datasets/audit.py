"""What may go into a training snapshot, and the numbers that say what was kept out.

- `Screener.check(text, role)`: the first safety reason a text must stay out of training
  data, or None. Raw PII (`gateway.pii`: the store keeps redacted text, but a tenant may log
  with `logs: off`, or a type may be newer than the log), harmful content (a small keyword
  list by category), prompt injection (`gateway.guard`, on user, tool and correction text).
  Verdicts are cached per (text, role): a system prompt shared by a tenant's requests is
  scanned once.
- `quality_issue(text, ...)`: empty, too short, too long, or mostly not text.
- `normalize`, `token_set`, `near_duplicate_groups`: near-duplicates by token-set Jaccard,
  found with prefix filtering (every pair at or above the threshold is found; candidates
  come only from sharing a rare token, so real text costs about O(n log n)).
- `skew`: counts and shares by tenant or intent, with a warning above a maximum share.
- `Audit`: the report saved beside the snapshot's data.
"""

from __future__ import annotations

import math
import re
import unicodedata
from bisect import bisect_left
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

from gateway.guard import InjectionGuard
from gateway.pii import PIIDetector

#: Roles whose text the injection guard scans; a correction is a user's text too.
INJECTION_ROLES = frozenset({"user", "tool", "function", "correction"})

_NOT_WORD = re.compile(r"[^\w\s]|_")

# Small on purpose: requests for serious harm, matched on normalized text. An answer that
# refuses such a request still names it and is dropped too: the data set loses little.
HARMFUL: dict[str, re.Pattern[str]] = {
    name: re.compile(pattern)
    for name, pattern in {
        "weapons": r"\b(?:(?:build|make|assemble|construct)\w* (?:a |an )?(?:pipe |dirty )?bomb"
        r"|explosive device|nerve agent|sarin|ricin|bioweapon|chemical weapon)\b",
        "malware": r"\b(?:ransomware|keylogger|botnet|(?:write|create|code) (?:a |an )?"
        r"(?:virus|malware|trojan|worm)|ddos (?:attack|tool))\b",
        "self_harm": r"\b(?:kill myself|end my life|suicide method\w*|how to (?:commit suicide"
        r"|self harm|hurt myself))\b",
        "violence": r"\b(?:how (?:to|do i|can i) (?:kill|murder|poison) (?:a |my )?(?:someone|"
        r"somebody|person|people|wife|husband|neighbou?r|boss)|hire (?:a |an )?hitman)\b",
        "sexual_minors": r"\b(?:(?:child|minor|underage)\w* (?:porn\w*|sexual\w*|nudes?)|csam)\b",
        "drugs": r"\b(?:synthesi[sz]e|cook|make|manufactur\w*) (?:meth|methamphetamine|"
        r"fentanyl|heroin)\b",
        "hate": r"\b(?:kill|exterminate|gas) all (?:the )?(?:jews|muslims|christians|blacks|"
        r"whites|gays|immigrants|women)\b",
    }.items()
}


def normalize(text: str) -> str:
    """Case-folded, punctuation and symbols removed, whitespace collapsed."""
    folded = unicodedata.normalize("NFKC", text).casefold()
    return " ".join(_NOT_WORD.sub(" ", folded).split())


def token_set(text: str) -> frozenset[str]:
    return frozenset(normalize(text).split())


def harmful_category(text: str) -> str | None:
    """The first harmful category whose keywords occur in `text`, or None."""
    normalized = normalize(text)
    for name, pattern in HARMFUL.items():
        if pattern.search(normalized):
            return name
    return None


def quality_issue(text: str, min_chars: int, max_chars: int, min_text_ratio: float) -> str | None:
    """`empty`, `too_short`, `too_long` or `non_text` (too few letters and spaces), or None."""
    stripped = text.strip()
    if not stripped:
        return "empty"
    if len(stripped) < min_chars:
        return "too_short"
    if len(stripped) > max_chars:
        return "too_long"
    texty = sum(1 for c in stripped if c.isalpha() or c.isspace())
    if texty / len(stripped) < min_text_ratio:
        return "non_text"
    return None


@dataclass(frozen=True, slots=True)
class Verdict:
    """Why a text stays out: `reason` (pii, harmful, injection) and what was found."""

    reason: str
    detail: str


class Screener:
    """Safety checks for training text; build one and reuse it (the guard trains at start)."""

    def __init__(
        self,
        pii_types: Iterable[str] | None = None,
        injection_threshold: float = 0.5,
        *,
        detector: PIIDetector | None = None,
        guard: InjectionGuard | None = None,
    ) -> None:
        types = set(pii_types) if pii_types is not None else None
        self.detector = detector if detector is not None else PIIDetector(types)
        self.guard = guard if guard is not None else InjectionGuard(injection_threshold)
        self._cache: dict[tuple[str, str], Verdict | None] = {}

    def check(self, text: str, role: str) -> Verdict | None:
        key = (text, role if role in INJECTION_ROLES else "")
        if key not in self._cache:
            self._cache[key] = self._check(text, role)
        return self._cache[key]

    def _check(self, text: str, role: str) -> Verdict | None:
        entities = self.detector.detect(text)
        if entities:
            return Verdict("pii", entities[0].type)
        category = harmful_category(text)
        if category is not None:
            return Verdict("harmful", category)
        if role in INJECTION_ROLES:
            scanned_role = "user" if role == "correction" else role
            findings = self.guard.scan([("text", scanned_role, text)])
            if findings:
                return Verdict("injection", findings[0].kind)
        return None


def _ceil(x: float) -> int:
    return math.ceil(x - 1e-9)


def near_duplicate_groups(
    sets: Sequence[frozenset[str]], threshold: float, same: Sequence[str | None] | None = None
) -> list[int]:
    """A group number per item: items whose token sets have Jaccard >= `threshold` are in
    one group (transitively), and so are items with the same non-None `same` key. An empty
    set joins others only through `same`. Groups are numbered by their first item."""
    parent = list(range(len(sets)))

    def find(i: int) -> int:
        while parent[i] != i:
            parent[i] = parent[parent[i]]
            i = parent[i]
        return i

    def union(a: int, b: int) -> None:
        ra, rb = find(a), find(b)
        if ra != rb:
            parent[max(ra, rb)] = min(ra, rb)

    if same is not None:
        first: dict[str, int] = {}
        for i, key in enumerate(same):
            if key is not None:
                union(first.setdefault(key, i), i)
    # Prefix filtering: with tokens in one global order (rarest first), two sets with
    # Jaccard >= t share a token among the first |s| - ceil(t|s|) + 1 tokens of each. Index
    # lists grow in size order, so bisect skips sets too small to reach t; the first shared
    # token's positions bound the overlap (the positional filter of PPJoin).
    frequency = Counter(token for s in sets for token in s)
    rank = {t: r for r, t in enumerate(sorted(frequency, key=lambda t: (frequency[t], t)))}
    postings: dict[int, tuple[list[int], list[tuple[int, int]]]] = {}
    for i in sorted(range(len(sets)), key=lambda k: len(sets[k])):
        size = len(sets[i])
        if size == 0:
            continue
        prefix = sorted(rank[token] for token in sets[i])[: size - _ceil(threshold * size) + 1]
        checked: set[int] = set()
        for p, token in enumerate(prefix):
            sizes, entries = postings.setdefault(token, ([], []))
            for j, q in entries[bisect_left(sizes, _ceil(threshold * size)) :]:
                if j in checked:
                    continue
                checked.add(j)
                other = len(sets[j])
                needed = _ceil(threshold / (1 + threshold) * (size + other))
                if 1 + min(size - p - 1, other - q - 1) < needed or find(i) == find(j):
                    continue
                if len(sets[i] & sets[j]) >= needed:
                    union(i, j)
        for p, token in enumerate(prefix):
            sizes, entries = postings[token]
            sizes.append(size)
            entries.append((i, p))
    return [find(i) for i in range(len(sets))]


@dataclass(frozen=True, slots=True)
class Skew:
    """How one dimension (tenant or intent) is spread over a set of examples."""

    counts: dict[str, int]
    shares: dict[str, float]
    max_share: float
    top: str | None
    warning: str | None = None


def skew(values: Iterable[str | None], dimension: str, max_share: float) -> Skew:
    """Counts and shares (None counts as `unknown`); a warning when one value holds more
    than `max_share` of the examples and there is more than one value."""
    counts = Counter(value if value is not None else "unknown" for value in values)
    total = sum(counts.values())
    ordered = dict(sorted(counts.items(), key=lambda kv: (-kv[1], kv[0])))
    shares = {key: round(count / total, 4) for key, count in ordered.items()}
    top = next(iter(ordered), None)
    share = shares[top] if top is not None else 0.0
    warning = None
    if len(ordered) > 1 and share > max_share:
        warning = f"{dimension} {top!r} holds {share:.0%} of the examples (max {max_share:.0%})"
    return Skew(dict(ordered), shares, share, top, warning)


@dataclass
class Audit:
    """The audit report saved with a snapshot (`audit.json`).

    `dropped[reason][field]`: texts kept out, by reason (no_content, multimodal, pii,
    harmful, injection, empty, too_short, too_long, non_text) and field (prompt, response,
    correction); a dropped prompt takes its whole interaction with it. `findings[reason]
    [detail]`: what the safety checks found (PII type, harmful category, injection kind).
    `duplicates[kind][exact|near]`: examples removed. `skew[kind][tenant|intent]`: spread
    of the kept examples (`kind` is pairs, scored, sft, prompts, or all labelled ones).
    """

    interactions: int = 0
    usable: int = 0
    dropped: dict[str, dict[str, int]] = field(default_factory=dict)
    findings: dict[str, dict[str, int]] = field(default_factory=dict)
    duplicates: dict[str, dict[str, int]] = field(default_factory=dict)
    skew: dict[str, dict[str, Skew]] = field(default_factory=dict)
    warnings: list[str] = field(default_factory=list)

    def drop(self, reason: str, where: str, detail: str | None = None) -> None:
        counts = self.dropped.setdefault(reason, {})
        counts[where] = counts.get(where, 0) + 1
        if detail is not None:
            found = self.findings.setdefault(reason, {})
            found[detail] = found.get(detail, 0) + 1

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Audit:
        return cls(
            interactions=int(data["interactions"]),
            usable=int(data["usable"]),
            dropped=data["dropped"],
            findings=data["findings"],
            duplicates=data["duplicates"],
            skew={
                kind: {dimension: Skew(**value) for dimension, value in dims.items()}
                for kind, dims in data["skew"].items()
            },
            warnings=list(data["warnings"]),
        )

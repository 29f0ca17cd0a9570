"""The guard's one contract: what it reports about a piece of user or tool content.

A `GuardFinding` is one decision (one kind, in one message) that goes into the
interaction event and the Prometheus counters; the per-tenant action (flag, block,
route) is chosen from it by the caller, never here.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

Kind = Literal["prompt_injection", "exfiltration"]
FindingSource = Literal["heuristic", "classifier"]

#: The kinds the guard reports, in a fixed order (metrics labels, benchmark rows).
KINDS: tuple[Kind, ...] = ("prompt_injection", "exfiltration")
#: The label of texts that are neither kind in the shipped data set.
BENIGN = "benign"
#: `evidence` is cut to this many characters.
MAX_EVIDENCE = 80


@dataclass(frozen=True, slots=True)
class GuardFinding:
    """One detected attempt.

    `where` names the message it came from (`messages[2]`, or `tool:messages[3]` for
    tool content, i.e. indirect injection); `score` is in [0, 1]; `source` says which
    model contributed the score; `evidence` is a short matched phrase (<= 80 chars).
    """

    kind: Kind
    score: float
    source: FindingSource
    where: str
    evidence: str

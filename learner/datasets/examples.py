"""The data a snapshot is made of: interactions in, examples of four kinds out.

`Interaction` is one logged request as text (`collect` builds them from the store);
`PairExample`, `ScoredExample`, `SFTExample` and `PromptExample` are what `build_snapshot`
makes of them; `SnapshotOptions` are its settings and `Snapshot` its result.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, dataclass
from typing import Any, Literal, TypeVar

from gateway.events import Feedback
from gateway.transcript import Prompt
from learner.datasets.audit import Audit

KINDS = ("pairs", "scored", "sft", "prompts")
Split = Literal["train", "heldout"]


@dataclass(frozen=True, slots=True)
class Interaction:
    """One logged request as text: its prompt turns, the answer, and its feedback.

    `prompt` is empty and `response` "" when the tenant did not log content. `reward` is
    the learner's reward from the replay buffer, if known; `flags` are the guard finding
    kinds the gateway recorded.
    """

    request_id: str
    tenant: str
    ts: float
    prompt: Prompt
    response: str
    feedback: tuple[Feedback, ...] = ()
    intent: str | None = None
    prompt_hash: str | None = None
    user: str | None = None
    reward: float | None = None
    flags: tuple[str, ...] = ()
    multimodal: bool = False


@dataclass(frozen=True, slots=True)
class PairExample:
    id: str
    split: Split
    prompt: Prompt
    chosen: str
    rejected: str
    source: Literal["correction", "thumbs", "score"]
    margin: float  # reward of chosen - reward of rejected
    tenant: str
    intent: str | None
    ts: float  # the later of the two interactions
    request_ids: tuple[str, str]  # (chosen's, rejected's); the same for a correction


@dataclass(frozen=True, slots=True)
class ScoredExample:
    id: str
    split: Split
    prompt: Prompt
    response: str
    reward: float
    source: Literal["thumbs", "score", "correction", "replay"]
    tenant: str
    intent: str | None
    ts: float
    request_id: str


@dataclass(frozen=True, slots=True)
class SFTExample:
    id: str
    split: Split
    prompt: Prompt
    completion: str
    source: Literal["correction", "thumbs", "score"]
    tenant: str
    intent: str | None
    ts: float
    request_id: str


@dataclass(frozen=True, slots=True)
class PromptExample:
    """A prompt for RL (the policy generates, the reward model scores): it ends with a user
    turn, one per near-duplicate group, labelled or not."""

    id: str
    split: Split
    prompt: Prompt
    tenant: str
    intent: str | None
    ts: float
    request_id: str


Example = PairExample | ScoredExample | SFTExample | PromptExample
E = TypeVar("E", PairExample, ScoredExample, SFTExample, PromptExample)


@dataclass(frozen=True, slots=True)
class SnapshotOptions:
    min_chars: int = 2
    max_prompt_chars: int = 16_000
    max_response_chars: int = 8_000
    min_text_ratio: float = 0.5  # letters and whitespace over all characters
    near_dup_threshold: float = 0.8
    min_score_gap: float = 0.3
    score_range: tuple[float, float] = (0.0, 1.0)  # the feedback API takes scores in [0, 1]
    sft_min_score: float = 0.8
    corrected_reward: float = 0.0
    max_pairs_per_prompt: int = 16
    include_replay_rewards: bool = False  # scored samples from the learner's reward alone
    heldout_fraction: float = 0.2
    heldout_since: float | None = None  # a fixed cutoff instead of the fraction
    max_share: float = 0.5  # skew warning above this share of one tenant or intent
    pii_types: tuple[str, ...] | None = None  # None: every type
    injection_threshold: float = 0.5

    def __post_init__(self) -> None:
        for name in ("near_dup_threshold", "sft_min_score", "min_text_ratio", "max_share"):
            if not 0 < getattr(self, name) <= 1:
                raise ValueError(f"{name} must be in (0, 1]")
        if not 0 <= self.heldout_fraction < 1:
            raise ValueError("heldout_fraction must be in [0, 1)")
        if self.score_range[0] >= self.score_range[1]:
            raise ValueError("score_range must be (low, high) with low < high")
        if self.max_pairs_per_prompt < 1 or self.min_chars < 0:
            raise ValueError("max_pairs_per_prompt must be >= 1 and min_chars >= 0")

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> SnapshotOptions:
        values = dict(data)
        values["score_range"] = tuple(values["score_range"])
        if values.get("pii_types") is not None:
            values["pii_types"] = tuple(values["pii_types"])
        return cls(**values)


@dataclass(frozen=True, slots=True)
class SourceRange:
    """The interactions a snapshot was built from."""

    interactions: int
    first_ts: float | None
    last_ts: float | None
    first_request_id: str | None
    last_request_id: str | None


@dataclass(frozen=True, slots=True)
class Snapshot:
    id: str
    sha256: str
    options: SnapshotOptions
    pairs: tuple[PairExample, ...]
    scored: tuple[ScoredExample, ...]
    sft: tuple[SFTExample, ...]
    prompts: tuple[PromptExample, ...]
    audit: Audit
    source: SourceRange
    cutoff_ts: float | None  # interactions' prompt groups first seen at or after: held out

    def counts(self) -> dict[str, dict[str, int]]:
        out: dict[str, dict[str, int]] = {}
        for kind in KINDS:
            examples: tuple[Example, ...] = getattr(self, kind)
            out[kind] = {
                "train": sum(e.split == "train" for e in examples),
                "heldout": sum(e.split == "heldout" for e in examples),
            }
        return out

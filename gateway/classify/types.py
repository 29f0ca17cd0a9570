"""The classifier's two contracts: what it reads from a request and what it decides.

`RequestView` is the classifier's typed view of an OpenAI request body (built by
`gateway.classify.features.request_text`); `Classification` is its decision, reported
in the interaction event and in the `x-flywheel-intent` response header.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

Tier = Literal["low", "medium", "high"]
Source = Literal["lexical", "semantic", "rule"]

#: The intents the shipped models know. `multimodal` is decided by rule (any image or
#: audio content part), never learned; tenants add their own intents by example.
BUILTIN_INTENTS: tuple[str, ...] = (
    "chat",
    "code",
    "math",
    "summarize",
    "extract",
    "translate",
    "creative",
    "research",
)
MULTIMODAL = "multimodal"


@dataclass(frozen=True, slots=True)
class RequestView:
    """What the classifier needs from one request, extracted once.

    `text` is the last user turn (or the prompt / input); `intent_text` is what the
    intent models read: `text` with a little context from earlier turns prepended when
    the last turn alone is too short to carry an intent ("make it shorter").
    """

    endpoint: str
    text: str
    intent_text: str
    turns: int = 1
    has_images: bool = False
    has_audio: bool = False
    has_tools: bool = False
    wants_json: bool = False
    max_output_tokens: int | None = None

    @property
    def multimodal(self) -> bool:
        return self.has_images or self.has_audio


@dataclass(frozen=True, slots=True)
class Classification:
    """The classifier's decision for one request.

    `confidence` is the winning intent's probability under the model that decided
    (1.0 for a rule); `scores` holds every intent's probability (empty for a rule).
    `complexity` is in [0, 1] and `tier` is its bucket: low < 0.35 <= medium < 0.65 <= high.
    """

    intent: str
    confidence: float
    complexity: float
    tier: Tier
    source: Source
    scores: dict[str, float] = field(default_factory=dict)

    def header_value(self) -> str:
        """The `x-flywheel-intent` header, e.g. `code; confidence=0.91; complexity=0.42; ...`."""
        return (
            f"{self.intent}; confidence={self.confidence:.2f}; complexity={self.complexity:.2f}; "
            f"tier={self.tier}; source={self.source}"
        )

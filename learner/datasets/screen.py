"""Screening one interaction: whether it may be used at all, and what it can teach.

A prompt that fails (no content, images, a guard flag, quality limits, a safety verdict)
drops the whole interaction; a failing answer or correction drops only that text. Every
drop is counted in the `Audit`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from learner.datasets.audit import Audit, Screener, quality_issue
from learner.datasets.examples import Interaction, SnapshotOptions


@dataclass(frozen=True, slots=True)
class Usable:
    """An interaction that passed screening, with what it can teach."""

    item: Interaction
    response: str | None  # None when the answer was kept out
    correction: str | None
    rating: tuple[Literal["thumbs", "score"], float] | None  # the latest thumb or score
    group: int = -1  # its prompt's near-duplicate group


def screen(
    item: Interaction, options: SnapshotOptions, screener: Screener, audit: Audit
) -> Usable | None:
    if not item.prompt and not item.response:
        audit.drop("no_content", "prompt")
        return None
    if item.multimodal:
        audit.drop("multimodal", "prompt")
        return None
    if item.flags:
        audit.drop("injection", "prompt", item.flags[0])
        return None
    whole = "\n".join(t.content for t in item.prompt)
    issue = quality_issue(
        whole, options.min_chars, options.max_prompt_chars, options.min_text_ratio
    )
    if issue is not None:
        audit.drop(issue, "prompt")
        return None
    for turn in item.prompt:
        verdict = screener.check(turn.content, turn.role)
        if verdict is not None:
            audit.drop(verdict.reason, "prompt", verdict.detail)
            return None

    def clean(text: str | None, where: str, role: str) -> str | None:
        if text is None:
            return None
        issue = quality_issue(
            text, options.min_chars, options.max_response_chars, options.min_text_ratio
        )
        if issue is not None:
            audit.drop(issue, where)
            return None
        verdict = screener.check(text, role)
        if verdict is not None:
            audit.drop(verdict.reason, where, verdict.detail)
            return None
        return text.strip()

    feedback = sorted(item.feedback, key=lambda f: f.ts)  # the latest of each kind wins
    corrections = [f.text for f in feedback if f.kind == "correction" and f.text]
    correction = corrections[-1] if corrections else None
    rating: tuple[Literal["thumbs", "score"], float] | None = None
    for f in feedback:
        if f.kind == "thumbs":
            rating = ("thumbs", 1.0 if f.value > 0 else 0.0)
        elif f.kind == "score":
            low, high = options.score_range
            rating = ("score", min(1.0, max(0.0, (f.value - low) / (high - low))))
    replay = options.include_replay_rewards and item.reward is not None
    labelled = rating is not None or correction is not None or replay
    response = clean(item.response, "response", "assistant") if labelled else None
    return Usable(item, response, clean(correction, "correction", "correction"), rating)

"""Candidate examples of each kind from screened interactions, before dedup and split.

Each comes with its prompt's near-duplicate group (`(group, example)`) and the split
"train"; `build_snapshot` deduplicates them and sets the split by group.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from itertools import product
from typing import Any

from learner.datasets.audit import normalize
from learner.datasets.examples import (
    PairExample,
    PromptExample,
    ScoredExample,
    SFTExample,
    SnapshotOptions,
)
from learner.datasets.ids import example_id
from learner.datasets.screen import Usable


def pair_candidates(
    usable: Sequence[Usable], options: SnapshotOptions
) -> list[tuple[int, PairExample]]:
    """A correction over the answer it corrects; thumbs up over down and a higher over a
    lower score (by `min_score_gap`) within one tenant and prompt group, newest first."""
    out: list[tuple[int, PairExample]] = []

    def pair(a: Usable, b: Usable, chosen: str, rejected: str, source: Any, margin: float) -> None:
        if normalize(chosen) == normalize(rejected):
            return
        margin = round(margin, 4)
        out.append((a.group, PairExample(
            example_id("pair", a.item.prompt, chosen, rejected, margin), "train", a.item.prompt,
            chosen, rejected, source, margin, a.item.tenant, a.item.intent,
            max(a.item.ts, b.item.ts), (a.item.request_id, b.item.request_id),
        )))  # fmt: skip

    buckets: dict[tuple[str, int], list[Usable]] = defaultdict(list)
    for u in usable:
        if u.correction is not None and u.response is not None:
            pair(u, u, u.correction, u.response, "correction", 1.0 - options.corrected_reward)
        if u.rating is not None and u.response is not None:
            buckets[(u.item.tenant, u.group)].append(u)
    cap = options.max_pairs_per_prompt
    for bucket in buckets.values():
        newest = sorted(bucket, key=lambda u: (-u.item.ts, u.item.request_id))
        ups = [u for u in newest if u.rating == ("thumbs", 1.0)][:cap]
        downs = [u for u in newest if u.rating == ("thumbs", 0.0)][:cap]
        ranked = sorted(product(range(len(ups)), range(len(downs))), key=lambda ij: (max(ij), ij))
        for i, j in ranked[:cap]:
            pair(ups[i], downs[j], str(ups[i].response), str(downs[j].response), "thumbs", 1.0)
        rated = [(u, u.rating[1]) for u in newest if u.rating and u.rating[0] == "score"]
        gaps = [
            (hi[1] - lo[1], hi[0], lo[0])
            for hi, lo in product(rated[: 2 * cap], rated[: 2 * cap])
            if hi[1] - lo[1] >= options.min_score_gap
        ]
        gaps.sort(key=lambda g: (-g[0], g[1].item.request_id, g[2].item.request_id))
        for gap, hi_u, lo_u in gaps[:cap]:
            pair(hi_u, lo_u, str(hi_u.response), str(lo_u.response), "score", gap)
    return out


def scored_candidates(
    usable: Sequence[Usable], options: SnapshotOptions
) -> list[tuple[int, ScoredExample]]:
    """(prompt, response, reward in [0, 1]): rated answers, corrected answers, corrections,
    and (with `include_replay_rewards`) answers with only the learner's reward."""
    out: list[tuple[int, ScoredExample]] = []
    for u in usable:
        i = u.item
        samples: list[tuple[str, float, Any]] = []
        if u.response is not None:
            if u.rating is not None:
                samples.append((u.response, u.rating[1], u.rating[0]))
            elif u.correction is not None:
                samples.append((u.response, options.corrected_reward, "correction"))
            elif options.include_replay_rewards and i.reward is not None:
                samples.append((u.response, i.reward, "replay"))
        if u.correction is not None:
            samples.append((u.correction, 1.0, "correction"))
        for text, reward, source in samples:
            reward = round(min(1.0, max(0.0, reward)), 4)
            scored_id = example_id("scored", i.prompt, text, reward)
            out.append((u.group, ScoredExample(
                scored_id, "train", i.prompt, text, reward, source, i.tenant, i.intent, i.ts,
                i.request_id,
            )))  # fmt: skip
    return out


def sft_candidates(
    usable: Sequence[Usable], options: SnapshotOptions
) -> list[tuple[int, SFTExample]]:
    """Corrections, and answers rated up (thumb, or score >= `sft_min_score`) otherwise."""
    out: list[tuple[int, SFTExample]] = []
    for u in usable:
        i = u.item
        text: str | None = None
        source: Any = "correction"
        if u.correction is not None:
            text = u.correction
        elif u.response is not None and u.rating is not None:
            kind, value = u.rating
            if (kind == "thumbs" and value == 1.0) or (
                kind == "score" and value >= options.sft_min_score
            ):
                text, source = u.response, kind
        if text is not None:
            out.append((u.group, SFTExample(
                example_id("sft", i.prompt, text), "train", i.prompt, text, source, i.tenant,
                i.intent, i.ts, i.request_id,
            )))  # fmt: skip
    return out


def prompt_candidates(usable: Sequence[Usable]) -> list[tuple[int, PromptExample]]:
    """A group's earliest prompt that ends with a user turn, labelled or not."""
    out: list[tuple[int, PromptExample]] = []
    taken: set[int] = set()
    for u in usable:  # in time order: a group's earliest prompt that ends with a user turn
        i = u.item
        if u.group in taken or i.prompt[-1].role != "user":
            continue
        taken.add(u.group)
        out.append((u.group, PromptExample(
            example_id("prompt", i.prompt), "train", i.prompt, i.tenant, i.intent, i.ts,
            i.request_id,
        )))  # fmt: skip
    return out

"""`build_snapshot`: screen, group prompts, make candidates, deduplicate, split, audit.

Prompts are grouped into near-duplicates (token-set Jaccard >= `near_dup_threshold`, or
the same `prompt_hash`); a group first seen at or after the cutoff (the newest
`heldout_fraction` of interactions, or `heldout_since`) is held out whole.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import replace

from gateway.transcript import Prompt, prompt_text
from learner.datasets.audit import Audit, Screener, near_duplicate_groups, skew, token_set
from learner.datasets.candidates import (
    pair_candidates,
    prompt_candidates,
    scored_candidates,
    sft_candidates,
)
from learner.datasets.examples import (
    E,
    Example,
    Interaction,
    PairExample,
    ScoredExample,
    SFTExample,
    Snapshot,
    SnapshotOptions,
    SourceRange,
    Split,
)
from learner.datasets.ids import snapshot_digest
from learner.datasets.screen import screen


def build_snapshot(
    interactions: Iterable[Interaction],
    options: SnapshotOptions | None = None,
    *,
    screener: Screener | None = None,
) -> Snapshot:
    """Screen, pair, deduplicate, split and audit; pure apart from the screener's cache."""
    options = options or SnapshotOptions()
    screener = screener or Screener(options.pii_types, options.injection_threshold)
    given = sorted(
        {i.request_id: i for i in interactions}.values(), key=lambda i: (i.ts, i.request_id)
    )
    audit = Audit(interactions=len(given))
    usable = [u for i in given if (u := screen(i, options, screener, audit)) is not None]
    audit.usable = len(usable)
    keys = [token_set(_prompt_key(u.item.prompt)) for u in usable]
    hashes = [u.item.prompt_hash for u in usable]
    groups = near_duplicate_groups(keys, options.near_dup_threshold, hashes)
    usable = [replace(u, group=g) for u, g in zip(usable, groups, strict=True)]
    cutoff = _cutoff([u.item.ts for u in usable], options)
    first_seen: dict[int, float] = {}
    for u in usable:
        first_seen.setdefault(u.group, u.item.ts)  # usable is in time order
    heldout = {g for g, ts in first_seen.items() if cutoff is not None and ts >= cutoff}

    pairs = _dedup(pair_candidates(usable, options), options, audit, "pairs", heldout)
    scored = _dedup(scored_candidates(usable, options), options, audit, "scored", heldout)
    sft = _dedup(sft_candidates(usable, options), options, audit, "sft", heldout)
    prompts = _dedup(prompt_candidates(usable), options, audit, "prompts", heldout)
    everything: list[Example] = [*pairs, *scored, *sft]
    kinds: dict[str, Sequence[Example]] = {
        "pairs": pairs, "scored": scored, "sft": sft, "prompts": prompts, "all": everything,
    }  # fmt: skip
    for kind, examples in kinds.items():
        audit.skew[kind] = {
            "tenant": skew((e.tenant for e in examples), "tenant", options.max_share),
            "intent": skew((e.intent for e in examples), "intent", options.max_share),
        }
        audit.warnings += [f"{kind}: {s.warning}" for s in audit.skew[kind].values() if s.warning]
    digest = snapshot_digest(options, kinds)
    source = SourceRange(
        len(given),
        given[0].ts if given else None,
        given[-1].ts if given else None,
        given[0].request_id if given else None,
        given[-1].request_id if given else None,
    )
    return Snapshot(
        digest[:16], digest, options, tuple(pairs), tuple(scored), tuple(sft), tuple(prompts),
        audit, source, cutoff,
    )  # fmt: skip


def _prompt_key(prompt: Prompt) -> str:
    """The text that says which prompt this is: a template's system turn is left out."""
    turns = [t.content for t in prompt if t.role not in ("system", "developer")]
    return "\n".join(turns or [t.content for t in prompt])


def _cutoff(times: Sequence[float], options: SnapshotOptions) -> float | None:
    if options.heldout_since is not None:
        return options.heldout_since
    held = int(len(times) * options.heldout_fraction + 1e-9)
    return sorted(times)[len(times) - held] if held else None


def _dedup(
    candidates: Sequence[tuple[int, E]],
    options: SnapshotOptions,
    audit: Audit,
    kind: str,
    heldout: set[int],
) -> list[E]:
    """Exact (same id) then near duplicates (same prompt group, near-duplicate texts) out;
    the earliest stays. Each kept example gets its prompt group's split."""
    seen: set[str] = set()
    exact = near = 0
    buckets: dict[tuple[int, float], list[E]] = defaultdict(list)
    for group, example in sorted(candidates, key=lambda c: (c[1].ts, c[1].id)):
        if example.id in seen:
            exact += 1
            continue
        seen.add(example.id)
        reward = example.reward if isinstance(example, ScoredExample) else 0.0
        buckets[(group, reward)].append(example)
    kept: list[E] = []
    for (group, _), bucket in buckets.items():
        split: Split = "heldout" if group in heldout else "train"
        texts = [_content_tokens(e) for e in bucket]
        clusters = near_duplicate_groups(texts, options.near_dup_threshold)
        for index, (example, cluster) in enumerate(zip(bucket, clusters, strict=True)):
            if cluster != index:  # a group is numbered by its first (earliest) member
                near += 1
            else:
                kept.append(replace(example, split=split))
    audit.duplicates[kind] = {"exact": exact, "near": near}
    return sorted(kept, key=lambda e: (e.ts, e.id))


def _content_tokens(example: Example) -> frozenset[str]:
    if isinstance(example, PairExample):
        chosen = {f"+{t}" for t in token_set(example.chosen)}
        return frozenset(chosen | {f"-{t}" for t in token_set(example.rejected)})
    if isinstance(example, ScoredExample):
        return token_set(example.response)
    if isinstance(example, SFTExample):
        return token_set(example.completion)
    return token_set(prompt_text(example.prompt))

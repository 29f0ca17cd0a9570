"""Training data for the reward model, SFT and RL, built from what the gateway logged.

Two steps, so tests and jobs can feed interactions directly:

    interactions = await collect(store, request_ids)        # events + feedback, as text
    snapshot = build_snapshot(interactions, SnapshotOptions())
    path = write_snapshot(snapshot, Path(".flywheel/datasets"))  # <out>/<snapshot.id>/

`request_ids` may come from the learner's replay buffer (`replay_rewards(buffer)` maps
them to their rewards, which `collect` can carry along).

What a snapshot holds (each example has a content id and a `split`):
- `pairs`: preference pairs. A correction is chosen over the answer it corrects; a
  thumbs-up answer over a thumbs-down one, and a higher score over a lower one (by at
  least `min_score_gap`), for the same or a near-duplicate prompt of one tenant.
- `scored`: (prompt, response, reward in [0, 1]) for reward regression or KTO: thumbs
  (1/0), scores (mapped from `score_range`), a corrected answer (`corrected_reward`) and
  its correction (1).
- `sft`: prompt -> completion: corrections, and answers rated up (thumb, or score >=
  `sft_min_score`) that were not corrected.
- `prompts`: prompts for RL, labelled or not: the earliest of each near-duplicate group
  that ends with a user turn.

Every text is screened first (`screen`, with the checks in `audit`): raw PII, harmful
content and prompt injection keep it out, as do quality limits; a failing prompt drops its
whole interaction. Prompts are grouped into near-duplicates (token-set Jaccard >=
`near_dup_threshold`, or the same `prompt_hash`); examples are deduplicated within a group
(exact by id, near by their texts). The split is by time: a prompt group first seen at or
after the cutoff (the newest `heldout_fraction` of interactions, or `heldout_since`) is
held out whole, so no prompt or near-duplicate of it is on both sides.

On disk (`write_snapshot`, `load_snapshot`): `<out>/<id>/manifest.json` (id, sha256,
options, counts by kind and split, source range, cutoff), `pairs.jsonl`, `scored.jsonl`,
`sft.jsonl`, `prompts.jsonl` (one example per line, both splits, each with its `split`
field; a prompt is a list of `{"role", "content"}`) and `audit.json`. The id is a sha256
over the sorted (kind, example id, split) triples and the options, so the same data and
options give the same id.

The modules, one job each:
- `examples`: the data (`Interaction`, the four example kinds, `SnapshotOptions`,
  `Snapshot`).
- `collect`: interactions from the store (`collect`, `interaction_from`, `replay_rewards`).
- `audit`: the checks (`Screener`, quality, near-duplicates, skew) and the `Audit` report.
- `screen`: one interaction screened into what it can teach.
- `candidates`: pairs, scored samples, SFT examples and prompts from screened interactions.
- `build`: `build_snapshot` (grouping, dedup, split, skew audit).
- `ids`: content ids of examples and snapshots.
- `files`: `write_snapshot`, `load_snapshot`.
"""

from __future__ import annotations

from learner.datasets.audit import Audit, Screener
from learner.datasets.build import build_snapshot
from learner.datasets.collect import collect, interaction_from, replay_rewards
from learner.datasets.examples import (
    KINDS,
    Example,
    Interaction,
    PairExample,
    PromptExample,
    ScoredExample,
    SFTExample,
    Snapshot,
    SnapshotOptions,
    SourceRange,
    Split,
)
from learner.datasets.files import AUDIT, FORMAT_VERSION, MANIFEST, load_snapshot, write_snapshot

__all__ = [
    "AUDIT",
    "FORMAT_VERSION",
    "KINDS",
    "MANIFEST",
    "Audit",
    "Example",
    "Interaction",
    "PairExample",
    "PromptExample",
    "SFTExample",
    "ScoredExample",
    "Screener",
    "Snapshot",
    "SnapshotOptions",
    "SourceRange",
    "Split",
    "build_snapshot",
    "collect",
    "interaction_from",
    "load_snapshot",
    "replay_rewards",
    "write_snapshot",
]

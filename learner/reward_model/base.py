"""The reward model's contract: training data, the `RewardModel` protocol, the manifest.

A reward model maps (prompt, response) to a scalar reward on the Bradley-Terry logit
scale: the model's probability that response `a` is preferred to `b` for one prompt is
`sigmoid(score(p, a) - score(p, b))`. Scores are unbounded; only their differences are
identified by preference pairs (the embedding tier also learns an absolute offset from
scored samples, so for it `sigmoid(score)` estimates P(good)).

Every tier saves into one directory with a `reward_model.json` manifest naming the tier
and its files; `load_reward_model` (in `learner.reward_model`) dispatches on it.
"""

from __future__ import annotations

import json
from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

MANIFEST = "reward_model.json"
FORMAT_VERSION = 1


@dataclass(frozen=True)
class PreferencePair:
    """For `prompt`, `chosen` was preferred to `rejected`."""

    prompt: str
    chosen: str
    rejected: str


@dataclass(frozen=True)
class ScoredSample:
    """One response with a quality score in [0, 1] (a thumb, a mapped rating, a reward)."""

    prompt: str
    response: str
    score: float


class RewardModel(Protocol):
    """What every tier offers; `fit` (tier-specific arguments) returns the model itself."""

    name: str
    tier: str

    def score(self, prompt: str, response: str) -> float: ...

    def score_many(self, pairs: Sequence[tuple[str, str]]) -> list[float]: ...

    def save(self, directory: Path) -> Path: ...


class RewardModelError(Exception):
    """A reward model directory that cannot be loaded, or training data that cannot be used."""


def pairs_from_scored(
    samples: Iterable[ScoredSample], min_gap: float = 0.25
) -> list[PreferencePair]:
    """Preference pairs from scored samples of the same prompt whose scores differ by >= min_gap."""
    by_prompt: dict[str, list[ScoredSample]] = defaultdict(list)
    for sample in samples:
        by_prompt[sample.prompt].append(sample)
    pairs = []
    for prompt, group in by_prompt.items():
        for i, a in enumerate(group):
            for b in group[i + 1 :]:
                if abs(a.score - b.score) >= min_gap:
                    hi, lo = (a, b) if a.score > b.score else (b, a)
                    pairs.append(PreferencePair(prompt, hi.response, lo.response))
    return pairs


def write_manifest(directory: Path, tier: str, name: str, **fields: Any) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    manifest = {"format": FORMAT_VERSION, "tier": tier, "name": name, **fields}
    path = directory / MANIFEST
    path.write_text(json.dumps(manifest, indent=2, sort_keys=True) + "\n", "utf-8")
    return directory


def read_manifest(directory: Path) -> dict[str, Any]:
    path = directory / MANIFEST
    try:
        manifest = json.loads(path.read_text("utf-8"))
    except FileNotFoundError:
        raise RewardModelError(
            f"{directory}: no {MANIFEST}, not a reward model directory"
        ) from None
    except (OSError, ValueError) as exc:
        raise RewardModelError(f"{path}: unreadable manifest: {exc}") from exc
    if not isinstance(manifest, dict) or not isinstance(manifest.get("tier"), str):
        raise RewardModelError(f"{path}: the manifest must be an object with a 'tier'")
    if manifest.get("format") != FORMAT_VERSION:
        raise RewardModelError(f"{path}: unsupported format {manifest.get('format')!r}")
    return manifest


def require_pairs(pairs: Sequence[PreferencePair]) -> None:
    if not pairs:
        raise RewardModelError("training needs at least one preference pair")

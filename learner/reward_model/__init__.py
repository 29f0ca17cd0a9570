"""Reward models: (prompt, response) -> a Bradley-Terry reward, trained on preference pairs.

Two tiers behind one interface (`RewardModel`: `score`, `score_many`, `save`):
`EmbeddingRewardModel` (all-MiniLM-L6-v2 features + a logistic head, trains in seconds)
and `TransformerRewardModel` (a causal LM with a scalar head and a LoRA, TRL's
RewardTrainer). `load_reward_model(dir)` reads the manifest and returns the right tier;
`evaluate(model, pairs)` gives pairwise accuracy and calibration.
"""

from __future__ import annotations

from pathlib import Path

from learner.reward_model.base import (
    MANIFEST,
    PreferencePair,
    RewardModel,
    RewardModelError,
    ScoredSample,
    pairs_from_scored,
    read_manifest,
)
from learner.reward_model.embedding_tier import EmbeddingRewardModel, TextEmbedder
from learner.reward_model.evaluate import evaluate, expected_calibration_error
from learner.reward_model.transformer_tier import TransformerRewardConfig, TransformerRewardModel

__all__ = [
    "MANIFEST",
    "EmbeddingRewardModel",
    "PreferencePair",
    "RewardModel",
    "RewardModelError",
    "ScoredSample",
    "TextEmbedder",
    "TransformerRewardConfig",
    "TransformerRewardModel",
    "evaluate",
    "expected_calibration_error",
    "load_reward_model",
    "pairs_from_scored",
]


def load_reward_model(directory: Path | str, embedder: TextEmbedder | None = None) -> RewardModel:
    """The reward model saved in `directory`, whichever tier; `embedder` shares a loaded MiniLM."""
    path = Path(directory)
    manifest = read_manifest(path)
    tier = manifest["tier"]
    if tier == EmbeddingRewardModel.tier:
        return EmbeddingRewardModel.load(path, manifest, embedder)
    if tier == TransformerRewardModel.tier:
        return TransformerRewardModel.load(path, manifest)
    raise RewardModelError(f"{path}: unknown reward model tier {tier!r}")

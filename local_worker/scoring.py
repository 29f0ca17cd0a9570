"""`POST /v1/score`: the active reward model scores responses to one prompt.

Body `{"prompt": str, "responses": [str, ...]}` (or `"response": str`; an optional `model`
must name the served reward model) -> `{"object": "list", "data": [{"index": i, "score":
float}], "model": name}`. A score is the reward model's Bradley-Terry logit: higher is
better, and `sigmoid(a - b)` is its probability that response `a` beats `b`.

Scoring runs in a worker thread (`asyncio.to_thread`), not on the generation thread
(`Engine.call`): the reward model has its own weights and its own lock, and a forward pass
over up to 64 responses there would stall every sequence being decoded for that long.
Off both, the event loop stays free and generation keeps stepping while a batch scores.
"""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pydantic import Field

from gateway.errors import InvalidRequest, ModelNotFound
from gateway.protocol import Wire, validate

if TYPE_CHECKING:
    from learner.reward_model import RewardModel, TextEmbedder

MAX_RESPONSES = 64


class ScoreRequest(Wire):
    prompt: str
    response: str | None = None
    responses: list[str] | None = Field(default=None, min_length=1, max_length=MAX_RESPONSES)
    model: str | None = None


class Scorer:
    """The served reward model behind `/v1/score`."""

    def __init__(self, model: RewardModel, name: str | None = None) -> None:
        self.model = model
        self.name = name or model.name

    @classmethod
    def load(cls, directory: Path, embedder: TextEmbedder | None = None) -> Scorer:
        from learner.reward_model import load_reward_model

        return cls(load_reward_model(directory, embedder=embedder))

    async def respond(self, body: Any) -> dict[str, Any]:
        wire = validate(ScoreRequest, body)
        assert isinstance(wire, ScoreRequest)
        if wire.model is not None and wire.model != self.name:
            raise ModelNotFound(f"The model '{wire.model}' does not exist.", param="model")
        if (wire.response is None) == (wire.responses is None):
            raise InvalidRequest(
                "Give exactly one of 'response' (a string) or 'responses' (a list of strings)",
                param="responses",
            )
        responses = wire.responses if wire.responses is not None else [str(wire.response)]
        pairs = [(wire.prompt, r) for r in responses]
        scores = await asyncio.to_thread(self.model.score_many, pairs)
        return {
            "object": "list",
            "data": [{"index": i, "score": s} for i, s in enumerate(scores)],
            "model": self.name,
        }

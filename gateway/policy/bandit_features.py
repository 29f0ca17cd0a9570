"""The context vector a routing bandit sees: one fixed-length float64 array per request.

`featurize(context)` maps an event's `RequestContext` (or the same fields as a dict) onto
`FEATURES`, in this order, every value in about [0, 1.5]:

- `bias`: always 1.0;
- `intent:<name>`: one-hot over `BUILTIN_INTENTS`, `multimodal` and `other` (a tenant's own
  intents, a missing intent and anything unknown all land on `other`);
- `complexity`: the classifier's score in [0, 1]; when missing, the middle of its tier
  (low 0.2, medium 0.5, high 0.8), else 0.5;
- `log_input_chars`: log1p(input_chars) / 10, capped at 1.5 (100 chars ~0.46, 10k ~0.92);
- `messages`: min(messages, 20) / 20;
- `has_tools`, `has_images`: 1.0 or 0.0;
- `has_embedding`: 1.0 when the context carries a prompt-content vector (`embedding`), else 0.0;
- `emb:0` .. `emb:31`: that vector (gateway/policy/content.py: a static embedding of
  the user's text, unit length, so each value lies in [-1, 1]), zeros without one. Events
  from before content features, from a gateway without the distilled model, or with a
  malformed vector all read as zeros with `has_embedding` 0, so old and new data mix: the
  flag gives the two kinds their own intercept.

The names are the contract between the learner and the gateway: published parameters carry
the names they were fitted on, and the gateway serves them only when they equal `FEATURES`
(otherwise the rule falls back to its static chain). Adding a feature (tenant metadata, say)
means new names here, so parameters fitted on the old vector are refused, never misread.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

import numpy as np
import numpy.typing as npt

from gateway.classify.types import BUILTIN_INTENTS, MULTIMODAL
from gateway.events import RequestContext
from gateway.policy.content_codec import DIMS, unpack

FloatArray = npt.NDArray[np.float64]

_INTENTS: tuple[str, ...] = (*BUILTIN_INTENTS, MULTIMODAL, "other")
FEATURES: tuple[str, ...] = (
    "bias",
    *(f"intent:{name}" for name in _INTENTS),
    "complexity",
    "log_input_chars",
    "messages",
    "has_tools",
    "has_images",
    "has_embedding",
    *(f"emb:{i}" for i in range(DIMS)),
)
D = len(FEATURES)

_INTENT_SLOT = {name: 1 + i for i, name in enumerate(_INTENTS)}
_OTHER = _INTENT_SLOT["other"]
_COMPLEXITY = FEATURES.index("complexity")
_TIER_MIDDLE = {"low": 0.2, "medium": 0.5, "high": 0.8}
_MAX_MESSAGES = 20.0
_HAS_EMBEDDING = FEATURES.index("has_embedding")


def featurize(context: RequestContext | Mapping[str, Any]) -> FloatArray:
    """The feature vector of one request, laid out as `FEATURES` (float64, length `D`)."""
    intent: str | None
    complexity: float | None
    tier: str | None
    tools: object
    images: object
    embedding: object
    if isinstance(context, RequestContext):
        intent, complexity, tier = context.intent, context.complexity, context.complexity_tier
        chars, messages = context.input_chars, context.messages
        tools, images = context.has_tools, context.has_images
        embedding = context.embedding
    else:
        intent, complexity = context.get("intent"), context.get("complexity")
        tier = context.get("complexity_tier")
        chars, messages = context.get("input_chars") or 0, context.get("messages") or 0
        tools, images = context.get("has_tools"), context.get("has_images")
        embedding = context.get("embedding")
    if complexity is None or not math.isfinite(complexity):
        complexity = _TIER_MIDDLE.get(tier or "", 0.5)
    x = np.zeros(D)
    x[0] = 1.0
    x[_INTENT_SLOT.get(intent or "other", _OTHER)] = 1.0
    x[_COMPLEXITY] = min(max(float(complexity), 0.0), 1.0)
    x[_COMPLEXITY + 1] = min(math.log1p(max(float(chars), 0.0)) / 10.0, 1.5)
    x[_COMPLEXITY + 2] = min(max(float(messages), 0.0), _MAX_MESSAGES) / _MAX_MESSAGES
    x[_COMPLEXITY + 3] = 1.0 if tools else 0.0
    x[_COMPLEXITY + 4] = 1.0 if images else 0.0
    vector = unpack(embedding) if isinstance(embedding, str) else None
    if vector is not None:
        x[_HAS_EMBEDDING] = 1.0
        x[_HAS_EMBEDDING + 1 :] = vector
    return x

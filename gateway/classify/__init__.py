"""Request classification: intent (lexical and semantic tiers) and complexity.

Typical use on the request path::

    view = request_text(endpoint, body)
    decision = await classifier.aclassify(view)      # Classification
    response.headers["x-flywheel-intent"] = decision.intent

`load_default_classifier()` trains the shipped models at start; `Classifier.for_tenant`
adds a tenant's intents from example utterances.
"""

from gateway.classify.classifier import (
    Classifier,
    ClassifyTier,
    Example,
    load_dataset,
    load_default_classifier,
)
from gateway.classify.complexity import complexity, complexity_features
from gateway.classify.features import request_text, text_view
from gateway.classify.lexical import LexicalIntentModel
from gateway.classify.semantic import (
    Embedder,
    HttpEmbedder,
    OnnxEmbedder,
    SemanticIntentModel,
    load_onnx_embedder,
)
from gateway.classify.types import (
    BUILTIN_INTENTS,
    MULTIMODAL,
    Classification,
    RequestView,
    Tier,
)

__all__ = [
    "BUILTIN_INTENTS",
    "MULTIMODAL",
    "Classification",
    "Classifier",
    "ClassifyTier",
    "Embedder",
    "Example",
    "HttpEmbedder",
    "LexicalIntentModel",
    "OnnxEmbedder",
    "RequestView",
    "SemanticIntentModel",
    "Tier",
    "complexity",
    "complexity_features",
    "load_dataset",
    "load_default_classifier",
    "load_onnx_embedder",
    "request_text",
    "text_view",
]

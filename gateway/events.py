"""The records that flow from the gateway to the learner, with a schema version.

`InteractionEvent`: one per request (DESIGN.md, "Data flowing through").
`Feedback`: a user's signal about one request, joined to its event by request id,
whichever arrives first. Both are stored as JSON; readers accept older versions.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

SCHEMA_VERSION = 1

FeedbackKind = Literal["thumbs", "score", "correction", "click", "dwell"]


class Record(BaseModel):
    model_config = ConfigDict(extra="ignore")  # newer writers may add fields


class RequestContext(Record):
    """The context features a router or bandit sees."""

    intent: str | None = None
    complexity: float | None = None
    complexity_tier: str | None = None
    input_chars: int = 0
    messages: int = 0
    has_tools: bool = False
    has_images: bool = False
    # A digest of the request's text: the same prompt again soon is a retry, which the
    # learner counts against the first answer.
    prompt_hash: str | None = None
    # The prompt's content vector (gateway/policy/content_codec.py: base64 float16), when a
    # bandit rule routed the request with the content model loaded; the bandit scored it.
    embedding: str | None = None


class RoutingDecision(Record):
    strategy: str = "static"
    rule: str | None = None
    arm: str | None = None
    propensity: float | None = None
    policy_version: str | None = None
    pick: str | None = None  # how an ensemble chose its answer (judge, scorer, consensus)


class TemplateRef(Record):
    id: str
    version: str


class InteractionEvent(Record):
    schema_version: int = SCHEMA_VERSION
    request_id: str
    tenant: str
    key_id: str = ""
    user: str | None = None
    ts: float = Field(description="unix seconds when the request arrived")
    endpoint: str
    model: str = Field(description="the model the request named")
    context: RequestContext = RequestContext()
    template: TemplateRef | None = None
    routing: RoutingDecision = RoutingDecision()
    route: str | None = Field(None, description="the model that answered")
    provider: str | None = None
    upstream_model: str | None = None
    adapter: str | None = None
    attempts: int = 0
    fallbacks: int = 0
    errors: list[str] = Field(default_factory=list)
    stream: bool = False
    stream_end: str | None = None
    status: int
    error: str | None = None
    latency_ms: float = 0.0
    ttft_ms: float | None = None
    upstream_ms: float = 0.0
    input_tokens: int = 0
    output_tokens: int = 0
    cost_usd: float = 0.0
    # Privacy and safety decisions: PII entity counts by type, and guard findings.
    pii: dict[str, int] = Field(default_factory=dict)
    guard: list[dict[str, Any]] = Field(default_factory=list)
    # Content: None when the tenant opted out of content logging.
    request: dict[str, Any] | None = None
    response: dict[str, Any] | None = None


class Feedback(Record):
    schema_version: int = SCHEMA_VERSION
    feedback_id: str
    request_id: str
    tenant: str
    kind: FeedbackKind
    value: float
    text: str | None = None
    user: str | None = None
    ts: float

"""The shape of `flywheel.yaml`: pydantic models, strict about unknown keys.

Phase one of config loading (`config_loader.load_config` reads the file, applies
`FLYWHEEL_*` overrides and validates it against these models); phase two
(`catalog.build_catalog`, `auth.KeyIndex.from_config`) turns it into runtime objects.
Secrets never appear here: only the names of the environment variables holding them.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator
from pydantic_core import PydanticCustomError


class Strict(BaseModel):
    """Base for every config section: unknown keys are errors that name the key."""

    model_config = ConfigDict(extra="forbid", frozen=True)


class ServerConfig(Strict):
    host: str = "127.0.0.1"
    port: int = Field(8080, ge=0, le=65535)
    workers: int = Field(1, ge=1, le=64)
    max_body_bytes: int = Field(4 * 1024 * 1024, ge=1024)
    log_level: Literal["debug", "info", "warning", "error"] = "info"
    access_log: bool = True
    # HTTP limits enforced while a request arrives (gateway/http_limits.py): over the
    # header size or count, 431; headers or body too slow, 408; then the connection closes.
    max_header_bytes: int = Field(32 * 1024, ge=1024)
    max_headers: int = Field(100, ge=8)
    header_timeout_s: float = Field(10.0, gt=0)
    body_timeout_s: float = Field(30.0, gt=0, description="the longest pause between body chunks")
    body_total_timeout_s: float = Field(120.0, gt=0, description="the whole body")
    # The env var holding the token /metrics requires (`Authorization: Bearer <token>`);
    # unset: /metrics is open. Set but empty in the environment: /metrics refuses all.
    metrics_token_env: str | None = None


class ProviderConfig(Strict):
    kind: Literal["openai", "litellm"]
    base_url: str | None = None
    api_key_env: str | None = None
    connect_timeout_s: float = Field(5.0, gt=0)
    read_timeout_s: float = Field(60.0, gt=0)
    max_connections: int = Field(512, ge=1)
    # external: a third party (PII is masked before it by default); local: our own model
    # worker on this network (PII handling configurable per tenant).
    location: Literal["external", "local"] = "external"
    # How a local provider names a LoRA adapter in the upstream request: `base:adapter`
    # (`smollm2-135m:support-v3`, the Flywheel worker) or `adapter` (`support-v3`, vLLM).
    adapter_naming: Literal["base:adapter", "adapter"] = "base:adapter"
    # Whether the upstream speaks OpenAI's Responses API (else /v1/responses is translated).
    supports_responses: bool = False
    # Ask the upstream for a usage chunk on streams the client did not ask it for (the
    # chunk is removed before the client sees it) so tokens and cost are exact.
    stream_usage: bool = True
    # litellm only: the provider prefix litellm routes by ("anthropic", "gemini", ...).
    litellm_provider: str | None = None
    headers: dict[str, str] = Field(default_factory=dict)

    @model_validator(mode="after")
    def _kind_needs(self) -> ProviderConfig:
        if self.kind == "openai" and not self.base_url:
            raise ValueError("a provider of kind 'openai' needs base_url")
        if self.base_url and not self.base_url.startswith(("http://", "https://")):
            raise ValueError(f"base_url must start with http:// or https://, got {self.base_url!r}")
        return self


class TokenPrices(Strict):
    """USD per million tokens."""

    input: float = Field(0.0, ge=0)
    output: float = Field(0.0, ge=0)


class RetryConfig(Strict):
    attempts: int = Field(2, ge=0, le=10, description="retries after the first try")
    backoff_base_ms: float = Field(50.0, ge=0)
    backoff_max_ms: float = Field(2000.0, ge=0)
    # A 429's Retry-After longer than this moves on to the next model instead of waiting.
    retry_after_max_s: float = Field(5.0, ge=0)


class BreakerConfig(Strict):
    failure_threshold: int = Field(5, ge=1)
    cooldown_s: float = Field(30.0, gt=0)


class ModelConfig(Strict):
    provider: str
    model: str = Field(description="the model name the upstream knows")
    context_window: int | None = Field(None, ge=1)
    cost_per_mtok: TokenPrices = TokenPrices()
    fallbacks: list[str] = Field(default_factory=list)
    tenants: list[str] | None = None
    timeout_s: float | None = Field(None, gt=0, description="per attempt, whole response")
    retry: RetryConfig | None = None
    breaker: BreakerConfig | None = None


class LimitsConfig(Strict):
    requests_per_minute: int | None = Field(None, ge=1)
    tokens_per_minute: int | None = Field(None, ge=1)
    usd_per_day: float | None = Field(None, gt=0)
    usd_per_month: float | None = Field(None, gt=0)


class KeyConfig(Strict):
    """One API key with its own name and limits; the key itself by env var or hash."""

    name: str
    key_env: str | None = None
    sha256: str | None = Field(None, pattern=r"^[0-9a-f]{64}$")
    limits: LimitsConfig = LimitsConfig()

    @model_validator(mode="after")
    def _one_source(self) -> KeyConfig:
        if (self.key_env is None) == (self.sha256 is None):
            raise ValueError("a key needs exactly one of key_env or sha256")
        return self


class TenantConfig(Strict):
    api_keys_env: str | None = Field(None, description="comma-separated keys, hashed at load")
    api_key_sha256: list[str] = Field(default_factory=list)
    keys: list[KeyConfig] = Field(default_factory=list)
    limits: LimitsConfig = LimitsConfig()
    # Data governance: content_logging false keeps metadata only (no messages, no
    # responses); retention_days deletes the tenant's events older than that.
    content_logging: bool = True
    retention_days: float | None = Field(None, gt=0)
    # Write each request's event to the store before its answer is returned (no loss
    # when the gateway is killed; costs a store write per request). Off: events are
    # flushed in batches every events.flush_interval_ms.
    durable_events: bool = False


class AdminConfig(Strict):
    api_key_env: str | None = None
    api_key_sha256: str | None = Field(None, pattern=r"^[0-9a-f]{64}$")


class RoutingConfig(Strict):
    retry: RetryConfig = RetryConfig()
    breaker: BreakerConfig = BreakerConfig()
    max_chain: int = Field(8, ge=1, le=32, description="models tried per request at most")


class EventsConfig(Strict):
    """The gateway's interaction log: a bounded queue flushed to the store in batches."""

    queue_size: int = Field(10_000, ge=1)
    # Small batches keep each flush's serialisation (on the event loop) well under a
    # millisecond; larger ones raise throughput at the cost of the gateway's p99.
    batch_size: int = Field(64, ge=1)
    flush_interval_ms: float = Field(100.0, gt=0)
    # How long a durable_events tenant's answer waits for its event to be stored.
    durable_timeout_ms: float = Field(1000.0, gt=0)


class ScanConfig(Strict):
    """What inspecting one request (PII detection, the injection guard) may cost, so no
    tenant's input stalls the others (gateway/scanning.py)."""

    # Text inspected per request, in characters; more is refused (413) before any scanning.
    max_chars: int = Field(1_048_576, ge=1)
    # Messages, input items, prompts and content parts per request; more is refused (400).
    max_items: int = Field(2048, ge=1)
    # A scan not finished by then is refused (503): nothing goes out unscanned.
    deadline_s: float = Field(10.0, gt=0)
    # Worker processes for scans larger than inline_chars (smaller ones run in place).
    workers: int = Field(2, ge=1, le=64)
    inline_chars: int = Field(4096, ge=0)


class FeedbackConfig(Strict):
    horizon_days: float = Field(7.0, gt=0, description="how long feedback waits for its event")
    # Per tenant, in any 60 s: feedback posts and request-body bytes; more is a 429.
    rate_per_minute: int = Field(600, ge=1)
    bytes_per_minute: int = Field(2_097_152, ge=1)
    # Feedback kept in memory while the store is down (202 "buffered"); full: 503.
    buffer_size: int = Field(1000, ge=1)
    buffer_bytes: int = Field(8_388_608, ge=1)


class FlywheelConfig(Strict):
    server: ServerConfig = ServerConfig()
    providers: dict[str, ProviderConfig] = Field(default_factory=dict)
    models: dict[str, ModelConfig] = Field(default_factory=dict)
    tenants: dict[str, TenantConfig] = Field(default_factory=dict)
    admin: AdminConfig = AdminConfig()
    routing: RoutingConfig = RoutingConfig()
    # sqlite:///path/flywheel.db (embedded) or redis://host:port/db; none: no event log,
    # flags and kill switches from their safe defaults.
    store: str | None = Field(None, pattern=r"^(sqlite:///|rediss?://).+")
    events: EventsConfig = EventsConfig()
    feedback: FeedbackConfig = FeedbackConfig()
    scan: ScanConfig = ScanConfig()
    # Per-tenant routing policies and prompt templates (directories of YAML files,
    # relative to the working directory), reloaded when a file changes.
    policies_dir: str = "policies"
    templates_dir: str = "templates"
    watch_files: bool = True

    @model_validator(mode="after")
    def _references(self) -> FlywheelConfig:
        for name, model in self.models.items():
            if model.provider not in self.providers:
                known = ", ".join(sorted(self.providers)) or "none"
                _bad_reference(
                    ("models", name, "provider"),
                    f"unknown provider {model.provider!r} (known: {known})",
                )
            for fallback in model.fallbacks:
                if fallback not in self.models:
                    _bad_reference(("models", name, "fallbacks"), f"unknown model {fallback!r}")
            for tenant in model.tenants or ():
                if tenant not in self.tenants:
                    _bad_reference(("models", name, "tenants"), f"unknown tenant {tenant!r}")
        return self


def _bad_reference(path: tuple[str, ...], problem: str) -> None:
    """Raise a validation error that carries the offending key's path for the loader."""
    raise PydanticCustomError("bad_reference", "{problem}", {"problem": problem, "path": path})

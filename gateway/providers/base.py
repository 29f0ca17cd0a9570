"""The one narrow interface every provider kind implements.

A provider sends an OpenAI-shaped request body for one endpoint and returns the
upstream's OpenAI-shaped answer: raw JSON bytes for a plain call, or an `EventStream`
of raw SSE events for a stream. Failures are raised as `gateway.errors.UpstreamError`
subclasses, translated once inside the provider.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from collections.abc import AsyncIterator
from dataclasses import dataclass
from enum import StrEnum
from typing import Any, Protocol


class Endpoint(StrEnum):
    CHAT = "chat/completions"
    COMPLETIONS = "completions"
    EMBEDDINGS = "embeddings"
    RESPONSES = "responses"
    SCORE = "score"  # a reward model's scores: the local worker's POST /v1/score


# The key of upstream request ids: per process, never leaves it.
_UPSTREAM_ID_KEY = secrets.token_bytes(32)


def upstream_request_id(request_id: str) -> str:
    """The id an upstream sees for a request: an HMAC of the gateway's request id under a
    per-process key. Stable per request (an upstream can group a request's attempts, and
    an operator can correlate via the gateway's logs), but no upstream learns the id a
    tenant uses for `/v1/feedback` and `/v1/requests/{id}`, nor can it compute one."""
    digest = hmac.new(_UPSTREAM_ID_KEY, request_id.encode(), hashlib.sha256).hexdigest()
    return f"fwu-{digest[:32]}"


@dataclass(frozen=True, slots=True)
class CallOptions:
    """Per-attempt settings the dispatcher hands to a provider. `request_id` is the
    gateway's (tenant-facing) id: providers send `upstream_id` instead."""

    timeout_s: float | None = None
    request_id: str = ""

    @property
    def upstream_id(self) -> str:
        return upstream_request_id(self.request_id) if self.request_id else ""


class EventStream(Protocol):
    """Raw SSE events (`b"data: {...}\\n\\n"`, `event:` lines kept) as they arrive, in
    batches: the events that arrived together."""

    def __aiter__(self) -> AsyncIterator[list[bytes]]: ...

    async def aclose(self) -> None:
        """Stop early: abort the upstream request so the upstream stops generating."""


class Provider(Protocol):
    name: str
    supports_responses: bool
    stream_usage: bool
    location: str  # "external" or "local": which PII action applies before it
    adapter_naming: str  # "base:adapter" or "adapter": the upstream name of a LoRA adapter

    async def start(self) -> None: ...

    async def close(self) -> None: ...

    async def send(self, endpoint: Endpoint, body: dict[str, Any], options: CallOptions) -> bytes:
        """One non-streaming call; returns the upstream's JSON body."""

    async def stream(
        self, endpoint: Endpoint, body: dict[str, Any], options: CallOptions
    ) -> EventStream:
        """Open a stream; returns once the upstream accepted it (status 200)."""

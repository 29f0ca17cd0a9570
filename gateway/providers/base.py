"""The one narrow interface every provider kind implements.

A provider sends an OpenAI-shaped request body for one endpoint and returns the
upstream's OpenAI-shaped answer: raw JSON bytes for a plain call, or an `EventStream`
of raw SSE events for a stream. Failures are raised as `gateway.errors.UpstreamError`
subclasses, translated once inside the provider.
"""

from __future__ import annotations

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


@dataclass(frozen=True, slots=True)
class CallOptions:
    """Per-attempt settings the dispatcher hands to a provider."""

    timeout_s: float | None = None
    request_id: str = ""


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

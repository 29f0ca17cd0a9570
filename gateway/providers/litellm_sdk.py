"""`kind: litellm`: every other provider (Anthropic, Gemini, Bedrock, Azure, Mistral, ...)
through litellm's async SDK — never its proxy server.

litellm is imported when the first such provider starts, not at gateway import, so a
config without one pays nothing. Its answers are converted back to OpenAI-shaped JSON
bytes and its exceptions are translated into our error tree here, once.
"""

from __future__ import annotations

import os
from collections.abc import AsyncIterator
from types import ModuleType
from typing import Any

import orjson

from gateway.config import ProviderConfig
from gateway.errors import (
    UpstreamAuthFailed,
    UpstreamContextLengthExceeded,
    UpstreamError,
    UpstreamRateLimited,
    UpstreamRejected,
    UpstreamTimeout,
    UpstreamUnavailable,
)
from gateway.providers.base import CallOptions, Endpoint


def _import_litellm() -> ModuleType:
    # No network here: use the cost map litellm ships instead of fetching one at import.
    os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")
    import litellm

    litellm.telemetry = False
    litellm.suppress_debug_info = True
    return litellm


class LiteLLMProvider:
    supports_responses = False  # /v1/responses is translated to chat for these

    def __init__(self, name: str, config: ProviderConfig) -> None:
        self.name = name
        self.stream_usage = config.stream_usage
        self.location: str = config.location
        self.adapter_naming: str = config.adapter_naming
        self._config = config
        self._litellm: ModuleType | None = None

    async def start(self) -> None:
        self._litellm = _import_litellm()

    async def close(self) -> None:
        return None

    def _kwargs(self, body: dict[str, Any], options: CallOptions) -> dict[str, Any]:
        kwargs = dict(body)
        prefix = self._config.litellm_provider
        if prefix and not str(body["model"]).startswith(f"{prefix}/"):
            kwargs["model"] = f"{prefix}/{body['model']}"
        if self._config.api_key_env and os.environ.get(self._config.api_key_env):
            kwargs["api_key"] = os.environ[self._config.api_key_env]
        if self._config.base_url:
            kwargs["api_base"] = self._config.base_url
        if self._config.headers:
            kwargs["extra_headers"] = dict(self._config.headers)
        kwargs["timeout"] = options.timeout_s or self._config.read_timeout_s
        kwargs["num_retries"] = 0  # retries and fallbacks are the dispatcher's job
        return kwargs

    async def send(self, endpoint: Endpoint, body: dict[str, Any], options: CallOptions) -> bytes:
        litellm = self._require()
        kwargs = self._kwargs(body, options)
        try:
            if endpoint is Endpoint.CHAT:
                result = await litellm.acompletion(**kwargs)
            elif endpoint is Endpoint.COMPLETIONS:
                result = await litellm.atext_completion(**kwargs)
            elif endpoint is Endpoint.EMBEDDINGS:
                result = await litellm.aembedding(**kwargs)
            else:
                raise UpstreamRejected(f"{self.name} does not serve /{endpoint.value}")
        except UpstreamError:
            raise
        except Exception as exc:  # litellm raises many types; translate_error maps them all
            raise self.translate_error(exc) from exc
        return orjson.dumps(result.model_dump(exclude_none=False))

    async def stream(
        self, endpoint: Endpoint, body: dict[str, Any], options: CallOptions
    ) -> LiteLLMEventStream:
        litellm = self._require()
        if endpoint is not Endpoint.CHAT and endpoint is not Endpoint.COMPLETIONS:
            raise UpstreamRejected(f"{self.name} cannot stream /{endpoint.value}")
        kwargs = self._kwargs(body, options)
        try:
            call = litellm.acompletion if endpoint is Endpoint.CHAT else litellm.atext_completion
            chunks = await call(**kwargs)
        except Exception as exc:  # see send()
            raise self.translate_error(exc) from exc
        return LiteLLMEventStream(self, chunks)

    def translate_error(self, exc: BaseException) -> UpstreamError:
        litellm = self._require()
        errors = litellm.exceptions
        status = getattr(exc, "status_code", None)
        text = f"{self.name}: {exc!s}"
        if isinstance(exc, errors.ContextWindowExceededError):
            return UpstreamContextLengthExceeded(text, upstream_status=400)
        if isinstance(exc, errors.RateLimitError):
            retry_after = getattr(getattr(exc, "response", None), "headers", {}).get("retry-after")
            seconds = float(retry_after) if retry_after and retry_after.isdigit() else None
            return UpstreamRateLimited(text, upstream_status=429, retry_after_s=seconds)
        if isinstance(exc, errors.Timeout):
            return UpstreamTimeout(text)
        if isinstance(exc, errors.APIConnectionError):
            return UpstreamUnavailable(text)
        if isinstance(exc, errors.AuthenticationError | errors.PermissionDeniedError):
            return UpstreamAuthFailed(text, upstream_status=status)
        if isinstance(status, int) and 400 <= status < 500 and status != 408:
            return UpstreamRejected(text, upstream_status=status)
        return UpstreamError(text, upstream_status=status if isinstance(status, int) else None)

    def _require(self) -> ModuleType:
        if self._litellm is None:
            raise UpstreamUnavailable(f"provider {self.name} is not started")
        return self._litellm


class LiteLLMEventStream:
    """litellm's chunk objects re-encoded as OpenAI SSE events."""

    def __init__(self, provider: LiteLLMProvider, chunks: Any) -> None:
        self._provider = provider
        self._chunks = chunks

    async def __aiter__(self) -> AsyncIterator[list[bytes]]:
        try:
            async for chunk in self._chunks:
                yield [b"data: " + orjson.dumps(chunk.model_dump(exclude_none=True)) + b"\n\n"]
        except UpstreamError:
            raise
        except Exception as exc:  # litellm's mid-stream errors: see translate_error
            raise self._provider.translate_error(exc) from exc
        yield [b"data: [DONE]\n\n"]

    async def aclose(self) -> None:
        close = getattr(self._chunks, "aclose", None)
        if close is not None:
            await close()

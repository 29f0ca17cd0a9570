"""`kind: openai`: any OpenAI-compatible HTTP API over one pooled aiohttp session.

aiohttp rather than httpx on the request path: measured here behind a Starlette
proxy, httpx.AsyncClient fell from 690 to 420 requests/s going from concurrency 1 to
16 while aiohttp served 1,330 and 2,520 (see benchmarks/README.md).
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import orjson

from gateway.config import ProviderConfig
from gateway.errors import UpstreamTimeout, UpstreamUnavailable
from gateway.providers.base import CallOptions, Endpoint
from gateway.providers.sse import iter_event_batches
from gateway.providers.upstream_errors import upstream_error

_CONNECTION_ERRORS = (aiohttp.ClientConnectionError, aiohttp.ClientPayloadError, OSError)


class OpenAIHTTPProvider:
    """Speaks the OpenAI wire protocol to `base_url` with keep-alive connections."""

    def __init__(self, name: str, config: ProviderConfig) -> None:
        self.name = name
        self.supports_responses = config.supports_responses
        self.stream_usage = config.stream_usage
        self.location: str = config.location
        self.adapter_naming: str = config.adapter_naming
        self._config = config
        self._base_url = (config.base_url or "").rstrip("/")
        self._headers = {"content-type": "application/json", **config.headers}
        if config.api_key_env and os.environ.get(config.api_key_env):
            self._headers["authorization"] = f"Bearer {os.environ[config.api_key_env]}"
        self._session: aiohttp.ClientSession | None = None
        self._timeouts: dict[float | None, aiohttp.ClientTimeout] = {}

    async def start(self) -> None:
        connector = aiohttp.TCPConnector(
            limit=self._config.max_connections, keepalive_timeout=30, ttl_dns_cache=300
        )
        self._session = aiohttp.ClientSession(
            connector=connector,
            headers=self._headers,
            skip_auto_headers=("User-Agent",),
            auto_decompress=True,
        )

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None

    def _timeout(self, options: CallOptions) -> aiohttp.ClientTimeout:
        timeout = self._timeouts.get(options.timeout_s)
        if timeout is None:
            timeout = self._timeouts[options.timeout_s] = aiohttp.ClientTimeout(
                total=options.timeout_s,
                sock_connect=self._config.connect_timeout_s,
                sock_read=self._config.read_timeout_s,
            )
        return timeout

    def _request_headers(self, options: CallOptions) -> dict[str, str] | None:
        """Never the tenant-facing request id: it is what `/v1/feedback` takes."""
        return {"x-request-id": options.upstream_id} if options.request_id else None

    async def send(self, endpoint: Endpoint, body: dict[str, Any], options: CallOptions) -> bytes:
        session = self._require_session()
        try:
            async with session.post(
                f"{self._base_url}/{endpoint.value}",
                data=orjson.dumps(body),
                headers=self._request_headers(options),
                timeout=self._timeout(options),
            ) as response:
                payload = await response.read()
                if response.status >= 400:
                    raise upstream_error(self.name, response.status, payload, response.headers)
                return payload
        except TimeoutError as exc:
            raise UpstreamTimeout(f"{self.name} timed out") from exc
        except _CONNECTION_ERRORS as exc:
            raise UpstreamUnavailable(f"{self.name} unreachable: {exc!s}") from exc

    async def stream(
        self, endpoint: Endpoint, body: dict[str, Any], options: CallOptions
    ) -> HTTPEventStream:
        session = self._require_session()
        try:
            response = await session.post(
                f"{self._base_url}/{endpoint.value}",
                data=orjson.dumps(body),
                headers=self._request_headers(options),
                timeout=self._timeout(options),
            )
        except TimeoutError as exc:
            raise UpstreamTimeout(f"{self.name} timed out") from exc
        except _CONNECTION_ERRORS as exc:
            raise UpstreamUnavailable(f"{self.name} unreachable: {exc!s}") from exc
        if response.status >= 400:
            try:
                payload = await response.read()
            except (*_CONNECTION_ERRORS, TimeoutError):
                payload = b""
            finally:
                response.release()
            raise upstream_error(self.name, response.status, payload, response.headers)
        return HTTPEventStream(self.name, response)

    def _require_session(self) -> aiohttp.ClientSession:
        if self._session is None:
            raise UpstreamUnavailable(f"provider {self.name} is not started")
        return self._session


class HTTPEventStream:
    """SSE events of one upstream response; closing it early aborts the connection."""

    def __init__(self, provider: str, response: aiohttp.ClientResponse) -> None:
        self._provider = provider
        self._response = response
        self._done = False

    async def __aiter__(self) -> AsyncIterator[list[bytes]]:
        try:
            async for batch in iter_event_batches(self._response.content.iter_any()):
                yield batch
            self._done = True
        except TimeoutError as exc:
            raise UpstreamTimeout(f"{self._provider} stalled mid-stream") from exc
        except _CONNECTION_ERRORS as exc:
            raise UpstreamUnavailable(f"{self._provider} dropped the stream: {exc!s}") from exc
        except asyncio.CancelledError:
            self._response.close()
            raise

    async def aclose(self) -> None:
        if self._done:
            self._response.release()
        else:
            self._response.close()  # abort: the upstream sees the disconnect and stops

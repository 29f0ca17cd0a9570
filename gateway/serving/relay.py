"""A stream from one upstream, relayed to one client, chunk by chunk.

`open_relay` reads the upstream until the first client-facing event exists, so a
failure before the first chunk can still fall back to the next model. `SSEResponse`
then sends headers and every event as it arrives (no buffering) and cancels the
upstream the moment the client disconnects.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncGenerator, AsyncIterator, Callable
from dataclasses import dataclass
from enum import StrEnum

from starlette.types import Receive, Scope, Send

from gateway.errors import UpstreamError, UpstreamUnavailable
from gateway.providers.base import EventStream
from gateway.providers.sse import event_data
from gateway.serving.transforms import StreamTransform, upstream_error_in


class StreamEnd(StrEnum):
    COMPLETED = "completed"
    UPSTREAM_ERROR = "upstream_error"  # broke after the first chunk: the client got an error event
    CLIENT_GONE = "client_disconnected"


@dataclass
class Relay:
    upstream: EventStream
    batches: AsyncIterator[list[bytes]]
    transform: StreamTransform
    first: bytes
    end: StreamEnd = StreamEnd.COMPLETED
    error: UpstreamError | None = None

    async def body(self) -> AsyncGenerator[bytes, None]:
        """Every client-facing event: the first ones, the rest, then the closing ones;
        the events of one upstream read leave in one write."""
        yield self.first
        feed = self.transform.feed
        try:
            async for batch in self.batches:
                out = [piece for event in batch for piece in feed(event)]
                if out:
                    yield b"".join(out)
            closing = self.transform.finish()
            if closing:
                yield b"".join(closing)
        except UpstreamError as exc:
            self.end, self.error = StreamEnd.UPSTREAM_ERROR, exc
            yield b"".join(self.transform.fail(exc))

    async def close(self) -> None:
        await self.upstream.aclose()


async def open_relay(upstream: EventStream, transform: StreamTransform) -> Relay:
    """Pull upstream events until there is something to send; raise if it fails first."""
    batches = upstream.__aiter__()
    checked = False
    try:
        while True:
            try:
                batch = await anext(batches)
            except StopAsyncIteration:
                raise UpstreamUnavailable("the upstream ended the stream before any data") from None
            if not checked:
                checked = True
                message = upstream_error_in(event_data(batch[0]))
                if message is not None:
                    raise UpstreamUnavailable(f"the upstream streamed an error first: {message}")
            first = [piece for event in batch for piece in transform.feed(event)]
            if first:
                return Relay(upstream, batches, transform, b"".join(first))
    except BaseException:
        await upstream.aclose()
        raise


class SSEResponse:
    """A plain ASGI response streaming a relay; `on_done(relay)` runs once at the end."""

    def __init__(
        self, relay: Relay, headers: dict[str, str], on_done: Callable[[Relay], None]
    ) -> None:
        self._relay = relay
        self._headers = [
            (b"content-type", b"text/event-stream; charset=utf-8"),
            (b"cache-control", b"no-cache"),
            (b"x-accel-buffering", b"no"),
            *((k.encode("latin-1"), v.encode("latin-1")) for k, v in headers.items()),
        ]
        self._on_done = on_done

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        task = asyncio.current_task()
        gone = asyncio.Event()

        async def watch_disconnect() -> None:
            while (await receive())["type"] != "http.disconnect":
                pass
            gone.set()
            if task is not None:
                task.cancel()

        watcher = asyncio.create_task(watch_disconnect())
        body = self._relay.body()
        try:
            await send({"type": "http.response.start", "status": 200, "headers": self._headers})
            async for chunk in body:
                await send({"type": "http.response.body", "body": chunk, "more_body": True})
            await send({"type": "http.response.body", "body": b"", "more_body": False})
        except asyncio.CancelledError:
            if not gone.is_set():
                raise
            self._relay.end = StreamEnd.CLIENT_GONE
            if task is not None:
                task.uncancel()
        except OSError:  # the transport broke under a send
            self._relay.end = StreamEnd.CLIENT_GONE
        finally:
            watcher.cancel()
            await body.aclose()
            await self._relay.close()
            self._on_done(self._relay)

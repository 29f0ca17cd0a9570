"""HTTP/1.1 resource limits enforced in front of the app, where uvicorn reads the socket.

uvicorn's httptools protocol has no limit on header size or count and no timeout while
a request's headers or body arrive (`h11_max_incomplete_event_size` applies to h11
only), so one client can hold memory with huge headers or hold connections open with
slow ones. `LimitedHttpToolsProtocol` adds, per connection:

- header bytes (request line and headers) and header count: over either, 431 and close.
  Bytes are counted as they arrive, so a 16 MiB header is refused after the first
  `max_header_bytes`, before the parser has buffered it;
- a header timeout from the connection's start (or the next request's first byte on a
  kept-alive connection) to the end of the headers: past it, 408 (or nothing, when not
  a byte arrived) and close;
- a body idle timeout between body chunks and an overall body timeout: past either,
  408 and close while the app has not answered; the app then reads a disconnect.

Refusals are OpenAI error bodies with a request id, logged as one line each.
"""

from __future__ import annotations

import asyncio
import logging
import secrets
from dataclasses import dataclass
from functools import partial
from typing import Any

import httptools
from uvicorn.protocols.http.httptools_impl import STATUS_LINE, HttpToolsProtocol

from gateway.errors import (
    GatewayError,
    HeadersTooLarge,
    InvalidRequest,
    RequestTimeout,
    render,
    status_of,
)
from gateway.logs import log_event

log = logging.getLogger("flywheel.http")

# Each header line costs its name, its value and ": " + CRLF on the wire.
_HEADER_OVERHEAD = 4


@dataclass(frozen=True, slots=True)
class HttpLimits:
    max_header_bytes: int = 32 * 1024
    max_headers: int = 100
    header_timeout_s: float = 10.0
    body_timeout_s: float = 30.0  # the longest pause between body chunks
    body_total_timeout_s: float = 120.0


def protocol_factory(limits: HttpLimits) -> Any:
    """What to pass as uvicorn's `http=`: the protocol class bound to `limits`.

    A partial of a module-level class, so it pickles into worker processes."""
    return partial(LimitedHttpToolsProtocol, limits=limits)


class LimitedHttpToolsProtocol(HttpToolsProtocol):
    def __init__(self, *args: Any, limits: HttpLimits, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._limits = limits
        self._in_headers = True  # waiting for (or reading) a request's headers
        self._raw_header_bytes = 0  # bytes received while in the header phase
        self._header_bytes = 0  # request line and header lines, as parsed
        self._header_count = 0
        self._refusal: GatewayError | None = None
        self._header_timer: asyncio.TimerHandle | None = None
        self._body_idle_timer: asyncio.TimerHandle | None = None
        self._body_timer: asyncio.TimerHandle | None = None

    # --- connection -------------------------------------------------------------------

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._arm_header_timer()

    def connection_lost(self, exc: Exception | None) -> None:
        self._cancel_timers()
        super().connection_lost(exc)

    def data_received(self, data: bytes) -> None:
        self._unset_keepalive_if_required()
        if self._in_headers:
            self._raw_header_bytes += len(data)
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserUpgrade:  # as uvicorn does
            if self._should_upgrade():
                self.handle_websocket_upgrade()
            else:
                self._unsupported_upgrade_warning()
            return
        except httptools.HttpParserError:
            refusal = self._refusal or InvalidRequest(
                "Invalid HTTP request received", code="invalid_http"
            )
            self._refuse(refusal)
            return
        limit = self._limits.max_header_bytes
        if self._in_headers and max(self._raw_header_bytes, self._header_bytes) > limit:
            self._refuse(HeadersTooLarge(f"Request headers exceed {limit} bytes"))

    # --- parser callbacks -------------------------------------------------------------

    def on_message_begin(self) -> None:
        super().on_message_begin()
        self._in_headers = True
        self._header_bytes = self._header_count = 0
        if self._header_timer is None:  # a kept-alive connection's next request
            self._arm_header_timer()

    def on_url(self, url: bytes) -> None:
        self._header_bytes += len(url)
        self._check_headers()
        super().on_url(url)

    def on_header(self, name: bytes, value: bytes) -> None:
        self._header_bytes += len(name) + len(value) + _HEADER_OVERHEAD
        self._header_count += 1
        self._check_headers()
        super().on_header(name, value)

    def on_headers_complete(self) -> None:
        self._in_headers = False
        self._raw_header_bytes = 0
        _cancel(self._header_timer)
        self._header_timer = None
        loop = self.loop
        self._body_timer = loop.call_later(self._limits.body_total_timeout_s, self._body_timed_out)
        self._arm_body_idle_timer()
        super().on_headers_complete()

    def on_body(self, body: bytes) -> None:
        self._arm_body_idle_timer()
        super().on_body(body)

    def on_message_complete(self) -> None:
        _cancel(self._body_idle_timer)
        _cancel(self._body_timer)
        self._body_idle_timer = self._body_timer = None
        super().on_message_complete()

    # --- limits -----------------------------------------------------------------------

    def _check_headers(self) -> None:
        """Raise inside the parser (which stops it) when the headers are over a limit."""
        limits = self._limits
        if self._header_count > limits.max_headers:
            self._refusal = HeadersTooLarge(f"More than {limits.max_headers} request headers")
        elif self._header_bytes > limits.max_header_bytes:
            self._refusal = HeadersTooLarge(
                f"Request headers exceed {limits.max_header_bytes} bytes"
            )
        if self._refusal is not None:
            raise _Refused

    def _arm_header_timer(self) -> None:
        _cancel(self._header_timer)
        timeout = self._limits.header_timeout_s
        self._header_timer = self.loop.call_later(timeout, self._headers_timed_out)

    def _arm_body_idle_timer(self) -> None:
        _cancel(self._body_idle_timer)
        timeout = self._limits.body_timeout_s
        self._body_idle_timer = self.loop.call_later(timeout, self._body_idle)

    def _headers_timed_out(self) -> None:
        self._header_timer = None
        if not self._in_headers or self.transport.is_closing():
            return
        if self._raw_header_bytes == 0:  # not a byte: nobody to answer
            self._close("header_timeout")
            return
        timeout = self._limits.header_timeout_s
        self._refuse(RequestTimeout(f"The request headers took longer than {timeout:g}s to arrive"))

    def _body_idle(self) -> None:
        self._body_idle_timer = None
        if self.flow is not None and self.flow.read_paused:
            self._arm_body_idle_timer()  # we paused reading (the app is busy): not the client
            return
        timeout = self._limits.body_timeout_s
        self._refuse(RequestTimeout(f"The request body stalled for more than {timeout:g}s"))

    def _body_timed_out(self) -> None:
        self._body_timer = None
        if self.flow is not None and self.flow.read_paused:  # the app is behind, not the client
            timeout = self._limits.body_timeout_s
            self._body_timer = self.loop.call_later(timeout, self._body_timed_out)
            return
        timeout = self._limits.body_total_timeout_s
        self._refuse(RequestTimeout(f"The request body took longer than {timeout:g}s to arrive"))

    def _refuse(self, error: GatewayError) -> None:
        """Answer `error` (unless the app already answered this request) and close."""
        if self.transport.is_closing():
            return
        cycle = self.cycle
        answered = cycle is not None and not self._in_headers and cycle.response_started
        request_id = "req_" + secrets.token_hex(12)
        if not answered:
            body = render(error)
            status = status_of(error)
            head = [STATUS_LINE[status]]
            for name, value in self.server_state.default_headers:
                head += [name, b": ", value, b"\r\n"]
            head.append(
                b"content-type: application/json\r\n"
                b"content-length: %d\r\n"
                b"x-flywheel-request-id: %s\r\n"
                b"connection: close\r\n\r\n" % (len(body), request_id.encode())
            )
            self.transport.write(b"".join(head) + body)
        self._close(error.code or "refused", request_id, error.message)

    def _close(self, reason: str, request_id: str | None = None, error: str | None = None) -> None:
        self._cancel_timers()
        cycle = self.cycle
        if cycle is not None and not cycle.response_complete and not self._in_headers:
            cycle.disconnected = True  # the app reads a disconnect and writes nothing more
            cycle.message_event.set()
        client = self.client
        log_event(
            log,
            "connection_refused",
            logging.WARNING,
            request_id=request_id,
            reason=reason,
            client=f"{client[0]}:{client[1]}" if client else None,
            error=error,
        )
        self.transport.close()

    def _cancel_timers(self) -> None:
        for timer in (self._header_timer, self._body_idle_timer, self._body_timer):
            _cancel(timer)
        self._header_timer = self._body_idle_timer = self._body_timer = None


class _Refused(Exception):
    """Raised from a parser callback to stop parsing a request over a limit."""


def _cancel(timer: asyncio.TimerHandle | None) -> None:
    if timer is not None:
        timer.cancel()

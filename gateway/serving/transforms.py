"""Per-route stream transforms: upstream SSE events in, client-facing events out.

`ChatPassthrough` forwards chat/completions chunks byte for byte (dropping only the
usage chunk the gateway asked for itself); `ResponsesPassthrough` forwards Responses
API events; `ResponsesFromChat` turns a chat stream into Responses API events for
providers that do not speak it. Each records the usage it sees.
"""

from __future__ import annotations

from typing import Any, Protocol

import orjson

from gateway.errors import UpstreamError
from gateway.providers.sse import event_data
from gateway.responses_api import ResponsesStreamTranslator, encode_sse
from gateway.serving.event_builder import streamed_response
from gateway.serving.usage import Usage, usage_from

DONE = b"[DONE]"


class StreamTransform(Protocol):
    @property
    def usage(self) -> Usage:
        """Token usage seen so far (the upstream's report, once it came)."""

    def feed(self, event: bytes) -> list[bytes]:
        """Client-facing events for one upstream event (maybe none)."""

    def finish(self) -> list[bytes]:
        """Events to send once the upstream ended cleanly."""

    def fail(self, error: UpstreamError) -> list[bytes]:
        """Events telling the client the stream broke after it began."""

    def content(self) -> dict[str, Any] | None:
        """The answer as the interaction log keeps it (None if not captured)."""


def parse_chunk(data: bytes) -> Any:
    """A chunk's JSON; a malformed one is the upstream's failure, not ours."""
    try:
        return orjson.loads(data)
    except orjson.JSONDecodeError as exc:
        raise UpstreamError(f"the upstream sent a malformed chunk: {data[:80]!r}") from exc


def upstream_error_in(data: bytes | None) -> str | None:
    """The message of an error payload sent inside a stream, if this is one."""
    if not data or b'"error"' not in data:
        return None
    try:
        payload = orjson.loads(data)
    except orjson.JSONDecodeError:
        return None
    error = payload.get("error") if isinstance(payload, dict) else None
    if isinstance(error, dict):
        return str(error.get("message") or error)
    return None


def openai_error_event(error: UpstreamError) -> bytes:
    body = {
        "error": {
            "message": error.message,
            "type": error.error_type,
            "param": None,
            "code": error.code,
        }
    }
    return b"data: " + orjson.dumps(body) + b"\n\n"


class ChatPassthrough:
    """chat/completions and completions streams, forwarded as they come."""

    def __init__(self, strip_usage_chunk: bool, capture: bool = False) -> None:
        self.usage = Usage()
        self._strip = strip_usage_chunk
        # The raw events, for the interaction log to reassemble the answer afterwards.
        self.captured: list[bytes] | None = [] if capture else None

    def feed(self, event: bytes) -> list[bytes]:
        if self.captured is not None:
            self.captured.append(event)
        if b'"usage":{' in event or b'"usage": {' in event:
            data = event_data(event)
            payload = parse_chunk(data) if data and data != DONE else None
            usage = usage_from(payload)
            if usage is not None:
                self.usage = usage
                if self._strip and isinstance(payload, dict) and not payload.get("choices"):
                    return []
        return [event]

    def finish(self) -> list[bytes]:
        return []

    def fail(self, error: UpstreamError) -> list[bytes]:
        return [openai_error_event(error)]

    def content(self) -> dict[str, Any] | None:
        return streamed_response(self.captured) if self.captured is not None else None


class ResponsesPassthrough:
    """Responses API events from an upstream that speaks it."""

    def __init__(self) -> None:
        self.usage = Usage()
        self.final: dict[str, Any] | None = None  # the completed Response object

    def feed(self, event: bytes) -> list[bytes]:
        if b"response.completed" in event or b"response.incomplete" in event:
            data = event_data(event)
            payload = parse_chunk(data) if data else None
            usage = usage_from(payload)
            if usage is not None:
                self.usage = usage
            if isinstance(payload, dict) and isinstance(payload.get("response"), dict):
                self.final = payload["response"]
        return [event]

    def finish(self) -> list[bytes]:
        return []

    def fail(self, error: UpstreamError) -> list[bytes]:
        return [
            encode_sse(
                "error",
                {
                    "type": "error",
                    "code": error.code,
                    "message": error.message,
                    "param": None,
                    "sequence_number": 0,
                },
            )
        ]

    def content(self) -> dict[str, Any] | None:
        return self.final


class ResponsesFromChat:
    """A chat/completions stream rendered as Responses API events."""

    def __init__(self, request: dict[str, Any]) -> None:
        self.usage = Usage()
        self.final: dict[str, Any] | None = None
        self._translator = ResponsesStreamTranslator(request)
        self._started = False

    def feed(self, event: bytes) -> list[bytes]:
        data = event_data(event)
        if data is None or data == DONE:
            return []
        chunk = parse_chunk(data)
        out = [] if self._started else self._translator.start()
        self._started = True
        usage = usage_from(chunk)
        if usage is not None:
            self.usage = usage
        out += self._translator.feed(chunk)
        return [encode_sse(kind, payload) for kind, payload in out]

    def finish(self) -> list[bytes]:
        events = self._translator.finish()
        for _, payload in events:
            if isinstance(payload.get("response"), dict):
                self.final = payload["response"]
        return [encode_sse(kind, payload) for kind, payload in events]

    def fail(self, error: UpstreamError) -> list[bytes]:
        events = self._translator.fail(error.message, error.code)
        return [encode_sse(kind, payload) for kind, payload in events]

    def content(self) -> dict[str, Any] | None:
        return self.final

"""Translate a stream of `chat.completion.chunk`s into Responses API stream events.

The caller owns the I/O: `start()`, then `feed()` per parsed chunk, then `finish()` (or
`fail()` if the upstream breaks); each returns `(event_type, data)` pairs for `encode_sse`.

The assistant `message` item opens on the first text (or refusal) delta and closes when
a tool call starts; each tool call (by chat `index`) is a `function_call` item open until
`finish()`, so interleaved argument deltas of parallel calls still land. Text after tool
calls opens a new message item. Reasoning deltas and logprobs are not translated.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

import orjson

from gateway.responses_api import response as wire

Event = tuple[str, dict[str, Any]]

# ResponseError.code is a closed set in the SDK: keep the codes it knows, map the rest.
_ERROR_CODES = {
    "server_error": "server_error",
    "rate_limit_exceeded": "rate_limit_exceeded",
    "upstream_rate_limited": "rate_limit_exceeded",
    "invalid_prompt": "invalid_prompt",
}


def encode_sse(event_type: str, data: dict[str, Any]) -> bytes:
    """One SSE frame: `event: <type>`, then the event as compact JSON."""
    return b"event: " + event_type.encode() + b"\ndata: " + orjson.dumps(data) + b"\n\n"


@dataclass
class _Part:
    kind: str  # "output_text" or "refusal"
    text: str = ""


@dataclass
class _Message:
    item_id: str
    output_index: int
    parts: list[_Part] = field(default_factory=list)
    status: str = "in_progress"


@dataclass
class _Call:
    item_id: str
    output_index: int
    call_id: str
    name: str
    arguments: str = ""
    status: str = "in_progress"


class ResponsesStreamTranslator:
    """Chat completion chunks in, Responses stream events out, for one response."""

    def __init__(
        self,
        request: dict[str, Any],
        *,
        response_id: str | None = None,
        created_at: int | None = None,
    ) -> None:
        self.request = request
        self.response_id = response_id or wire.new_id("resp")
        self.created_at = created_at if created_at is not None else int(time.time())
        self.model: str = request.get("model") or ""
        self._sequence = 0
        self._items: list[_Message | _Call] = []
        self._message: _Message | None = None  # the message item currently open
        self._calls: dict[int, _Call] = {}  # by the chat tool call's `index`
        self._finish_reason: str | None = None
        self._usage: dict[str, Any] | None = None
        self._started = False
        self._ended = False

    def start(self) -> list[Event]:
        """`response.created` and `response.in_progress`."""
        if self._started:
            raise RuntimeError("start() was already called")
        self._started = True
        return [
            self._event("response.created", response=self._snapshot("in_progress")),
            self._event("response.in_progress", response=self._snapshot("in_progress")),
        ]

    def feed(self, chunk: dict[str, Any]) -> list[Event]:
        """The events one parsed `chat.completion.chunk` produces."""
        events = self._begin()
        if chunk.get("model"):
            self.model = str(chunk["model"])
        if chunk.get("usage"):
            self._usage = chunk["usage"]
        for choice in chunk.get("choices") or []:
            if choice.get("index", 0) != 0:
                continue
            delta = choice.get("delta") or {}
            if delta.get("content"):
                events += self._text_delta("output_text", str(delta["content"]))
            if delta.get("refusal"):
                events += self._text_delta("refusal", str(delta["refusal"]))
            for call in delta.get("tool_calls") or []:
                events += self._call_delta(call)
            if choice.get("finish_reason"):
                self._finish_reason = choice["finish_reason"]
        return events

    def finish(self) -> list[Event]:
        """Close every open item, then `response.completed` (or `response.incomplete`)."""
        events = self._begin()
        if not self._items:  # nothing was generated: answer with an empty message
            events += self._open_message("output_text")
        status, incomplete_details = wire.outcome(self._finish_reason)
        item_status = "completed" if status == "completed" else "incomplete"
        for item in self._items:
            if item.status == "in_progress":
                events += self._close(item, item_status)
        self._ended = True
        final = self._snapshot(status, incomplete_details=incomplete_details)
        kind = "response.completed" if status == "completed" else "response.incomplete"
        return [*events, self._event(kind, response=final)]

    def fail(self, message: str, code: str | None) -> list[Event]:
        """`response.failed`, carrying `error` and whatever output was produced."""
        events = self._begin()
        self._ended = True
        error = {"code": _ERROR_CODES.get(code or "", "server_error"), "message": message}
        failed = self._snapshot("failed", error=error)
        return [*events, self._event("response.failed", response=failed)]

    # --- items --------------------------------------------------------------------

    def _text_delta(self, kind: str, text: str) -> list[Event]:
        events: list[Event] = []
        message = self._message
        if message is None or message.parts[-1].kind != kind:
            events += self._open_message(kind)
            message = self._message
            assert message is not None
        part = message.parts[-1]
        part.text += text
        if kind == "refusal":
            return [*events, self._event("response.refusal.delta", message, delta=text)]
        delta = self._event("response.output_text.delta", message, delta=text, logprobs=[])
        return [*events, delta]

    def _open_message(self, kind: str) -> list[Event]:
        """Open a part of `kind`, closing the current one or opening a message first."""
        events: list[Event] = []
        message = self._message
        if message is None:
            message = _Message(wire.new_id("msg"), len(self._items))
            self._items.append(message)
            self._message = message
            events.append(self._item_event("response.output_item.added", message))
        else:
            events += self._close_part(message)
        message.parts.append(_Part(kind))
        part = wire.text_part("") if kind == "output_text" else wire.refusal_part("")
        events.append(self._event("response.content_part.added", message, part=part))
        return events

    def _call_delta(self, call: dict[str, Any]) -> list[Event]:
        events: list[Event] = []
        function = call.get("function") or {}
        key = self._call_key(call)
        item = self._calls.get(key)
        if item is None:
            if self._message is not None:
                events += self._close(self._message, "completed")
            call_id = call.get("id") or wire.new_id("call")
            item = _Call(wire.new_id("fc"), len(self._items), call_id, function.get("name") or "")
            self._items.append(item)
            self._calls[key] = item
            events.append(self._item_event("response.output_item.added", item))
        elif function.get("name") and not item.name:
            item.name = function["name"]
        if function.get("arguments"):
            item.arguments += function["arguments"]
            delta = function["arguments"]
            events.append(self._event("response.function_call_arguments.delta", item, delta=delta))
        return events

    def _call_key(self, call: dict[str, Any]) -> int:
        """The chat `index` of a tool call delta; by `id`, or the latest, without one."""
        index, call_id = call.get("index"), call.get("id")
        if isinstance(index, int):
            return index
        known = [key for key, item in self._calls.items() if call_id and item.call_id == call_id]
        if known or (not call_id and self._calls):
            return known[0] if known else max(self._calls)
        return len(self._calls)

    def _close(self, item: _Message | _Call, status: str) -> list[Event]:
        item.status = status
        if isinstance(item, _Message):
            self._message = None if self._message is item else self._message
            events = self._close_part(item)
        else:
            done, args = "response.function_call_arguments.done", item.arguments
            events = [self._event(done, item, name=item.name, arguments=args)]
        return [*events, self._item_event("response.output_item.done", item)]

    def _close_part(self, message: _Message) -> list[Event]:
        """The done events of a message's last (the only open) part."""
        part = message.parts[-1]
        if part.kind == "output_text":
            done = self._event("response.output_text.done", message, text=part.text, logprobs=[])
        else:
            done = self._event("response.refusal.done", message, refusal=part.text)
        return [done, self._event("response.content_part.done", message, part=_part(part))]

    # --- objects ------------------------------------------------------------------

    def _begin(self) -> list[Event]:
        if self._ended:
            raise RuntimeError("the response stream already ended")
        return [] if self._started else self.start()

    def _event(self, event_type: str, at: _Message | _Call | None = None, **fields: Any) -> Event:
        """The next event; `at` adds the item's id and index (and a message's part index)."""
        data: dict[str, Any] = {"type": event_type, "sequence_number": self._sequence}
        if at is not None:
            data.update(item_id=at.item_id, output_index=at.output_index)
            if isinstance(at, _Message):
                data["content_index"] = len(at.parts) - 1
        data.update(fields)
        self._sequence += 1
        return event_type, data

    def _item_event(self, event_type: str, item: _Message | _Call) -> Event:
        return self._event(event_type, output_index=item.output_index, item=self._item(item))

    def _item(self, item: _Message | _Call) -> dict[str, Any]:
        status = "incomplete" if item.status == "in_progress" and self._ended else item.status
        if isinstance(item, _Message):
            return wire.message_item(item.item_id, [_part(part) for part in item.parts], status)
        return wire.function_call_item(
            item.item_id, item.call_id, item.name, item.arguments, status
        )

    def _snapshot(self, status: str, **fields: Any) -> dict[str, Any]:
        return wire.response_object(
            self.request,
            response_id=self.response_id,
            created_at=self.created_at,
            model=self.model,
            status=status,
            output=[self._item(item) for item in self._items],
            usage=wire.usage_from_chat(self._usage),
            **fields,
        )


def _part(part: _Part) -> dict[str, Any]:
    return wire.text_part(part.text) if part.kind == "output_text" else wire.refusal_part(part.text)

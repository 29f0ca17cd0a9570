"""Restore masked values in a streamed answer: a wrapper around any stream transform.

Chat and completions chunks: each choice's `delta.content` / `text` and each tool call's
`arguments` run through their own `StreamRehydrator`; a held tail is released on the
chunk that carries the choice's `finish_reason`. Responses API events: text deltas per
output item, and the `.done` / `response.completed` events restored whole. Events with
nothing to restore pass through byte for byte.
"""

from __future__ import annotations

from typing import Any

import orjson

from gateway.errors import UpstreamError
from gateway.providers.sse import event_data
from gateway.redaction.fields import map_answer_text
from gateway.redaction.rehydrate import StreamRehydrator
from gateway.redaction.vault import Vault
from gateway.serving.transforms import StreamTransform
from gateway.serving.usage import Usage


class RehydratingTransform:
    def __init__(self, inner: StreamTransform, vault: Vault, endpoint: str) -> None:
        self._inner = inner
        self._vault = vault
        self._endpoint = endpoint
        self._streams: dict[tuple[Any, ...], StreamRehydrator] = {}

    @property
    def usage(self) -> Usage:
        return self._inner.usage

    def _rehydrator(self, key: tuple[Any, ...]) -> StreamRehydrator:
        stream = self._streams.get(key)
        if stream is None:
            stream = self._streams[key] = StreamRehydrator(self._vault)
        return stream

    def feed(self, event: bytes) -> list[bytes]:
        return [out for e in self._inner.feed(event) for out in self._restore(e)]

    def finish(self) -> list[bytes]:
        return [out for e in self._inner.finish() for out in self._restore(e)]

    def fail(self, error: UpstreamError) -> list[bytes]:
        return self._inner.fail(error)

    def content(self) -> dict[str, Any] | None:
        return self._inner.content()

    def _restore(self, event: bytes) -> list[bytes]:
        data = event_data(event)
        if not data or data == b"[DONE]" or (b"<" not in data and not self._streams):
            return [event]
        try:
            payload = orjson.loads(data)
        except orjson.JSONDecodeError:
            return [event]
        if not isinstance(payload, dict):
            return [event]
        head = event[: event.index(b"data:")]
        if isinstance(payload.get("choices"), list):
            self._chat_chunk(payload)
            return [head + b"data: " + orjson.dumps(payload) + b"\n\n"]
        tail = self._responses_event(payload)
        restored = head + b"data: " + orjson.dumps(payload) + b"\n\n"
        return [*tail, restored]

    def _chat_chunk(self, payload: dict[str, Any]) -> None:
        for choice in payload["choices"]:
            if not isinstance(choice, dict):
                continue
            index, ending = choice.get("index", 0), choice.get("finish_reason") is not None
            delta = choice.get("delta")
            if isinstance(choice.get("text"), str) or (ending and "delta" not in choice):
                choice["text"] = self._through(("text", index), choice.get("text") or "", ending)
            if not isinstance(delta, dict):
                continue
            if isinstance(delta.get("content"), str) or ending:
                restored = self._through(("content", index), delta.get("content") or "", ending)
                if restored or isinstance(delta.get("content"), str):
                    delta["content"] = restored
            for call in delta.get("tool_calls") or []:
                function = call.get("function") if isinstance(call, dict) else None
                if isinstance(function, dict) and isinstance(function.get("arguments"), str):
                    key = ("arguments", index, call.get("index", 0))
                    function["arguments"] = self._through(key, function["arguments"], ending)

    def _through(self, key: tuple[Any, ...], text: str, ending: bool) -> str:
        stream = self._rehydrator(key)
        out = stream.feed(text)
        return out + stream.flush() if ending else out

    def _responses_event(self, payload: dict[str, Any]) -> list[bytes]:
        """Restore in place; return a delta event to send first for a held tail."""
        kind = payload.get("type", "")
        before: list[bytes] = []
        if kind.endswith(".delta") and isinstance(payload.get("delta"), str):
            key = (payload.get("item_id"), payload.get("content_index"), kind)
            payload["delta"] = self._rehydrator(key).feed(payload["delta"])
        elif kind.endswith(".done"):
            delta_kind = kind.removesuffix(".done") + ".delta"
            key = (payload.get("item_id"), payload.get("content_index"), delta_kind)
            held = self._streams.pop(key, None)
            rest = held.flush() if held is not None else ""
            if rest:
                extra = {k: v for k, v in payload.items() if k not in ("text", "arguments")}
                extra.update(type=delta_kind, delta=rest)
                before.append(
                    b"event: " + delta_kind.encode() + b"\ndata: " + orjson.dumps(extra) + b"\n\n"
                )
            for field in ("text", "arguments"):
                if isinstance(payload.get(field), str):
                    payload[field] = self._vault.restore(payload[field])
        response = payload.get("response")
        if isinstance(response, dict):
            payload["response"] = map_answer_text(
                "responses", response, lambda w, t: self._vault.restore(t)
            )
        return before

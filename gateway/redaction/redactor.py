"""One request's PII handling: detect once, then mask/redact/hash per destination.

`RequestPII` is created per request from the tenant's settings. `body_for(location)`
gives the body to send to an external provider or a local model (computed once per
action); `blocked_types()` says whether a `block` destination must refuse it; `restore`
and `stream_transform` put masked values back into the answer; `for_logs` redacts the
request and the answer for everything the store keeps.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Protocol

import orjson

from gateway.redaction.fields import map_answer_text, map_request_text
from gateway.redaction.stream import RehydratingTransform
from gateway.redaction.vault import Action, Vault
from gateway.serving.transforms import StreamTransform


class Span(Protocol):
    type: str
    start: int
    end: int
    text: str


class Detector(Protocol):
    def detect(self, text: str) -> list[Any]: ...


@dataclass(frozen=True)
class PIISettings:
    external: Action = Action.MASK
    local: Action = Action.OFF
    logs: Action = Action.REDACT

    def for_location(self, location: str) -> Action:
        return self.local if location == "local" else self.external


@dataclass
class RequestPII:
    endpoint: str
    body: dict[str, Any]
    settings: PIISettings
    detector: Detector
    hash_key: bytes = b""
    on_found: Callable[[str, str, int], None] | None = None  # (type, action, count)
    vault: Vault = field(init=False)
    _spans: dict[str, list[Any]] = field(default_factory=dict, init=False)
    _bodies: dict[Action, dict[str, Any]] = field(default_factory=dict, init=False)

    def __post_init__(self) -> None:
        self.vault = Vault(hash_key=self.hash_key)

    def spans(self, text: str) -> list[Any]:
        found = self._spans.get(text)
        if found is None:
            found = self._spans[text] = sorted(self.detector.detect(text), key=lambda e: e.start)
        return found

    def _rewrite(self, action: Action, vault: Vault) -> Callable[[str, str], str]:
        def fn(where: str, text: str) -> str:
            spans = self.spans(text)
            if not spans:
                return text
            out, last = [], 0
            for span in spans:
                out.append(text[last : span.start])
                out.append(vault.replace(action, span.type, span.text))
                last = span.end
            out.append(text[last:])
            return "".join(out)

        return fn

    def body_for(self, location: str) -> dict[str, Any]:
        action = self.settings.for_location(location)
        if action in (Action.OFF, Action.BLOCK):
            return self.body
        body = self._bodies.get(action)
        if body is None:
            before = dict(self.vault.found)
            body = self._bodies[action] = map_request_text(
                self.endpoint, self.body, self._rewrite(action, self.vault)
            )
            self._count(before, action.value)
        return body

    def blocked_types(self) -> list[str]:
        """Entity types present when some destination blocks (never the values)."""
        if Action.BLOCK not in (self.settings.external, self.settings.local):
            return []
        types: set[str] = set()

        def collect(where: str, text: str) -> str:
            types.update(span.type for span in self.spans(text))
            return text

        map_request_text(self.endpoint, self.body, collect)
        return sorted(types)

    def restore(self, raw: bytes) -> bytes:
        if not self.vault.reversible:
            return raw
        try:
            answer = orjson.loads(raw)
        except orjson.JSONDecodeError:
            return raw
        restored = map_answer_text(self.endpoint, answer, lambda w, t: self.vault.restore(t))
        return orjson.dumps(restored)

    def stream_transform(self, inner: StreamTransform) -> StreamTransform:
        if not self.vault.reversible:
            return inner
        return RehydratingTransform(inner, self.vault, self.endpoint)

    def for_logs(
        self, request: dict[str, Any] | None, answer: dict[str, Any] | None
    ) -> tuple[dict[str, Any] | None, dict[str, Any] | None]:
        """The request and answer as the store may keep them (the `logs` action)."""
        action = self.settings.logs
        if action is Action.OFF:
            return request, answer
        vault = Vault(hash_key=self.hash_key)
        rewrite = self._rewrite(Action.REDACT if action is Action.BLOCK else action, vault)
        return (
            map_request_text(self.endpoint, request, rewrite) if request is not None else None,
            map_answer_text(self.endpoint, answer, rewrite) if answer is not None else None,
        )

    def _count(self, before: dict[str, int], action: str) -> None:
        if self.on_found is None:
            return
        for kind, total in self.vault.found.items():
            if total > before.get(kind, 0):
                self.on_found(kind, action, total - before.get(kind, 0))

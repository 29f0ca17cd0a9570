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
class Prepared:
    """What `RequestPII.prepare` computed: plain data, so it can come from a worker."""

    bodies: dict[Action, dict[str, Any]]
    vault: Vault
    blocked: list[str]
    logged: dict[str, Any] | None
    counts: list[tuple[str, str, int]]  # (type, action, count) for the metrics


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
    _logged: dict[str, Any] | None = field(default=None, init=False)  # the request, for logs
    _blocked: list[str] | None = field(default=None, init=False)

    def __post_init__(self) -> None:
        self.vault = Vault(hash_key=self.hash_key)

    def prepare(self, log_content: bool) -> Prepared:
        """Everything the request needs from its text, computed now: the body for each
        destination's action, the types a `block` destination refuses, the request as the
        logs keep it. CPU-heavy on a large request, so the scanner may run it in a worker
        process on a copy and hand the result back to `adopt`."""
        settings = self.settings
        counts: list[tuple[str, str, int]] = []
        for action in dict.fromkeys((settings.external, settings.local)):
            if action not in (Action.OFF, Action.BLOCK):
                before = dict(self.vault.found)
                self.body_for("local" if action is settings.local else "external")
                for kind, total in self.vault.found.items():
                    if total > before.get(kind, 0):
                        counts.append((kind, action.value, total - before.get(kind, 0)))
        blocked = self.blocked_types()
        logged = self.for_logs(self.body, None)[0] if log_content else None
        return Prepared(dict(self._bodies), self.vault, blocked, logged, counts)

    def adopt(self, prepared: Prepared) -> None:
        """Take what `prepare` computed (maybe in a worker) for this request."""
        self._bodies.update(prepared.bodies)
        self.vault = prepared.vault
        self._blocked = prepared.blocked
        self._logged = prepared.logged
        if self.on_found is not None:
            for kind, action, count in prepared.counts:
                self.on_found(kind, action, count)

    def needs_scan(self, log_content: bool) -> bool:
        """Whether any destination of this request acts on the PII in it."""
        settings = self.settings
        return (
            settings.external is not Action.OFF
            or settings.local is not Action.OFF
            or (log_content and settings.logs is not Action.OFF)
        )

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
        if self._blocked is not None:
            return self._blocked
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
        if request is self.body and self._logged is not None:
            logged: dict[str, Any] | None = self._logged
        else:
            logged = (
                map_request_text(self.endpoint, request, rewrite) if request is not None else None
            )
        return (
            logged,
            map_answer_text(self.endpoint, answer, rewrite) if answer is not None else None,
        )

    def _count(self, before: dict[str, int], action: str) -> None:
        if self.on_found is None:
            return
        for kind, total in self.vault.found.items():
            if total > before.get(kind, 0):
                self.on_found(kind, action, total - before.get(kind, 0))

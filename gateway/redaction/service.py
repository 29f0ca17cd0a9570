"""Per-tenant PII handling for the gateway: one detector per tenant's settings (types,
custom patterns), a `RequestPII` per request, and the Prometheus counts."""

from __future__ import annotations

import hashlib
from typing import Any

from prometheus_client import CollectorRegistry, Counter

from gateway.errors import InvalidRequest
from gateway.pii import PIIDetector
from gateway.policy.model import PIIPolicy
from gateway.redaction.redactor import PIISettings, RequestPII
from gateway.redaction.vault import Action

DEFAULT = PIIPolicy()


class PIIBlocked(InvalidRequest):
    default_code = "pii_blocked"


class PIIService:
    def __init__(self, registry: CollectorRegistry, secret: bytes) -> None:
        self._detectors: dict[tuple[Any, ...], PIIDetector] = {}
        self._secret = secret
        self.entities = Counter(
            "flywheel_pii_entities_total",
            "Personal data found in requests, by type and the action taken",
            ["tenant", "type", "action"],
            registry=registry,
        )

    def detector(self, policy: PIIPolicy) -> PIIDetector:
        key = (
            tuple(sorted(policy.types)) if policy.types else None,
            tuple(sorted(policy.custom.items())),
        )
        detector = self._detectors.get(key)
        if detector is None:
            types = set(policy.types) if policy.types else None
            detector = self._detectors[key] = PIIDetector(types=types, custom=policy.custom)
        return detector

    def for_request(
        self,
        tenant: str,
        policy: PIIPolicy | None,
        endpoint: str,
        body: dict[str, Any],
        check_block: bool = True,
    ) -> RequestPII:
        policy = policy or DEFAULT
        settings = PIISettings(Action(policy.external), Action(policy.local), Action(policy.logs))
        hash_key = hashlib.blake2b(tenant.encode(), key=self._secret[:64]).digest()

        def counted(kind: str, action: str, count: int) -> None:
            self.entities.labels(tenant, kind, action).inc(count)

        pii = RequestPII(endpoint, body, settings, self.detector(policy), hash_key, counted)
        blocked = pii.blocked_types() if check_block else []
        if blocked:
            for kind in blocked:
                self.entities.labels(tenant, kind, "block").inc()
            raise PIIBlocked(
                "The request contains personal data this tenant does not allow to be sent: "
                + ", ".join(blocked),
                param="messages",
            )
        return pii

    def text_for_logs(self, tenant: str, policy: PIIPolicy | None, text: str) -> str:
        """A free text (e.g. feedback) as the store may keep it."""
        pii = self.for_request(tenant, policy, "completions", {"prompt": text}, check_block=False)
        request, _ = pii.for_logs({"prompt": text}, None)
        return str(request["prompt"]) if request else text

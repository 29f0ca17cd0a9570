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
from gateway.scanning import Scanner

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
        """The request's PII handling, detecting in place (small free texts: feedback)."""
        pii = self._request_pii(tenant, policy, endpoint, body)
        if check_block:
            self._check_block(tenant, pii)
        return pii

    async def scan_request(
        self,
        tenant: str,
        policy: PIIPolicy | None,
        endpoint: str,
        body: dict[str, Any],
        scanner: Scanner,
        deadline: float,
        log_content: bool,
    ) -> RequestPII:
        """The request's PII handling with every text scanned now, within the scanner's
        bounds (in a worker when large); refuses what a `block` destination must not get."""
        pii = self._request_pii(tenant, policy, endpoint, body)
        if pii.needs_scan(log_content):
            detector = self.detector(policy or DEFAULT)
            await scanner.pii(tenant, pii, detector, log_content, deadline)
        self._check_block(tenant, pii)
        return pii

    def _request_pii(
        self, tenant: str, policy: PIIPolicy | None, endpoint: str, body: dict[str, Any]
    ) -> RequestPII:
        policy = policy or DEFAULT
        settings = PIISettings(Action(policy.external), Action(policy.local), Action(policy.logs))
        hash_key = hashlib.blake2b(tenant.encode(), key=self._secret[:64]).digest()

        def counted(kind: str, action: str, count: int) -> None:
            self.entities.labels(tenant, kind, action).inc(count)

        return RequestPII(endpoint, body, settings, self.detector(policy), hash_key, counted)

    def _check_block(self, tenant: str, pii: RequestPII) -> None:
        blocked = pii.blocked_types()
        if blocked:
            for kind in blocked:
                self.entities.labels(tenant, kind, "block").inc()
            raise PIIBlocked(
                "The request contains personal data this tenant does not allow to be sent: "
                + ", ".join(blocked),
                param="messages",
            )

    def text_for_logs(self, tenant: str, policy: PIIPolicy | None, text: str) -> str:
        """A free text (e.g. feedback) as the store may keep it."""
        pii = self.for_request(tenant, policy, "completions", {"prompt": text}, check_block=False)
        request, _ = pii.for_logs({"prompt": text}, None)
        return str(request["prompt"]) if request else text

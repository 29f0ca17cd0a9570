"""What the scan workers run (gateway/offload.py processes): kept apart from the event
loop's side (gateway/scanning.py) so a worker starts with PII detection's imports only;
the injection guard (and the classifier stack under it) loads on a worker's first guard job.
Detectors and guards are built once per worker and settings."""

from __future__ import annotations

from functools import cache
from typing import TYPE_CHECKING, Any

from gateway.pii import PIIDetector
from gateway.redaction.redactor import PIISettings, Prepared, RequestPII

if TYPE_CHECKING:
    from gateway.guard import GuardFinding, InjectionGuard

Triple = tuple[str, str, str]  # (where, role, text), as the guard scans them
DetectorSpec = tuple[tuple[str, ...], tuple[tuple[str, str], ...]]  # types, custom patterns


def detector_spec(detector: PIIDetector) -> DetectorSpec:
    return tuple(sorted(detector.types)), tuple(sorted(detector.custom.items()))


@cache
def _detector(types: tuple[str, ...], custom: tuple[tuple[str, str], ...]) -> PIIDetector:
    return PIIDetector(set(types), dict(custom))


@cache
def _guard(threshold: float) -> InjectionGuard:
    from gateway.guard import InjectionGuard

    return InjectionGuard(threshold=threshold)


def prepare_pii(
    spec: DetectorSpec,
    endpoint: str,
    body: dict[str, Any],
    settings: PIISettings,
    hash_key: bytes,
    log_content: bool,
) -> Prepared:
    """`RequestPII.prepare` on a copy of the request."""
    pii = RequestPII(endpoint, body, settings, _detector(*spec), hash_key)
    return pii.prepare(log_content)


def scan_guard(threshold: float, texts: list[Triple]) -> list[GuardFinding]:
    return _guard(threshold).scan(texts)

"""Inspecting a request's text (PII detection, the injection guard) within bounds, so no
tenant's input stalls the others.

- `count_items` refuses more than `scan.max_items` messages, input items, prompts,
  content parts and tool calls (400 `array_above_max_length`), on the parsed body before
  anything walks it;
- `Scanner.spans` and `Scanner.guard` refuse more than `scan.max_chars` characters of
  text to inspect (413 `scan_limit_exceeded`) before scanning any of it; scan at most
  `scan.inline_chars` in place (a few milliseconds at worst) and more in worker processes
  (gateway/offload.py); and refuse a scan not finished by the request's scan deadline,
  `scan.deadline_s` after inspection began (503 `scan_deadline_exceeded`).

Both refusals fail closed: a request whose text was not fully scanned is never sent on.
Refusing past the cap, rather than scanning only a prefix or scanning in chunks, is what
keeps PII protection whole and each request's cost bounded: chunks would bound each
step, not the request.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any

from gateway.config import ScanConfig
from gateway.errors import GatewayError, InvalidRequest, PayloadTooLarge
from gateway.guard import GuardFinding, InjectionGuard
from gateway.offload import Offload, OffloadBroken, OffloadTimeout
from gateway.pii import PIIDetector
from gateway.redaction.fields import map_request_text
from gateway.redaction.redactor import RequestPII
from gateway.scan_jobs import Triple, detector_spec, prepare_pii, scan_guard


class TooManyItems(InvalidRequest):
    default_code = "array_above_max_length"


class ScanLimitExceeded(PayloadTooLarge):
    default_code = "scan_limit_exceeded"


class ScanUnavailable(GatewayError):
    """The request's text could not be scanned in time: it is not sent on unscanned."""

    status = 503
    error_type = "server_error"
    default_code = "scan_deadline_exceeded"


_SEQUENCES = {
    "chat/completions": "messages",
    "responses": "input",
    "completions": "prompt",
    "embeddings": "input",
}


def count_items(endpoint: str, body: Any, limit: int) -> None:
    """Refuse a request with more than `limit` messages / items and their parts."""
    param = _SEQUENCES.get(endpoint)
    items = body.get(param) if param and isinstance(body, dict) else None
    if not isinstance(items, list):
        return
    total = len(items)
    if endpoint in ("chat/completions", "responses") and total <= limit:
        for item in items:
            if isinstance(item, dict):
                for key in ("content", "tool_calls"):
                    value = item.get(key)
                    if isinstance(value, list):
                        total += len(value)
            if total > limit:
                break
    if total > limit:
        raise TooManyItems(
            f"Invalid '{param}': more than {limit} messages, items and content parts in one "
            f"request (this gateway's scan.max_items)",
            param=param,
        )


def request_texts(endpoint: str, body: dict[str, Any]) -> list[str]:
    """Every distinct text of the request that PII handling rewrites."""
    seen: dict[str, None] = {}

    def collect(where: str, text: str) -> str:
        seen[text] = None
        return text

    map_request_text(endpoint, body, collect)
    return list(seen)


class Scanner:
    def __init__(self, config: ScanConfig, offload: Offload | None = None) -> None:
        self.config = config
        self.offload = offload if offload is not None else Offload(config.workers)

    def deadline(self) -> float:
        """The scan deadline of a request whose inspection begins now (loop clock)."""
        return asyncio.get_running_loop().time() + self.config.deadline_s

    def _bounded(self, chars: int) -> bool:
        """True when the scan is small enough to run in place; refuses one over the cap."""
        cap = self.config.max_chars
        if chars > cap:
            raise ScanLimitExceeded(
                f"The request has {chars} characters of text to inspect; this gateway "
                f"inspects at most {cap} per request (scan.max_chars) and sends nothing "
                f"on unscanned",
            )
        return chars <= self.config.inline_chars

    async def pii(
        self,
        tenant: str,
        pii: RequestPII,
        detector: PIIDetector,
        log_content: bool,
        deadline: float,
    ) -> None:
        """Scan the request's text and compute what its destinations get (`RequestPII.prepare`),
        here or in a worker; `pii` holds the result."""
        texts = request_texts(pii.endpoint, pii.body)
        if self._bounded(sum(map(len, texts))):
            pii.prepare(log_content)
            return
        job = (pii.endpoint, pii.body, pii.settings, pii.hash_key, log_content)
        pii.adopt(await self._run(tenant, deadline, prepare_pii, detector_spec(detector), *job))

    async def guard(
        self,
        tenant: str,
        threshold: float,
        texts: list[Triple],
        deadline: float,
        local: Callable[[float], Awaitable[InjectionGuard]],
    ) -> list[GuardFinding]:
        """The injection guard's findings over `(where, role, text)` triples; `local` gives
        this process's guard for a small scan (a worker has its own)."""
        if self._bounded(sum(len(text) for _, _, text in texts)):
            return (await local(threshold)).scan(texts)
        findings: list[GuardFinding] = await self._run(
            tenant, deadline, scan_guard, threshold, texts
        )
        return findings

    async def _run(self, tenant: str, deadline: float, fn: Any, *args: Any) -> Any:
        try:
            return await self.offload.run(tenant, deadline, fn, *args)
        except OffloadTimeout:
            raise ScanUnavailable(
                f"Inspecting the request's text did not finish within "
                f"{self.config.deadline_s:g}s (scan.deadline_s); it was not sent on",
                headers={"retry-after": "1"},
            ) from None
        except OffloadBroken:
            raise ScanUnavailable(
                "Inspecting the request's text failed (a scan worker stopped); it was not sent on",
                code="scan_unavailable",
                headers={"retry-after": "1"},
            ) from None

    def close(self) -> None:
        self.offload.close()

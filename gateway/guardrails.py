"""Guardrails on the request path: prompt-injection and system-prompt-exfiltration
detection on user and tool content, and per-tenant token ceilings.

The tenant's policy (`guard:`) says what a finding does: `flag` (recorded in the event),
`block` (400), or `route` (the request is served by the policy's safer rule). Every
decision is counted in Prometheus by kind and action.
"""

from __future__ import annotations

import asyncio
from dataclasses import asdict
from typing import Any

from prometheus_client import CollectorRegistry, Counter

from gateway.errors import InvalidRequest
from gateway.guard import GuardClassifier, GuardFinding, InjectionGuard, train_default
from gateway.policy.model import GuardPolicy
from gateway.redaction.fields import map_request_text
from gateway.scanning import Scanner

# A tenant with no policy file gets the plain gateway: no guard scan (a policy's `guard:`
# defaults to flag). Token ceilings need a policy too.
NO_POLICY = GuardPolicy(action="off")


class InjectionBlocked(InvalidRequest):
    default_code = "prompt_injection_detected"


class InputTooLong(InvalidRequest):
    default_code = "max_input_tokens_exceeded"


class Guardrails:
    def __init__(self, registry: CollectorRegistry) -> None:
        self._guards: dict[float, InjectionGuard] = {}
        self._classifier: GuardClassifier | None = None  # one for every threshold
        self._training = asyncio.Lock()
        self.decisions = Counter(
            "flywheel_guard_decisions_total",
            "Guardrail findings by kind and the action taken",
            ["tenant", "kind", "action"],
            registry=registry,
        )

    async def _guard(self, threshold: float) -> InjectionGuard:
        """The guard for `threshold`; its classifier is trained once (a second or so on a
        busy machine), in a thread, so the event loop keeps serving meanwhile."""
        guard = self._guards.get(threshold)
        if guard is None:
            async with self._training:
                if self._classifier is None:
                    self._classifier = await asyncio.to_thread(train_default)
            guard = InjectionGuard(threshold=threshold, classifier=self._classifier)
            self._guards[threshold] = guard
        return guard

    async def check(
        self,
        tenant: str,
        policy: GuardPolicy | None,
        endpoint: str,
        body: dict[str, Any],
        input_tokens: int,
        scanner: Scanner,
        deadline: float,
    ) -> tuple[list[GuardFinding], str | None]:
        """Findings, and the rule to force (action route); raises for block / too long, and
        when the scan is over the scanner's bounds (it runs in a worker when large)."""
        policy = policy or NO_POLICY
        if policy.max_input_tokens is not None and input_tokens > policy.max_input_tokens:
            self.decisions.labels(tenant, "max_input_tokens", "block").inc()
            raise InputTooLong(
                f"The input is about {input_tokens} tokens; this tenant allows "
                f"{policy.max_input_tokens}",
                param="messages",
            )
        if policy.action == "off":
            return [], None
        texts = scannable(endpoint, body)
        findings = await scanner.guard(tenant, policy.threshold, texts, deadline, self._guard)
        for finding in findings:
            self.decisions.labels(tenant, finding.kind, policy.action).inc()
        if findings and policy.action == "block":
            kinds = ", ".join(sorted({f.kind for f in findings}))
            raise InjectionBlocked(f"The request was refused by the guardrails: {kinds}")
        return findings, policy.route_rule if findings and policy.action == "route" else None


def cap_output(policy: GuardPolicy | None, endpoint: str, body: dict[str, Any]) -> dict[str, Any]:
    """Lower (or set) the answer's token limit to the tenant's ceiling."""
    ceiling = policy.max_output_tokens if policy else None
    if ceiling is None:
        return body
    field = "max_output_tokens" if endpoint == "responses" else "max_tokens"
    present = [
        k
        for k in ("max_tokens", "max_completion_tokens", "max_output_tokens")
        if isinstance(body.get(k), int)
    ]
    out = dict(body)
    for key in present:
        out[key] = min(out[key], ceiling)
    if not present:
        out[field] = ceiling
    return out


def scannable(endpoint: str, body: dict[str, Any]) -> list[tuple[str, str, str]]:
    """(where, role, text) for user and tool content: what an attacker can write."""
    found: list[tuple[str, str, str]] = []
    messages = body.get("messages") if endpoint == "chat/completions" else None

    def collect(where: str, text: str) -> str:
        role = "user"
        if messages is not None and where.startswith("messages["):
            index = int(where[9 : where.index("]")])
            role = str(messages[index].get("role", "user"))
            if ".tool_calls" in where:
                role = "assistant"
        elif where.startswith("input["):
            items = body.get("input")
            item = items[int(where[6 : where.index("]")])] if isinstance(items, list) else None
            if ".output" in where:
                role = "tool"
            elif ".arguments" in where:
                role = "assistant"
            elif isinstance(item, dict):
                role = str(item.get("role", "user"))
        elif where == "instructions":
            role = "system"
        if role in ("user", "tool"):
            found.append((where, role, text))
        return text

    map_request_text(endpoint, body, collect)
    return found


def findings_for_event(findings: list[GuardFinding]) -> list[dict[str, Any]]:
    return [asdict(f) for f in findings]

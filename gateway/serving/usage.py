"""Token usage as each OpenAI endpoint reports it."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any


@dataclass(slots=True)
class Usage:
    input_tokens: int = 0
    output_tokens: int = 0
    reported: bool = False  # False: the upstream said nothing, the numbers are estimates

    @property
    def total(self) -> int:
        return self.input_tokens + self.output_tokens


def usage_from(payload: Any) -> Usage | None:
    """Read `usage` from a chat/completions/embeddings/responses body or chunk."""
    if not isinstance(payload, dict):
        return None
    usage = payload.get("usage")
    if not isinstance(usage, dict):
        response = payload.get("response")  # Responses API stream events nest it
        usage = response.get("usage") if isinstance(response, dict) else None
        if not isinstance(usage, dict):
            return None
    if "input_tokens" in usage:
        return Usage(_int(usage.get("input_tokens")), _int(usage.get("output_tokens")), True)
    return Usage(_int(usage.get("prompt_tokens")), _int(usage.get("completion_tokens")), True)


def estimate_tokens(raw_body: bytes) -> int:
    """A cheap upper-bound-ish guess of prompt tokens (4 bytes a token) before the call."""
    return max(1, len(raw_body) // 4)


def _int(value: Any) -> int:
    return value if isinstance(value, int) and value >= 0 else 0

"""What each action does to one detected value, and the per-request vault that makes
masking reversible.

- mask: `<EMAIL_1>`; the same value gets the same placeholder within a request, and the
  vault maps placeholders back for the answer the user receives;
- redact: `[EMAIL]`, irreversible;
- hash: `<EMAIL:3f2a9c1b>`, a keyed BLAKE2 digest: stable across requests of a tenant
  (joins and counts still work) but not reversible;
- block: the request is refused (400) naming the entity types, never the values.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass, field
from enum import StrEnum


class Action(StrEnum):
    OFF = "off"
    MASK = "mask"
    REDACT = "redact"
    HASH = "hash"
    BLOCK = "block"


PLACEHOLDER = re.compile(r"<([A-Z][A-Z0-9_]*)_(\d+)>")


@dataclass
class Vault:
    """Placeholders of one request, both ways."""

    hash_key: bytes = b""
    by_value: dict[tuple[str, str], str] = field(default_factory=dict)
    by_placeholder: dict[str, str] = field(default_factory=dict)
    counters: dict[str, int] = field(default_factory=dict)
    found: dict[str, int] = field(default_factory=dict)  # type -> count, for events/metrics

    def replace(self, action: Action, kind: str, value: str) -> str:
        self.found[kind] = self.found.get(kind, 0) + 1
        if action is Action.REDACT:
            return f"[{kind}]"
        if action is Action.HASH:
            digest = hashlib.blake2b(value.encode(), key=self.hash_key[:64], digest_size=4)
            return f"<{kind}:{digest.hexdigest()}>"
        key = (kind, value)
        placeholder = self.by_value.get(key)
        if placeholder is None:
            number = self.counters.get(kind, 0) + 1
            self.counters[kind] = number
            placeholder = f"<{kind}_{number}>"
            self.by_value[key] = placeholder
            self.by_placeholder[placeholder] = value
        return placeholder

    @property
    def reversible(self) -> bool:
        return bool(self.by_placeholder)

    def restore(self, text: str) -> str:
        if not self.by_placeholder or "<" not in text:
            return text
        return PLACEHOLDER.sub(lambda m: self.by_placeholder.get(m.group(0), m.group(0)), text)

"""Inputs outside testers used to stall the gateway (issue 13, finding 1): a prompt dense
with personal data, megabytes of name-like text, and a hundred thousand short messages.
Deterministic (seeded), so a failure reproduces."""

from __future__ import annotations

import random
from typing import Any

_FIRST = ["James", "Mary", "John", "Patricia", "Robert", "Jennifer", "Michael", "Linda",
          "Aisha", "Mohammed", "Wei", "Priya", "Olga", "Hiroshi", "Fatima", "Carlos"]  # fmt: skip
_LAST = ["Smith", "Johnson", "Williams", "Brown", "Garcia", "Miller", "Davis", "Rodriguez",
         "Nakamura", "Okafor", "Kowalski", "Haddad", "Chen", "Patel", "Ivanova",
         "Silva"]  # fmt: skip

# Valid by the detectors' own checks (Luhn, mod-97, SSA ranges), so each one is a finding.
_CARDS = ["4111 1111 1111 1111", "5500-0000-0000-0004", "4012888888881881"]
_IBANS = ["GB82 WEST 1234 5698 7654 32", "DE89370400440532013000"]


def _pii_line(rng: random.Random, i: int) -> str:
    first, last = rng.choice(_FIRST), rng.choice(_LAST)
    return (
        f"Customer {first} {last} (email {first.lower()}.{last.lower()}{i}@example.com, "
        f"phone +1 415-555-{i % 10000:04d}, SSN {100 + i % 500:03d}-45-{1000 + i % 9000:04d}, "
        f"card {rng.choice(_CARDS)}, IBAN {rng.choice(_IBANS)}, "
        f"IP 10.{i % 256}.{i // 256 % 256}.7) "
        f"lives at {100 + i % 900} Elm Street, Springfield, IL 62704 and was born on "
        f"1980-{1 + i % 12:02d}-{1 + i % 28:02d}.\n"
    )


def pii_dense(size: int, seed: int = 13) -> str:
    """About `size` characters in which nearly every word is personal data."""
    rng = random.Random(seed)
    lines: list[str] = []
    total = i = 0
    while total < size:
        line = _pii_line(rng, i)
        lines.append(line)
        total += len(line)
        i += 1
    return "".join(lines)[:size]


def name_like(size: int, seed: int = 13) -> str:
    """About `size` characters of capitalised given and family names, run together."""
    rng = random.Random(seed)
    words: list[str] = []
    total = 0
    while total < size:
        word = rng.choice(_FIRST) if rng.random() < 0.5 else rng.choice(_LAST)
        words.append(word)
        total += len(word) + 1
    return " ".join(words)[:size]


def many_messages(count: int, text: str = "hi Ann") -> list[dict[str, Any]]:
    """`count` short user messages."""
    return [{"role": "user", "content": f"{text} {i}"} for i in range(count)]

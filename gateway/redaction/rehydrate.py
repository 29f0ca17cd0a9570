"""Restore masked values in a streamed answer, chunk by chunk.

A placeholder may be split across chunks (`<EMA` + `IL_1>`): the rehydrator holds back
only a tail that could still become a placeholder (it starts with `<` and is a prefix of
the placeholder grammar, at most 40 characters) and releases everything else at once, so
no chunk waits longer than needed.
"""

from __future__ import annotations

import re

from gateway.redaction.vault import Vault

_PARTIAL = re.compile(r"<[A-Z0-9_]{0,38}$")
MAX_HOLD = 40


class StreamRehydrator:
    def __init__(self, vault: Vault) -> None:
        self._vault = vault
        self._held = ""

    def feed(self, delta: str) -> str:
        text = self._held + delta
        self._held = ""
        cut = text.rfind("<")
        if (
            cut >= 0
            and len(text) - cut <= MAX_HOLD
            and _PARTIAL.match(text, cut)
            and ">" not in text[cut:]
        ):
            text, self._held = text[:cut], text[cut:]
        return self._vault.restore(text)

    def flush(self) -> str:
        text, self._held = self._held, ""
        return self._vault.restore(text)

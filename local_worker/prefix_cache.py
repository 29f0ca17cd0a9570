"""Reuse the KV cache of a prompt prefix seen before (automatic prefix caching).

Most prompts start the same way: the chat template's default system message, a tenant's
locked system prompt from a template, a long shared document. After a prompt is
prefilled, its keys and values are kept (per adapter: an adapter changes them); a later
prompt that shares at least `min_tokens` leading tokens with one of them prefills only
the rest. Entries are evicted least recently used beyond `max_tokens` cached in all.
"""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch


@dataclass(eq=False)
class Prefix:
    tokens: np.ndarray  # the prompt it was computed for
    adapter: str | None
    layers: list[tuple[torch.Tensor, torch.Tensor]]  # keys, values: [1, heads, len, dim]


class PrefixCache:
    def __init__(self, max_tokens: int = 8192, min_tokens: int = 16, max_entries: int = 64):
        self.max_tokens = max_tokens
        self.min_tokens = min_tokens
        self.max_entries = max_entries
        self._entries: OrderedDict[int, Prefix] = OrderedDict()
        self._tokens = 0
        self.hits = 0
        self.saved_tokens = 0

    def match(self, prompt: list[int], adapter: str | None) -> tuple[Prefix, int] | None:
        """The entry sharing the longest head with `prompt`, and how many tokens it covers.

        At least one prompt token is always left to prefill (its logits start the reply).
        """
        if self.max_tokens <= 0 or len(prompt) <= self.min_tokens:
            return None
        ids = np.asarray(prompt)
        best: tuple[Prefix, int] | None = None
        for entry in self._entries.values():
            if entry.adapter != adapter:
                continue
            n = min(len(entry.tokens), len(ids) - 1)
            same = entry.tokens[:n] == ids[:n]
            common = n if bool(same.all()) else int(np.argmin(same))
            if common >= self.min_tokens and (best is None or common > best[1]):
                best = (entry, common)
        if best is not None:
            self._entries.move_to_end(id(best[0]))
            self.hits += 1
            self.saved_tokens += best[1]
        return best

    def store(
        self,
        prompt: list[int],
        adapter: str | None,
        cache: Any,
        row: int,
        covered: int = 0,
        gap: int = 0,
    ) -> None:
        """Keep row `row`'s KV for `prompt` (its real columns, see `_real`)."""
        if self.max_tokens <= 0 or len(prompt) <= self.min_tokens or len(prompt) > self.max_tokens:
            return
        n = len(prompt)
        layers = [
            (_real(layer.keys, row, n, covered, gap), _real(layer.values, row, n, covered, gap))
            for layer in cache.layers
        ]
        if any(k.shape[2] != len(prompt) for k, _ in layers):
            return
        entry = Prefix(np.asarray(prompt), adapter, layers)
        self._entries[id(entry)] = entry
        self._tokens += len(prompt)
        while self._tokens > self.max_tokens or len(self._entries) > self.max_entries:
            _, old = self._entries.popitem(last=False)
            self._tokens -= len(old.tokens)

    def forget(self, adapter: str) -> None:
        """Drop an adapter's entries (it was unloaded; a new one may reuse the name)."""
        for key, entry in list(self._entries.items()):
            if entry.adapter == adapter:
                del self._entries[key]
                self._tokens -= len(entry.tokens)


def _real(tensor: torch.Tensor, row: int, length: int, covered: int, gap: int) -> torch.Tensor:
    """Row `row`'s `length` real columns: a reused prefix's `covered` columns, then the rest
    after `gap` padding columns; or, with no prefix, the last `length` columns."""
    line = tensor[row : row + 1]
    if covered == 0:
        return line[:, :, -length:].clone()
    return torch.cat([line[:, :, :covered], line[:, :, covered + gap :]], dim=2)

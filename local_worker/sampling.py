"""Per-request sampling and the text each step may release (stop strings, partial UTF-8)."""

from __future__ import annotations

from dataclasses import dataclass

import torch


@dataclass(frozen=True)
class Sampling:
    """What a request asked for; validated at the HTTP edge."""

    max_tokens: int
    temperature: float = 1.0
    top_p: float = 1.0
    seed: int | None = None
    stop: tuple[str, ...] = ()


def generator_for(sampling: Sampling) -> torch.Generator | None:
    """A private RNG per sequence: the same seed gives the same text whatever it is batched with."""
    if sampling.temperature == 0:
        return None
    generator = torch.Generator()
    if sampling.seed is None:
        generator.seed()
    else:
        generator.manual_seed(sampling.seed)
    return generator


def sample(logits: torch.Tensor, sampling: Sampling, generator: torch.Generator | None) -> int:
    """One token from a row of logits: greedy at temperature 0, else temperature + top-p."""
    if sampling.temperature == 0 or generator is None:
        return int(torch.argmax(logits))
    probs = torch.softmax(logits.float() / sampling.temperature, dim=-1)
    if sampling.top_p < 1.0:
        ordered, index = torch.sort(probs, descending=True)
        cumulative = torch.cumsum(ordered, dim=-1)
        ordered[(cumulative - ordered) > sampling.top_p] = 0.0  # always keeps the first
        probs = torch.zeros_like(probs).scatter_(-1, index, ordered)
    return int(torch.multinomial(probs, 1, generator=generator))


@dataclass
class Release:
    """Decides how much of the decoded text may go out now."""

    stop: tuple[str, ...]
    sent: int = 0  # characters already released

    def find_stop(self, text: str) -> int | None:
        """Where the earliest stop string starts, if one appeared in the text."""
        hits = [i for s in self.stop if (i := text.find(s, max(0, self.sent - len(s)))) >= 0]
        return min(hits) if hits else None

    def next(self, text: str, final: bool) -> str:
        """The new text that is safe to send: never a stop string's prefix or a cut character."""
        end = len(text)
        if not final:
            if text.endswith("\ufffd"):  # a multi-byte character still incomplete
                end -= 1
            end -= self._held(text[:end])
        if end <= self.sent:
            return ""
        delta, self.sent = text[self.sent : end], end
        return delta

    def _held(self, text: str) -> int:
        longest = 0
        for s in self.stop:
            for k in range(min(len(s) - 1, len(text)), longest, -1):
                if text.endswith(s[:k]):
                    longest = k
                    break
        return longest

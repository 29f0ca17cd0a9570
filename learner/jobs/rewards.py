"""Rewards for RL jobs: a reward model's scores plus programmatic checks, as TRL reward funcs.

A reward is any `(prompts, completions) -> list[float]` over plain text: the prompt is
rendered as the reward model was trained on it (`gateway.transcript.prompt_text`: a lone
user turn as is, else every turn), the completion is the generated answer.
`Reward.model(scorer)` wraps anything with `score(prompt, response) -> float` (the
learner's reward model).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from gateway.transcript import reward_prompt

RewardFn = Callable[[list[str], list[str]], list[float]]


class Scorer(Protocol):
    def score(self, prompt: str, response: str) -> float: ...


@dataclass(frozen=True)
class Reward:
    name: str  # logged as rewards/<name>/mean
    fn: RewardFn
    weight: float = 1.0

    @classmethod
    def model(cls, scorer: Scorer, weight: float = 1.0, name: str = "reward_model") -> Reward:
        def score(prompts: list[str], completions: list[str]) -> list[float]:
            return [scorer.score(p, c) for p, c in zip(prompts, completions, strict=True)]

        return cls(name, score, weight)

    def as_trl(self) -> Callable[..., list[float]]:
        """The TRL reward-func signature: conversational prompts and completions, keywords."""

        def trl_reward(prompts: Sequence[Any], completions: Sequence[Any], **_: Any) -> list[float]:
            texts = [_text(c, "assistant") for c in completions]
            return [float(r) for r in self.fn([reward_prompt(p) for p in prompts], texts)]

        trl_reward.__name__ = self.name
        return trl_reward


def _text(value: Any, role: str) -> str:
    if isinstance(value, str):
        return value
    contents = [m["content"] for m in value if m.get("role") == role]
    return str(contents[-1]) if contents else ""


def brevity(max_chars: int = 400) -> Reward:
    """1 up to `max_chars`, then falling as max_chars / length."""

    def fn(prompts: list[str], completions: list[str]) -> list[float]:
        return [min(1.0, max_chars / max(len(c.strip()), 1)) for c in completions]

    return Reward("brevity", fn)


def one_line_summary(max_chars: int = 120) -> Reward:
    """1 when the answer opens with a non-empty line of at most `max_chars` characters."""

    def fn(prompts: list[str], completions: list[str]) -> list[float]:
        firsts = [c.strip().split("\n", 1)[0].strip() for c in completions]
        return [1.0 if 0 < len(first) <= max_chars else 0.0 for first in firsts]

    return Reward("one_line_summary", fn)


def no_repetition(n: int = 3) -> Reward:
    """1 minus the answer's repeated n-gram fraction (the gates' repetition measure): keeps
    RL from paying for a loop the reward model happens to like, which the gates reject."""
    from learner.gates_metrics import repeated_ngram_fraction

    def fn(prompts: list[str], completions: list[str]) -> list[float]:
        return [1.0 - repeated_ngram_fraction(c, n) for c in completions]

    return Reward("no_repetition", fn)

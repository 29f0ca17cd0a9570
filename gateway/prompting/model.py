"""The shape of `templates/*.yaml`: one versioned prompt template, strictly validated.

```yaml
id: support-answer          # [a-z0-9-]+
version: "3"                # a string (a bare number is read as one)
description: Answers support questions for a tenant's product
system: |                   # a Jinja2 template (sandboxed), rendered with `variables`
  You are {{ company }}'s support assistant. Answer in {{ language }}.
locked: true                # the caller's own system/developer messages cannot replace it
few_shot:                   # example turns inserted after the system message (templates too)
  - {user: "How do I reset my password?", assistant: "Go to Settings > Security ..."}
variables:                  # declared variables with defaults; only these may be set
  company: {default: "Acme"}
  language: {default: "English", allowed: ["English", "French", "German"]}
max_tokens: 512             # cap on max_tokens / max_completion_tokens / max_output_tokens
variants:                   # optional A/B variants of the same id+version
  - {name: a, weight: 0.5}                          # the base as written
  - {name: b, weight: 0.5, system: "You are {{ company }}'s concise support bot."}
```

Unknown keys are errors; texts, turns, variants and variables are bounded (MAX_*).
Weights must be positive; they are normalised to sum to 1
(`normalised_weights`). Whether the Jinja2 texts compile, and use only declared
variables, is checked when the template is compiled (`gateway.prompting.render`).
"""

from __future__ import annotations

import keyword
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

MAX_VALUE_CHARS = 1000  # the longest value a variable may take
# How big a template may be (the file's bytes and YAML aliases are bounded by the
# loader, gateway.yaml_load.TEMPLATE_BUDGET; what a render may build, by render.py).
MAX_TEXT_CHARS = 32_000  # a system text or one few-shot message (Jinja2 source)
MAX_TURNS = 32  # few-shot turns of the base or of one variant
MAX_VARIANTS = 16
MAX_VARIABLES = 64
MAX_ALLOWED = 256  # values listed in one variable's `allowed`


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, strict=True)


class Turn(Strict):
    """One few-shot example: a user message and the assistant's answer."""

    user: str = Field(min_length=1, max_length=MAX_TEXT_CHARS)
    assistant: str = Field(min_length=1, max_length=MAX_TEXT_CHARS)


class Variable(Strict):
    default: str | None = Field(None, max_length=MAX_VALUE_CHARS)
    allowed: list[str] | None = Field(None, min_length=1, max_length=MAX_ALLOWED)
    description: str = Field("", max_length=MAX_VALUE_CHARS)

    @model_validator(mode="after")
    def _default_allowed(self) -> Variable:
        if (
            self.allowed is not None
            and self.default is not None
            and self.default not in self.allowed
        ):
            raise ValueError(f"default {self.default!r} is not one of allowed {self.allowed}")
        return self


class Variant(Strict):
    """An A/B arm: the base template with `system` and/or `few_shot` replaced."""

    name: str = Field(pattern=r"^[A-Za-z0-9_.-]+$", max_length=64)
    weight: float = Field(gt=0, allow_inf_nan=False)
    system: str | None = Field(None, min_length=1, max_length=MAX_TEXT_CHARS)
    few_shot: list[Turn] | None = Field(None, max_length=MAX_TURNS)


class TemplateSpec(Strict):
    id: str = Field(pattern=r"^[a-z0-9-]+$", max_length=100)
    version: str = Field(pattern=r"^[A-Za-z0-9._-]+$", max_length=40)
    description: str = Field("", max_length=MAX_VALUE_CHARS)
    system: str = Field(min_length=1, max_length=MAX_TEXT_CHARS)
    locked: bool = False
    few_shot: list[Turn] = Field(default_factory=list, max_length=MAX_TURNS)
    variables: dict[str, Variable] = Field(default_factory=dict, max_length=MAX_VARIABLES)
    max_tokens: int | None = Field(None, ge=1)
    variants: list[Variant] = Field(default_factory=list, max_length=MAX_VARIANTS)

    @field_validator("version", mode="before")
    @classmethod
    def _number_as_string(cls, value: Any) -> Any:
        if isinstance(value, int | float) and not isinstance(value, bool):
            return str(value)
        return value

    @field_validator("variables")
    @classmethod
    def _names(cls, value: dict[str, Variable]) -> dict[str, Variable]:
        bad = [
            n for n in value if not n.isidentifier() or n.startswith("_") or keyword.iskeyword(n)
        ]
        if bad:
            raise ValueError(f"variable names must be identifiers not starting with '_': {bad}")
        return value

    @field_validator("variants")
    @classmethod
    def _unique(cls, value: list[Variant]) -> list[Variant]:
        names = [v.name for v in value]
        duplicates = sorted({n for n in names if names.count(n) > 1})
        if duplicates:
            raise ValueError(f"variant names must be unique: {', '.join(duplicates)}")
        return value

    def normalised_weights(self) -> list[float]:
        """Each variant's share of traffic (summing to 1); [1.0] without variants."""
        if not self.variants:
            return [1.0]
        total = sum(v.weight for v in self.variants)
        return [v.weight / total for v in self.variants]

"""Prompt templates as versioned assets (`templates/*.yaml`).

`TemplateLibrary` loads and hot-reloads them; `apply_template` renders one into a
request body (system message, few-shot turns, locked system, max-tokens cap) with a
sticky A/B variant whose propensity is returned for the learner.
"""

from gateway.prompting.apply import Applied, apply_template, assignment_point, choose_variant
from gateway.prompting.library import (
    LoadedTemplate,
    TemplateLibrary,
    TemplateLoadError,
    parse_template,
)
from gateway.prompting.model import TemplateSpec, Turn, Variable, Variant
from gateway.prompting.render import CompiledTemplate, CompiledVariant, TemplateError

__all__ = [
    "Applied",
    "CompiledTemplate",
    "CompiledVariant",
    "LoadedTemplate",
    "TemplateError",
    "TemplateLibrary",
    "TemplateLoadError",
    "TemplateSpec",
    "Turn",
    "Variable",
    "Variant",
    "apply_template",
    "assignment_point",
    "choose_variant",
    "parse_template",
]

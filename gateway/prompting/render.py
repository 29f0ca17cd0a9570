"""Compile a template's Jinja2 texts once at load, and render them per request.

Texts (`system`, each few-shot turn, each variant's overrides) are compiled in an
`ImmutableSandboxedEnvironment` with `StrictUndefined`, no autoescaping and no globals,
so a template can read its declared variables and little else. At compile time:
syntax errors, attribute or item names starting with `_` (`''.__class__` tricks) and
variables that are not declared are problems naming the key and the line inside the
text; then every variant is rendered once with sample values, so a template that
cannot render is rejected at load, not on a request.

Values are the declared defaults overridden by the caller's; each must be a declared
variable, a string of at most 1,000 characters and, where `allowed` is given, one of
those. They are inserted as data: a value containing `{{ ... }}` is not evaluated.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import jinja2
from jinja2 import StrictUndefined, meta, nodes
from jinja2.exceptions import SecurityError
from jinja2.runtime import Context
from jinja2.sandbox import ImmutableSandboxedEnvironment

from gateway.errors import InvalidRequest
from gateway.prompting.model import MAX_VALUE_CHARS, TemplateSpec, Turn

DEFAULT_VARIANT = "default"  # the variant name of a template without `variants`
MAX_REPEAT = 100_000  # longest string/list a `*` may build; `**` exponents are capped too


class TemplateError(InvalidRequest):
    """A template could not be rendered with the values given (the message says why)."""

    default_code = "template_error"


@dataclass(frozen=True)
class SourceProblem:
    path: tuple[str, ...]  # key path in the template file, e.g. ("variants", "1", "system")
    line: int | None  # 1-based line inside that text, when known
    message: str


class TemplateSourceError(Exception):
    def __init__(self, problems: list[SourceProblem]) -> None:
        super().__init__("; ".join(f"{'.'.join(p.path)}: {p.message}" for p in problems))
        self.problems = problems


class _Sandbox(ImmutableSandboxedEnvironment):
    """The sandbox, with `*` and `**` bounded so a template cannot exhaust memory."""

    intercepted_binops = frozenset({"*", "**"})

    def call_binop(self, context: Context, operator: str, left: Any, right: Any) -> Any:
        if operator == "*":
            for seq, times in ((left, right), (right, left)):
                if (
                    isinstance(seq, str | list | tuple)
                    and isinstance(times, int)
                    and len(seq) * times > MAX_REPEAT
                ):
                    raise SecurityError(f"'*' would build more than {MAX_REPEAT} items")
        if operator == "**" and isinstance(right, int | float) and abs(right) > 64:
            raise SecurityError("'**' exponents above 64 are not allowed")
        return super().call_binop(context, operator, left, right)


def _environment() -> _Sandbox:
    env = _Sandbox(
        undefined=StrictUndefined,
        autoescape=False,
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=False,
    )
    env.globals.clear()
    return env


_ENV = _environment()


@dataclass(frozen=True)
class CompiledVariant:
    name: str
    weight: float  # normalised: the variants of one template sum to 1
    system: jinja2.Template
    few_shot: tuple[tuple[jinja2.Template, jinja2.Template], ...]


@dataclass(frozen=True)
class Rendered:
    system: str
    few_shot: tuple[tuple[str, str], ...]  # (user, assistant) turns


@dataclass(frozen=True)
class CompiledTemplate:
    spec: TemplateSpec
    variants: tuple[CompiledVariant, ...]

    def variant(self, name: str) -> CompiledVariant:
        for variant in self.variants:
            if variant.name == name:
                return variant
        raise KeyError(name)

    def values(self, given: Mapping[str, Any] | None, *, strict: bool = True) -> dict[str, str]:
        """Defaults overridden by `given`; strict=False skips names this template lacks."""
        declared = self.spec.variables
        values = {name: var.default for name, var in declared.items() if var.default is not None}
        for name, value in (given or {}).items():
            if name not in declared:
                if not strict:
                    continue
                known = ", ".join(sorted(declared)) or "none"
                raise TemplateError(
                    f"template {self.spec.id!r} has no variable {name!r} (declared: {known})",
                    param="variables",
                )
            values[name] = value
        for name, var in declared.items():
            value = values.get(name)
            if value is None:
                raise TemplateError(
                    f"template {self.spec.id!r} needs a value for {name!r}", param="variables"
                )
            if not isinstance(value, str):
                raise TemplateError(
                    f"template variable {name!r} must be a string", param="variables"
                )
            if len(value) > MAX_VALUE_CHARS:
                raise TemplateError(
                    f"template variable {name!r} is longer than {MAX_VALUE_CHARS} characters",
                    param="variables",
                )
            if var.allowed is not None and value not in var.allowed:
                raise TemplateError(
                    f"template variable {name!r} may not be {value!r} "
                    f"(allowed: {', '.join(var.allowed)})",
                    param="variables",
                )
        return {name: values[name] for name in declared}

    def render(self, variant: CompiledVariant, values: Mapping[str, str]) -> Rendered:
        """Render one variant; `values` must come from `values()`."""
        try:
            return Rendered(
                system=variant.system.render(values).strip(),
                few_shot=tuple(
                    (user.render(values).strip(), answer.render(values).strip())
                    for user, answer in variant.few_shot
                ),
            )
        except jinja2.TemplateError as exc:
            raise TemplateError(
                f"template {self.spec.id!r} variant {variant.name!r} failed to render: {exc}"
            ) from exc


def compile_template(spec: TemplateSpec) -> CompiledTemplate:
    """Compile every text of `spec`; TemplateSourceError lists every problem found."""
    problems: list[SourceProblem] = []
    declared = set(spec.variables)

    def text(source: str, path: tuple[str, ...]) -> jinja2.Template | None:
        found = _check(source, path, declared)
        problems.extend(found)
        return None if found else _ENV.from_string(source)

    def turns(few_shot: list[Turn], path: tuple[str, ...]) -> list[tuple[Any, Any]]:
        return [
            (text(t.user, (*path, str(i), "user")), text(t.assistant, (*path, str(i), "assistant")))
            for i, t in enumerate(few_shot)
        ]

    base_system = text(spec.system, ("system",))
    base_turns = turns(spec.few_shot, ("few_shot",))
    arms: list[tuple[str, float, Any, list[tuple[Any, Any]]]] = []
    if not spec.variants:
        arms.append((DEFAULT_VARIANT, 1.0, base_system, base_turns))
    weights = spec.normalised_weights() if spec.variants else []
    for i, (v, weight) in enumerate(zip(spec.variants, weights, strict=True)):
        where = ("variants", str(i))
        system = base_system if v.system is None else text(v.system, (*where, "system"))
        shots = base_turns if v.few_shot is None else turns(v.few_shot, (*where, "few_shot"))
        arms.append((v.name, weight, system, shots))
    if problems:
        raise TemplateSourceError(problems)
    compiled = CompiledTemplate(
        spec,
        tuple(
            CompiledVariant(name, weight, system, tuple(shots))
            for name, weight, system, shots in arms
        ),
    )
    _trial_render(compiled, problems)
    if problems:
        raise TemplateSourceError(problems)
    return compiled


def _check(source: str, path: tuple[str, ...], declared: set[str]) -> list[SourceProblem]:
    try:
        ast = _ENV.parse(source)
    except jinja2.TemplateSyntaxError as exc:
        return [SourceProblem(path, exc.lineno, f"Jinja2 syntax error: {exc.message}")]
    problems = []
    for node in ast.find_all((nodes.Getattr, nodes.Getitem)):
        name: Any = None
        if isinstance(node, nodes.Getattr):
            name = node.attr
        elif isinstance(node, nodes.Getitem) and isinstance(node.arg, nodes.Const):
            name = node.arg.value
        if isinstance(name, str) and name.startswith("_"):
            problems.append(
                SourceProblem(path, node.lineno, f"access to {name!r} is not allowed in a template")
            )
    for name in sorted(meta.find_undeclared_variables(ast) - declared):
        line = next((n.lineno for n in ast.find_all(nodes.Name) if n.name == name), None)
        problems.append(
            SourceProblem(path, line, f"variable {name!r} is not declared in `variables`")
        )
    return problems


def _trial_render(compiled: CompiledTemplate, problems: list[SourceProblem]) -> None:
    sample = {
        name: var.default
        if var.default is not None
        else var.allowed[0]
        if var.allowed
        else "example"
        for name, var in compiled.spec.variables.items()
    }
    for i, variant in enumerate(compiled.variants):
        path = ("variants", str(i)) if compiled.spec.variants else ("system",)
        try:
            compiled.render(variant, sample)
        except TemplateError as exc:
            problems.append(SourceProblem(path, None, str(exc.__cause__ or exc)))

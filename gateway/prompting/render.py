"""Compile a template's Jinja2 texts once at load, and render them per request.

Texts (`system`, each few-shot turn, each variant's overrides) are compiled in an
`ImmutableSandboxedEnvironment` with `StrictUndefined`, no autoescaping and no globals,
so a template can read its declared variables and little else. At compile time:
syntax errors, attribute or item names starting with `_` (`''.__class__` tricks),
variables that are not declared, macros, includes and recursive loops are problems
naming the key and the line inside the text; then every variant is rendered once with
sample values, so a template that cannot render is rejected at load, not on a request.

A render is bounded, so a template cannot exhaust memory or hold the event loop:
- no operation may build a string or list longer than MAX_STRING (`*` repetition,
  `.ljust`/`.rjust`/`.center`/`.zfill` widths, `replace`, `join`, `indent`, ...), and
  it is refused before it allocates; `%` formatting, `.format`, `.format_map`,
  `.translate` and `.expandtabs` are not available; integers stay under MAX_INT_BITS;
- only the filters in `ALLOWED_FILTERS` exist (no `format`, `batch`, `slice`, ...);
- loops run at most MAX_LOOP_ITERATIONS iterations per render in all, and a render
  stops after MAX_RENDER_S;
- one text renders to at most MAX_RENDER_CHARS characters.
A render over a bound fails with a TemplateError (400) that says which.

Values are the declared defaults overridden by the caller's; each must be a declared
variable, a string of at most 1,000 characters and, where `allowed` is given, one of
those. They are inserted as data: a value containing `{{ ... }}` is not evaluated.
"""

from __future__ import annotations

import functools
import time
from collections.abc import Callable, Iterator, Mapping
from contextvars import ContextVar
from dataclasses import dataclass, field
from typing import Any

import jinja2
from jinja2 import StrictUndefined, meta, nodes, pass_context
from jinja2.exceptions import SecurityError
from jinja2.runtime import Context
from jinja2.sandbox import ImmutableSandboxedEnvironment
from jinja2.visitor import NodeTransformer

from gateway.errors import InvalidRequest
from gateway.prompting.model import MAX_VALUE_CHARS, TemplateSpec, Turn

DEFAULT_VARIANT = "default"  # the variant name of a template without `variants`
MAX_STRING = 50_000  # longest string/list any one operation may build
MAX_REPEAT = MAX_STRING  # (the name `*` repetition was first bounded under)
MAX_INT_BITS = 4096  # `*` and `**` on integers
MAX_LOOP_ITERATIONS = 1000  # per render, over every loop
MAX_RENDER_CHARS = 100_000  # what one text renders to
MAX_RENDER_S = 2.0  # a render that runs longer stops (checked at each loop step and call)

ALLOWED_FILTERS = frozenset(
    {
        "abs", "capitalize", "center", "count", "d", "default", "dictsort", "e",
        "escape", "first", "float", "forceescape", "indent", "int", "items", "join",
        "last", "length", "list", "lower", "map", "max", "min", "reject", "rejectattr",
        "replace", "reverse", "round", "safe", "select", "selectattr", "sort", "string",
        "striptags", "title", "tojson", "trim", "truncate", "unique", "upper",
        "urlencode", "wordcount", "wordwrap",
    }
)  # fmt: skip
_LOOP_FILTER = "loop_budget"  # wraps every `for` loop's iterable (see _instrument)
_CONCAT_FILTER = "concat_budget"  # replaces every `~` (see _instrument)
_REFUSED_METHODS = frozenset({"format", "format_map", "translate", "maketrans", "expandtabs"})
_WIDTH_METHODS = frozenset({"ljust", "rjust", "center", "zfill"})
_TEXT = (str, bytes, bytearray)
_REFUSED_NODES: dict[type[nodes.Node], str] = {
    nodes.Macro: "macros",
    nodes.CallBlock: "call blocks",
    nodes.Include: "includes",
    nodes.Import: "imports",
    nodes.FromImport: "imports",
    nodes.Extends: "extends",
}


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


@dataclass
class _Budget:
    """What one render may still spend."""

    deadline: float = field(default_factory=lambda: time.monotonic() + MAX_RENDER_S)
    iterations: int = 0

    def tick(self) -> None:
        if time.monotonic() > self.deadline:
            raise SecurityError(f"the render took longer than {MAX_RENDER_S} s")


_BUDGET: ContextVar[_Budget | None] = ContextVar("template_budget", default=None)


def _tick() -> None:
    budget = _BUDGET.get()
    if budget is not None:
        budget.tick()


def _weight(value: Any, limit: int = MAX_STRING) -> int:
    """About how many characters `str(value)` takes: a string's length, summed over
    containers (a list holding one long string many times weighs all of them); counting
    stops soon after `limit`."""
    if isinstance(value, str | bytes | bytearray):
        return len(value)
    if not isinstance(value, list | tuple | set | frozenset | dict):
        return 1
    total = 0
    stack: list[Any] = [value]
    while stack and total <= limit:
        item = stack.pop()
        if isinstance(item, str | bytes | bytearray):
            total += len(item)
        elif isinstance(item, dict):
            total += len(item) + 1
            stack.extend(item.keys())
            stack.extend(item.values())
        elif isinstance(item, list | tuple | set | frozenset):
            total += len(item) + 1
            stack.extend(item)
        else:
            total += 1
    return total


def _bounded(value: Any, what: str) -> Any:
    if _weight(value) > MAX_STRING:
        raise SecurityError(f"{what} would build a value longer than {MAX_STRING}")
    return value


def _refuse_over(size: int, what: str) -> None:
    if size > MAX_STRING:
        raise SecurityError(f"{what} would build a value longer than {MAX_STRING}")


def _replaced_size(s: Any, old: Any, new: Any, count: Any = None) -> int:
    s, old, new = str(s), str(old), str(new)
    hits = s.count(old) if old else len(s) + 1
    if isinstance(count, int) and count >= 0:
        hits = min(hits, count)
    return len(s) + hits * (len(new) - len(old))


def _check_replace(s: Any, old: Any, new: Any, count: Any = None, *_: Any, **__: Any) -> None:
    _refuse_over(_replaced_size(s, old, new, count), "|replace")


def _check_center(value: Any, width: Any = 80, *_: Any, **__: Any) -> None:
    if isinstance(width, int):
        _refuse_over(width, "|center")


def _check_indent(s: Any, width: Any = 4, *_: Any, **__: Any) -> None:
    text = str(s)
    per_line = len(width) if isinstance(width, str) else width if isinstance(width, int) else 0
    _refuse_over(len(text) + (text.count("\n") + 1) * per_line, "|indent")


def _check_wordwrap(s: Any, width: Any = 79, _long: Any = True, wrapstring: Any = None,
                    *_: Any, **kwargs: Any) -> None:  # fmt: skip
    wrap = kwargs.get("wrapstring", wrapstring)
    text = str(s)
    _refuse_over(len(text) * (1 + len(str(wrap)) if wrap else 2), "|wordwrap")


_PRECHECKS: dict[str, Callable[..., None]] = {
    "replace": _check_replace,
    "center": _check_center,
    "indent": _check_indent,
    "wordwrap": _check_wordwrap,
}


def _guarded_filter(name: str, original: Callable[..., Any]) -> Callable[..., Any]:
    """`original` with its result bounded, and refused before it runs where its arguments
    alone say it would build too much (`join` sees its items first)."""
    passes_arg = hasattr(original, "jinja_pass_arg")
    precheck = _PRECHECKS.get(name)

    @functools.wraps(original)
    def guarded(*args: Any, **kwargs: Any) -> Any:
        _tick()
        lead, rest = (args[:1], list(args[1:])) if passes_arg else ((), list(args))
        if name == "join" and rest:
            rest[0] = _bounded(list(rest[0]), "|join")
            sep = _weight(rest[1] if len(rest) > 1 else kwargs.get("d", ""))
            _refuse_over(_weight(rest[0]) + max(len(rest[0]) - 1, 0) * sep, "|join")
        for arg in (*rest, *kwargs.values()):
            _bounded(arg, f"|{name}")
        if precheck is not None:
            precheck(*rest, **kwargs)
        return _bounded(original(*lead, *rest, **kwargs), f"|{name}")

    return guarded


@pass_context
def _loop_budget(context: Context, iterable: Any) -> Iterator[Any]:
    """Every `for` loop iterates through this: at most MAX_LOOP_ITERATIONS per render."""
    budget = _BUDGET.get() or _Budget()
    for item in iterable:
        budget.iterations += 1
        if budget.iterations > MAX_LOOP_ITERATIONS:
            raise SecurityError(f"loops ran more than {MAX_LOOP_ITERATIONS} iterations")
        budget.tick()
        yield item


@pass_context
def _concat(context: Context, parts: list[Any]) -> str:
    """`a ~ b ~ ...`, refused before it joins more than MAX_STRING characters."""
    _refuse_over(sum(_weight(part) for part in parts), "'~'")
    return "".join(str(part) for part in parts)


def _finalize(value: Any) -> Any:
    """Every `{{ ... }}` passes here before it is turned into text."""
    return _bounded(value, "'{{ }}'")


class _Sandbox(ImmutableSandboxedEnvironment):
    """The sandbox, with everything that can build a large value bounded."""

    intercepted_binops = frozenset({"*", "**", "%", "+"})

    def call_binop(self, context: Context, operator: str, left: Any, right: Any) -> Any:
        _tick()
        if operator == "*":
            for seq, times in ((left, right), (right, left)):
                if isinstance(seq, str | bytes | list | tuple) and isinstance(times, int):
                    _refuse_over(max(len(seq), _weight(seq)) * times, "'*'")
            if isinstance(left, int) and isinstance(right, int):
                if left.bit_length() + right.bit_length() > MAX_INT_BITS:
                    raise SecurityError(f"'*' would build an integer over {MAX_INT_BITS} bits")
        if operator == "**" and isinstance(right, int | float):
            if abs(right) > 64:
                raise SecurityError("'**' exponents above 64 are not allowed")
            if isinstance(left, int) and left.bit_length() * abs(right) > MAX_INT_BITS:
                raise SecurityError(f"'**' would build an integer over {MAX_INT_BITS} bits")
        if operator == "%" and isinstance(left, _TEXT):
            raise SecurityError("'%' string formatting is not allowed in a template")
        if operator == "+" and isinstance(left, str | bytes | list | tuple):
            _refuse_over(_weight(left) + _weight(right), "'+'")
        return super().call_binop(context, operator, left, right)

    def is_safe_attribute(self, obj: Any, attr: str, value: Any) -> bool:
        if isinstance(obj, _TEXT) and attr in _REFUSED_METHODS:
            return False
        return super().is_safe_attribute(obj, attr, value)

    def wrap_str_format(self, value: Any) -> Callable[..., str] | None:
        return None  # `.format` / `.format_map` are refused by is_safe_attribute

    def call(__self, __context: Context, __obj: Any, *args: Any, **kwargs: Any) -> Any:
        _tick()
        owner = getattr(__obj, "__self__", None)
        name = getattr(__obj, "__name__", "")
        if isinstance(owner, _TEXT):
            if name in _WIDTH_METHODS and args and isinstance(args[0], int):
                _refuse_over(args[0], f".{name}()")
            elif name == "replace" and len(args) >= 2:
                if isinstance(owner, str):
                    _refuse_over(_replaced_size(owner, *args[:3]), ".replace()")
                else:
                    _refuse_over(len(owner) * (1 + len(args[1])), ".replace()")
            elif name == "join" and args:
                items = _bounded(list(args[0]), ".join()")
                args = (items, *args[1:])
                _refuse_over(_weight(items) + max(len(items) - 1, 0) * len(owner), ".join()")
        for arg in (*args, *kwargs.values()):
            _bounded(arg, f".{name}()" if name else "a call")
        result = super().call(__context, __obj, *args, **kwargs)
        return _bounded(result, f".{name}()" if name else "a call")


def _environment() -> _Sandbox:
    env = _Sandbox(
        undefined=StrictUndefined,
        autoescape=False,
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=False,
    )
    env.globals.clear()
    env.filters = {
        name: _guarded_filter(name, original)
        for name, original in env.filters.items()
        if name in ALLOWED_FILTERS
    }
    env.filters[_LOOP_FILTER] = _loop_budget
    env.filters[_CONCAT_FILTER] = _concat
    env.finalize = _finalize
    return env


_ENV = _environment()


def _render_text(template: jinja2.Template, values: Mapping[str, str]) -> str:
    """Render, stopping as soon as the output passes MAX_RENDER_CHARS."""
    out: list[str] = []
    size = 0
    for chunk in template.generate(values):
        size += len(chunk)
        if size > MAX_RENDER_CHARS:
            raise SecurityError(f"the text renders to more than {MAX_RENDER_CHARS} characters")
        out.append(chunk)
    return "".join(out).strip()


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
        """Render one variant within the bounds above; `values` must come from `values()`."""
        token = _BUDGET.set(_Budget())
        try:
            return Rendered(
                system=_render_text(variant.system, values),
                few_shot=tuple(
                    (_render_text(user, values), _render_text(answer, values))
                    for user, answer in variant.few_shot
                ),
            )
        except (
            jinja2.TemplateError,  # SecurityError (a bound), UndefinedError, ...
            ArithmeticError,  # 1 / 0, a float overflow
            LookupError,
            TypeError,
            ValueError,
            RecursionError,
        ) as exc:
            raise TemplateError(
                f"template {self.spec.id!r} variant {variant.name!r} failed to render: {exc}"
            ) from exc
        finally:
            _BUDGET.reset(token)


def compile_template(spec: TemplateSpec) -> CompiledTemplate:
    """Compile every text of `spec`; TemplateSourceError lists every problem found."""
    problems: list[SourceProblem] = []
    declared = set(spec.variables)

    def text(source: str, path: tuple[str, ...]) -> jinja2.Template | None:
        ast, found = _check(source, path, declared)
        problems.extend(found)
        if ast is None or found:
            return None
        try:
            return _ENV.from_string(_instrument(ast))
        except jinja2.TemplateSyntaxError as exc:  # e.g. a filter that does not exist
            problems.append(SourceProblem(path, exc.lineno, f"Jinja2: {exc.message}"))
            return None

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


def _check(
    source: str, path: tuple[str, ...], declared: set[str]
) -> tuple[nodes.Template | None, list[SourceProblem]]:
    try:
        ast = _ENV.parse(source)
    except jinja2.TemplateSyntaxError as exc:
        return None, [SourceProblem(path, exc.lineno, f"Jinja2 syntax error: {exc.message}")]
    except RecursionError:
        return None, [SourceProblem(path, None, "nested too deeply")]
    problems = []
    for kind, what in _REFUSED_NODES.items():
        for node in ast.find_all(kind):
            problems.append(SourceProblem(path, node.lineno, f"{what} are not allowed"))
    for loop in ast.find_all(nodes.For):
        if loop.recursive:
            problems.append(SourceProblem(path, loop.lineno, "recursive loops are not allowed"))
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
    try:
        undeclared = meta.find_undeclared_variables(ast)
    except jinja2.TemplateSyntaxError as exc:  # e.g. a filter that does not exist
        return None, [*problems, SourceProblem(path, exc.lineno, f"Jinja2: {exc.message}")]
    for name in sorted(undeclared - declared):
        line = next((n.lineno for n in ast.find_all(nodes.Name) if n.name == name), None)
        problems.append(
            SourceProblem(path, line, f"variable {name!r} is not declared in `variables`")
        )
    return ast, problems


class _Instrument(NodeTransformer):
    """Routes every loop's iterable through the loop budget and every `~` through the
    bounded concatenation."""

    def visit_For(self, node: nodes.For) -> nodes.Node:
        self.generic_visit(node)
        node.iter = _filter(node.iter, _LOOP_FILTER, node.lineno)
        return node

    def visit_Concat(self, node: nodes.Concat) -> nodes.Node:
        self.generic_visit(node)
        return _filter(nodes.List(node.nodes, lineno=node.lineno), _CONCAT_FILTER, node.lineno)


def _filter(node: nodes.Node, name: str, lineno: int) -> nodes.Filter:
    wrapped = nodes.Filter(node, name, [], [], None, None, lineno=lineno)
    wrapped.set_environment(_ENV)
    return wrapped


def _instrument(ast: nodes.Template) -> nodes.Template:
    instrumented: nodes.Template = _Instrument().visit(ast)
    return instrumented


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

"""Where a key sits in a YAML document: error messages that name file, line and key.

`problems(exc, text, source)` turns a pydantic ValidationError raised on a parsed YAML
document into `"<source>:<line>: <key.path>: <problem>"` lines.
"""

from __future__ import annotations

import yaml
from pydantic import ValidationError

from gateway.yaml_load import CONFIG_BUDGET, YAMLBudget, YAMLBudgetError, compose


def problems(exc: ValidationError, text: str, source: str) -> list[str]:
    lines = line_index(text)
    out = []
    for error in exc.errors():
        loc = tuple(str(part) for part in error.get("ctx", {}).get("path", error["loc"]))
        message = error["msg"].removeprefix("Value error, ")
        if error["type"] == "extra_forbidden":
            message = f"unknown key {loc[-1]!r}"
        key = ".".join(loc) or "<top level>"
        out.append(f"{source}:{nearest_line(lines, loc)}: {key}: {message}")
    return out


def yaml_problem(exc: yaml.YAMLError, source: str) -> str:
    mark = getattr(exc, "problem_mark", None)
    where = f"{source}:{mark.line + 1}" if mark is not None else source
    if isinstance(exc, YAMLBudgetError):
        return f"{where}: refused: {exc.problem}"
    return f"{where}: invalid YAML: {getattr(exc, 'problem', None) or exc}"


def line_index(text: str, budget: YAMLBudget = CONFIG_BUDGET) -> dict[tuple[str, ...], int]:
    """Map each key path in the YAML document to its 1-based line (empty when the
    document is not YAML or over `budget`)."""
    try:
        root = compose(text, budget)
    except yaml.YAMLError:
        return {}
    index: dict[tuple[str, ...], int] = {}

    def walk(node: yaml.Node, path: tuple[str, ...]) -> None:
        index[path] = node.start_mark.line + 1
        if isinstance(node, yaml.MappingNode):
            for key_node, value_node in node.value:
                child = (*path, str(key_node.value))
                index[child] = key_node.start_mark.line + 1
                walk(value_node, child)
                index[child] = key_node.start_mark.line + 1
        elif isinstance(node, yaml.SequenceNode):
            for i, item in enumerate(node.value):
                walk(item, (*path, str(i)))

    if root is not None:
        walk(root, ())
    return index


def nearest_line(index: dict[tuple[str, ...], int], loc: tuple[str, ...]) -> int:
    for end in range(len(loc), -1, -1):
        if loc[:end] in index:
            return index[loc[:end]]
    return 1

"""Bounded YAML loading for every YAML document Flywheel reads (config, policies,
templates, admin uploads).

PyYAML's `SafeLoader` builds no objects it should not, but it still expands aliases:
700 bytes of nested `&a [*a, *a, ...]` describe 10^9 nodes, and whatever walks the
result (pydantic, the line index) walks every one of them. `BoundedLoader` counts while
it composes and refuses, with the line of the offending node, a document that has

- more bytes than `YAMLBudget.max_bytes`,
- more aliases (`*name`) than `max_aliases`,
- more nodes than `max_nodes`, counting each alias as the whole subtree it stands for
  (so the expanded size, not the text's size, is what is bounded),
- nesting deeper than `max_depth`, or an alias to a node that contains it (recursion).

Use `load(text, budget)` in place of `yaml.safe_load` and `compose(text, budget)` in
place of `yaml.compose`; both raise `yaml.YAMLError` (a `YAMLBudgetError` for a budget)
so callers report them as they report syntax errors.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import yaml
from yaml.error import Mark, MarkedYAMLError


@dataclass(frozen=True)
class YAMLBudget:
    max_bytes: int
    max_aliases: int = 64
    max_nodes: int = 50_000
    max_depth: int = 32


# Policies and templates: hand-written, a few KiB each (the examples in the repository
# are 0.4-2.6 KiB); admin uploads get the same budget.
POLICY_BUDGET = YAMLBudget(max_bytes=256 * 1024)
TEMPLATE_BUDGET = YAMLBudget(max_bytes=128 * 1024)
CONFIG_BUDGET = YAMLBudget(max_bytes=1024 * 1024, max_aliases=256, max_nodes=200_000)
VALUE_BUDGET = YAMLBudget(max_bytes=64 * 1024, max_aliases=0, max_nodes=10_000)


class YAMLBudgetError(MarkedYAMLError):  # type: ignore[misc]
    """The document is over a budget; `problem` says which, `problem_mark` where."""

    def __init__(self, problem: str, mark: Mark | None = None) -> None:
        super().__init__(problem=problem, problem_mark=mark)


class BoundedLoader(yaml.SafeLoader):  # type: ignore[misc]
    """`SafeLoader` that counts aliases, expanded nodes and depth while composing."""

    def __init__(self, stream: str, budget: YAMLBudget) -> None:
        super().__init__(stream)
        self._budget = budget
        self._aliases = 0
        self._depth = 0
        self._sizes: dict[int, int] = {}  # id(node) -> nodes it expands to

    def compose_node(self, parent: yaml.Node | None, index: Any) -> yaml.Node:
        budget = self._budget
        event = self.peek_event()
        mark = event.start_mark
        if isinstance(event, yaml.AliasEvent):
            target = self.anchors.get(event.anchor)
            if target is not None and id(target) not in self._sizes:
                raise YAMLBudgetError("an alias refers to a value that contains it", mark)
            self._aliases += 1
            if self._aliases > budget.max_aliases:
                raise YAMLBudgetError(
                    f"more than {budget.max_aliases} aliases (*name); aliases are "
                    "limited to keep loading bounded",
                    mark,
                )
        self._depth += 1
        try:
            if self._depth > budget.max_depth:
                raise YAMLBudgetError(f"nested deeper than {budget.max_depth} levels", mark)
            node: yaml.Node = super().compose_node(parent, index)
        finally:
            self._depth -= 1
        size = self._size_of(node, mark)
        if size > budget.max_nodes:
            raise YAMLBudgetError(
                f"expands to more than {budget.max_nodes} nodes (aliases count as the "
                "whole value they repeat)",
                mark,
            )
        return node

    def _size_of(self, node: yaml.Node, mark: Mark) -> int:
        known = self._sizes.get(id(node))
        if known is not None:
            return known
        if isinstance(node, yaml.ScalarNode):
            size = 1
        else:
            children = (
                [part for pair in node.value for part in pair]
                if isinstance(node, yaml.MappingNode)
                else node.value
            )
            size = 1
            for child in children:
                child_size = self._sizes.get(id(child))
                if child_size is None:  # an alias to a node still being composed
                    raise YAMLBudgetError("an alias refers to a value that contains it", mark)
                size += child_size
        self._sizes[id(node)] = size
        return size


def load(text: str, budget: YAMLBudget) -> Any:
    """`yaml.safe_load(text)` within `budget`; raises yaml.YAMLError."""
    loader = _loader(text, budget)
    try:
        return loader.get_single_data()
    finally:
        loader.dispose()


def compose(text: str, budget: YAMLBudget) -> yaml.Node | None:
    """`yaml.compose(text)` within `budget`; raises yaml.YAMLError."""
    loader = _loader(text, budget)
    try:
        node: yaml.Node | None = loader.get_single_node()
        return node
    finally:
        loader.dispose()


def _loader(text: str, budget: YAMLBudget) -> BoundedLoader:
    size = len(text.encode("utf-8", "surrogatepass"))
    if size > budget.max_bytes:
        raise YAMLBudgetError(f"the document is {size} bytes; at most {budget.max_bytes} allowed")
    return BoundedLoader(text, budget)

"""Trim OpenAI's published OpenAPI spec to what the gateway serves (the fuzzer's input).

Source: github.com/openai/openai-openapi (MIT, licence in openai-openapi.LICENSE), file
`openapi.json`. Kept: the operations below and every component they reference; removed:
descriptions, examples and documentation-only extensions. Run it to refresh the subset:

    python tests/data/trim_openapi.py path/to/openapi.json tests/data/openai-openapi-subset.json
"""

from __future__ import annotations

import json
import sys
from typing import Any

SERVED = {
    "/chat/completions": ["post"],
    "/completions": ["post"],
    "/embeddings": ["post"],
    "/responses": ["post"],
    "/models": ["get"],
}
DOC_ONLY = frozenset(
    {"description", "example", "examples", "summary", "title", "x-oaiMeta", "x-oaiExpandable",
     "x-oaiTypeLabel", "x-stainless-const"}
)  # fmt: skip


def refs(node: Any, found: set[str]) -> None:
    if isinstance(node, dict):
        for key, value in node.items():
            if key == "$ref" and isinstance(value, str):
                found.add(value)
            else:
                refs(value, found)
    elif isinstance(node, list):
        for value in node:
            refs(value, found)


def strip_docs(node: Any, parent: str | None = None) -> None:
    """Drop documentation keys, but never a property that happens to share their name."""
    if isinstance(node, dict):
        for key in list(node):
            if parent != "properties" and key in DOC_ONLY:
                del node[key]
            else:
                strip_docs(node[key], key)
    elif isinstance(node, list):
        for value in node:
            strip_docs(value, parent)


def trim(spec: dict[str, Any]) -> dict[str, Any]:
    paths = {path: {m: spec["paths"][path][m] for m in methods} for path, methods in SERVED.items()}
    components: dict[str, dict[str, Any]] = {}
    todo: set[str] = set()
    refs(paths, todo)
    seen: set[str] = set()
    while todo:
        ref = todo.pop()
        seen.add(ref)
        _, _, kind, name = ref.split("/", 3)
        value = spec["components"][kind][name]
        components.setdefault(kind, {})[name] = value
        found: set[str] = set()
        refs(value, found)
        todo |= found - seen
    components["securitySchemes"] = {"ApiKeyAuth": {"type": "http", "scheme": "bearer"}}
    out = {
        "openapi": spec["openapi"],
        "info": {k: v for k, v in spec["info"].items() if k in ("title", "version", "license")},
        "servers": [{"url": "/v1"}],
        "security": [{"ApiKeyAuth": []}],
        "paths": paths,
        "components": components,
    }
    strip_docs(out["paths"])
    strip_docs(out["components"])
    return out


if __name__ == "__main__":
    source, target = sys.argv[1], sys.argv[2]
    with open(source, encoding="utf-8") as f:
        trimmed = trim(json.load(f))
    with open(target, "w", encoding="utf-8") as f:
        json.dump(trimmed, f, separators=(",", ":"))

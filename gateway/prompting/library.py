"""Load `templates/*.yaml`, keep every valid version, reload on change.

A bad file (invalid, or over a limit: bytes, YAML aliases and nodes, texts, turns,
variants) is rejected with `"<file>:<line>: <key path>: <problem>"` and the last good
version of its template keeps serving; a removed file removes its template. Several
versions of one id may coexist (one file each); `get(id)` returns the highest. The
loaded set is one immutable snapshot swapped whole, so readers never see half a reload.
"""

from __future__ import annotations

import hashlib
import logging
import re
import threading
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from types import MappingProxyType
from typing import Any

import yaml
from pydantic import ValidationError

from gateway.logs import log_event
from gateway.prompting.model import TemplateSpec
from gateway.prompting.render import (
    CompiledTemplate,
    TemplateError,
    TemplateSourceError,
    compile_template,
)
from gateway.yaml_lines import line_index, nearest_line, problems, yaml_problem
from gateway.yaml_load import TEMPLATE_BUDGET, compose, load

log = logging.getLogger("flywheel.templates")


class TemplateLoadError(Exception):
    """A template file cannot be used; `problems` holds one `file:line: key: why` each."""

    def __init__(self, problems: list[str]) -> None:
        super().__init__("\n".join(problems))
        self.problems = problems


@dataclass(frozen=True)
class LoadedTemplate:
    compiled: CompiledTemplate
    source: str  # the file it came from
    digest: str  # of the file's text: an unchanged file is not parsed again
    line: int = 1  # the line of its `id` key

    @property
    def spec(self) -> TemplateSpec:
        return self.compiled.spec

    @property
    def id(self) -> str:
        return self.compiled.spec.id

    @property
    def version(self) -> str:
        return self.compiled.spec.version

    @property
    def ref(self) -> str:
        return f"{self.id}@{self.version}"

    def variable_problems(self, values: Mapping[str, str]) -> list[str]:
        """Why `values` (e.g. a policy's template_variables) would fail here; [] if fine."""
        try:
            self.compiled.values(values, strict=False)
        except TemplateError as exc:
            return [exc.message]
        return []


def parse_template(text: str, source: str) -> LoadedTemplate:
    """Parse, validate and compile one template file's text."""
    try:
        raw = load(text, TEMPLATE_BUDGET)
    except yaml.YAMLError as exc:
        raise TemplateLoadError([yaml_problem(exc, source)]) from None
    if not isinstance(raw, dict):
        raise TemplateLoadError([f"{source}:1: <top level>: a template must be a mapping"])
    try:
        spec = TemplateSpec.model_validate(raw)
    except ValidationError as exc:
        raise TemplateLoadError(problems(exc, text, source)) from None
    lines = line_index(text, TEMPLATE_BUDGET)
    try:
        compiled = compile_template(spec)
    except TemplateSourceError as exc:
        raise TemplateLoadError(
            [
                f"{source}:{_text_line(text, lines, p.path, p.line)}: "
                f"{'.'.join(p.path)}: {p.message}"
                for p in exc.problems
            ]
        ) from None
    digest = hashlib.blake2b(text.encode(), digest_size=16).hexdigest()
    return LoadedTemplate(compiled, source, digest, lines.get(("id",), 1))


@dataclass(frozen=True)
class _Snapshot:
    by_ref: Mapping[tuple[str, str], LoadedTemplate]
    latest: Mapping[str, LoadedTemplate]


class TemplateLibrary:
    def __init__(self, directory: Path | None = None) -> None:
        self.directory = directory
        self.errors: list[str] = []
        self._by_file: dict[str, LoadedTemplate] = {}
        self._snapshot = _Snapshot(MappingProxyType({}), MappingProxyType({}))
        self._lock = threading.Lock()

    @classmethod
    def load_dir(cls, directory: str | Path) -> TemplateLibrary:
        """A library over `directory`, loaded once (problems are in `.errors`)."""
        library = cls(Path(directory))
        library.reload()
        return library

    def get(self, template_id: str, version: str | None = None) -> LoadedTemplate | None:
        snapshot = self._snapshot
        if version is None:
            return snapshot.latest.get(template_id)
        return snapshot.by_ref.get((template_id, version))

    def all(self) -> Mapping[tuple[str, str], LoadedTemplate]:
        return self._snapshot.by_ref

    def describe(self) -> list[dict[str, Any]]:
        """What is serving, for the admin API."""
        latest = self._snapshot.latest
        return [
            {
                "id": t.id,
                "version": t.version,
                "latest": latest.get(t.id) is t,
                "description": t.spec.description,
                "locked": t.spec.locked,
                "max_tokens": t.spec.max_tokens,
                "variables": sorted(t.spec.variables),
                "variants": {v.name: round(v.weight, 6) for v in t.compiled.variants},
                "source": t.source,
            }
            for _, t in sorted(self._snapshot.by_ref.items())
        ]

    def load_text(self, name: str, text: str) -> LoadedTemplate:
        """Validate a template as if it were the file `name`, without serving it."""
        loaded = parse_template(text, name)
        other = self._snapshot.by_ref.get((loaded.id, loaded.version))
        if other is not None and Path(other.source).name != Path(name).name:
            raise TemplateLoadError(
                [f"{name}:{loaded.line}: id: {loaded.ref} is already defined in {other.source}"]
            )
        return loaded

    def reload(self) -> list[str]:
        """Re-read the directory; return the problems found (the last good versions stay)."""
        with self._lock:
            errors = self._read_files()
            errors += self._publish()
            self.errors = errors
        for problem in errors:
            log_event(
                log,
                "template rejected: last good version keeps serving",
                logging.WARNING,
                problem=problem,
            )
        return errors

    def _read_files(self) -> list[str]:
        directory = self.directory
        files = sorted(directory.glob("*.yaml")) if directory and directory.is_dir() else []
        errors: list[str] = []
        for path in files:
            key = str(path)
            try:
                size = path.stat().st_size
                if size > TEMPLATE_BUDGET.max_bytes:
                    errors.append(
                        f"{key}: refused: the file is {size} bytes; at most "
                        f"{TEMPLATE_BUDGET.max_bytes} allowed"
                    )
                    continue
                text = path.read_text("utf-8")
            except (OSError, UnicodeDecodeError) as exc:
                errors.append(f"{key}:1: <file>: cannot read: {exc}")
                continue
            previous = self._by_file.get(key)
            digest = hashlib.blake2b(text.encode(), digest_size=16).hexdigest()
            if previous is not None and previous.digest == digest:
                continue
            try:
                self._by_file[key] = parse_template(text, key)
            except TemplateLoadError as exc:
                errors += exc.problems
                continue
            log_event(log, "template loaded", template=self._by_file[key].ref, file=key)
        for key in set(self._by_file) - {str(path) for path in files}:
            log_event(log, "template removed", template=self._by_file[key].ref, file=key)
            del self._by_file[key]
        return errors

    def _publish(self) -> list[str]:
        """Swap in a new snapshot; a duplicate id+version loses to the one serving now."""
        serving = self._snapshot.by_ref

        def incumbent_first(item: tuple[str, LoadedTemplate]) -> tuple[bool, str]:
            current = serving.get((item[1].id, item[1].version))
            return current is None or current.source != item[0], item[0]

        errors: list[str] = []
        by_ref: dict[tuple[str, str], LoadedTemplate] = {}
        for source, loaded in sorted(self._by_file.items(), key=incumbent_first):
            key = (loaded.id, loaded.version)
            if key in by_ref:
                errors.append(
                    f"{source}:{loaded.line}: id: {loaded.ref} is already defined "
                    f"in {by_ref[key].source}"
                )
                continue
            by_ref[key] = loaded
        latest: dict[str, LoadedTemplate] = {}
        for loaded in by_ref.values():
            best = latest.get(loaded.id)
            if best is None or _version_key(loaded.version, best.version) > _version_key(
                best.version, loaded.version
            ):
                latest[loaded.id] = loaded
        self._snapshot = _Snapshot(
            MappingProxyType(dict(sorted(by_ref.items()))), MappingProxyType(latest)
        )
        return errors


_NUMERIC = re.compile(r"^\d+(\.\d+)*$")


def _version_key(version: str, other: str) -> tuple[Any, ...]:
    """Order two versions numerically when both are numeric ("10" > "9"), else lexically."""
    if _NUMERIC.match(version) and _NUMERIC.match(other):
        return (0, tuple(int(part) for part in version.split(".")))
    return (1, version)


def _text_line(
    text: str, lines: dict[tuple[str, ...], int], path: tuple[str, ...], inner: int | None
) -> int:
    """The file line of line `inner` inside the Jinja2 text at `path`."""
    key_line = nearest_line(lines, path)
    if inner is None:
        return key_line
    node = _node_at(text, path)
    if not isinstance(node, yaml.ScalarNode):
        return key_line
    first: int = node.start_mark.line + (2 if node.style in ("|", ">") else 1)
    return first + inner - 1


def _node_at(text: str, path: tuple[str, ...]) -> yaml.Node | None:
    try:
        node = compose(text, TEMPLATE_BUDGET)
    except yaml.YAMLError:
        return None
    for part in path:
        if isinstance(node, yaml.MappingNode):
            node = next((v for k, v in node.value if str(k.value) == part), None)
        elif isinstance(node, yaml.SequenceNode) and part.isdigit() and int(part) < len(node.value):
            node = node.value[int(part)]
        else:
            return None
    return node

"""Read `flywheel.yaml`, apply `FLYWHEEL_*` overrides, validate, and explain failures.

A broken file fails at start with one message naming the file, the line, the key
and the problem, e.g.::

    flywheel.yaml:12: models.fast.cost_per_mtok.input: Input should be greater than or equal to 0

Overrides: `FLYWHEEL_<SECTION>__<KEY>__...=<yaml scalar>` sets a nested key
(`FLYWHEEL_SERVER__PORT=9000`, `FLYWHEEL_STORE=redis://...`). Only variables whose
first segment names a top-level section are read, so secrets such as
`FLYWHEEL_ADMIN_KEY` (referenced by name from the file) are never mistaken for one.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from importlib import resources
from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError

from gateway.config import FlywheelConfig
from gateway.yaml_lines import line_index as _line_index
from gateway.yaml_lines import nearest_line as _nearest_line
from gateway.yaml_lines import yaml_problem
from gateway.yaml_load import CONFIG_BUDGET, VALUE_BUDGET, load

ENV_PREFIX = "FLYWHEEL_"
DEFAULT_CONFIG_NAME = "embedded defaults (gateway/defaults/flywheel.yaml)"


class ConfigError(Exception):
    """The config cannot be used; the message says where and why."""


def load_config(path: str | Path | None, env: Mapping[str, str] | None = None) -> FlywheelConfig:
    """Load `path` (or the embedded defaults when None) with env overrides applied."""
    env = os.environ if env is None else env
    if path is None:
        text = resources.files("gateway.defaults").joinpath("flywheel.yaml").read_text("utf-8")
        source = DEFAULT_CONFIG_NAME
    else:
        source = str(path)
        try:
            text = Path(path).read_text("utf-8")
        except OSError as exc:
            raise ConfigError(f"{source}: cannot read config: {exc.strerror or exc}") from exc
        except UnicodeDecodeError as exc:
            raise ConfigError(f"{source}: not UTF-8 text ({exc.reason})") from exc
    return parse_config(text, source, env)


def parse_config(text: str, source: str, env: Mapping[str, str]) -> FlywheelConfig:
    try:
        raw = load(text, CONFIG_BUDGET) or {}
    except yaml.YAMLError as exc:
        raise ConfigError(yaml_problem(exc, source)) from exc
    if not isinstance(raw, dict):
        raise ConfigError(f"{source}: the top level must be a mapping, got {type(raw).__name__}")
    overridden = apply_env_overrides(raw, env)
    try:
        return FlywheelConfig.model_validate(raw)
    except ValidationError as exc:
        raise ConfigError(_explain(exc, text, source, overridden)) from exc


def apply_env_overrides(raw: dict[str, Any], env: Mapping[str, str]) -> set[tuple[str, ...]]:
    """Set nested keys from FLYWHEEL_* variables in place; return the paths set."""
    sections = set(FlywheelConfig.model_fields)
    applied: set[tuple[str, ...]] = set()
    for name in sorted(env):
        if not name.startswith(ENV_PREFIX):
            continue
        path = tuple(part.lower() for part in name[len(ENV_PREFIX) :].split("__"))
        if path[0] not in sections or not all(path):
            continue
        try:
            value = load(env[name], VALUE_BUDGET)
        except yaml.YAMLError as exc:
            raise ConfigError(f"environment {name}: not a YAML value: {exc}") from exc
        node = raw
        for part in path[:-1]:
            child = node.get(part)
            if not isinstance(child, dict):
                child = node[part] = {}
            node = child
        node[path[-1]] = value
        applied.add(path)
    return applied


def _explain(exc: ValidationError, text: str, source: str, overridden: set[tuple[str, ...]]) -> str:
    lines = _line_index(text)
    problems = []
    for error in exc.errors():
        loc = tuple(str(part) for part in error.get("ctx", {}).get("path", error["loc"]))
        message = error["msg"].removeprefix("Value error, ")
        key = ".".join(loc)
        if error["type"] == "extra_forbidden":
            message = f"unknown key {loc[-1]!r}"
        if any(loc[: len(path)] == path for path in overridden):
            where = f"{source} (overridden by {ENV_PREFIX}{'__'.join(loc).upper()})"
        else:
            where = f"{source}:{_nearest_line(lines, loc)}" if lines else source
        problems.append(f"{where}: {key or '<top level>'}: {message}")
    return "invalid config\n  " + "\n  ".join(problems)

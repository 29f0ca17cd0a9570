"""Load `policies/<tenant>.yaml`, validate them against the model catalog, reload them.

A bad file is rejected with `"<file>:<line>: <key>: <problem>"` and the last good
version of that tenant's policy keeps serving; a removed file removes the policy. The
loaded policies are an immutable mapping swapped whole, so readers never see half a
reload.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from types import MappingProxyType

import yaml
from pydantic import ValidationError

from gateway.logs import log_event
from gateway.policy.model import Policy
from gateway.yaml_lines import line_index, nearest_line, problems, yaml_problem

log = logging.getLogger("flywheel.policy")

# (policy, its source text) -> problems that need the rest of the system (models, templates)
Checker = Callable[[Policy], list[tuple[tuple[str, ...], str]]]


@dataclass(frozen=True)
class LoadedPolicy:
    policy: Policy
    source: str  # file path, or "admin:<name>" for one posted through the admin API
    mtime_ns: int


class PolicyError(Exception):
    def __init__(self, problems: list[str]) -> None:
        super().__init__("\n".join(problems))
        self.problems = problems


def parse_policy(text: str, source: str, check: Checker | None = None) -> Policy:
    """Parse and validate one policy file's text; PolicyError names file, line and key."""
    try:
        raw = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise PolicyError([yaml_problem(exc, source)]) from None
    if not isinstance(raw, dict):
        raise PolicyError([f"{source}:1: the policy must be a mapping"])
    try:
        policy = Policy.model_validate(raw)
    except ValidationError as exc:
        raise PolicyError(problems(exc, text, source)) from None
    if check is not None:
        found = check(policy)
        if found:
            lines = line_index(text)
            raise PolicyError(
                [
                    f"{source}:{nearest_line(lines, path)}: {'.'.join(path)}: {problem}"
                    for path, problem in found
                ]
            )
    return policy


class PolicyLibrary:
    def __init__(self, directory: Path | None, check: Checker | None = None) -> None:
        self.directory = directory
        self._check = check
        self._by_tenant: Mapping[str, LoadedPolicy] = MappingProxyType({})
        self._by_file: dict[str, LoadedPolicy] = {}
        self.errors: list[str] = []

    def get(self, tenant: str) -> Policy | None:
        loaded = self._by_tenant.get(tenant)
        return loaded.policy if loaded is not None else None

    def all(self) -> Mapping[str, LoadedPolicy]:
        return self._by_tenant

    def reload(self) -> list[str]:
        """Re-read changed files; return the problems found (the old versions stay)."""
        errors: list[str] = []
        files = sorted(self.directory.glob("*.yaml")) if self.directory else []
        seen: set[str] = set()
        for path in files:
            key = str(path)
            seen.add(key)
            try:
                mtime = path.stat().st_mtime_ns
                previous = self._by_file.get(key)
                if previous is not None and previous.mtime_ns == mtime:
                    continue
                policy = parse_policy(path.read_text("utf-8"), key, self._check)
            except PolicyError as exc:
                errors += exc.problems
                continue
            except (OSError, UnicodeDecodeError) as exc:
                errors.append(f"{key}: cannot read: {exc}")
                continue
            if policy.tenant != path.stem:
                errors.append(
                    f"{key}:1: tenant: {policy.tenant!r} must match the file name "
                    f"({path.stem}.yaml)"
                )
                continue
            self._by_file[key] = LoadedPolicy(policy, key, mtime)
            log_event(log, "policy loaded", tenant=policy.tenant, version=policy.version, file=key)
        for key in set(self._by_file) - seen:
            if not key.startswith("admin:"):
                log_event(log, "policy removed", file=key)
                del self._by_file[key]
        self._by_tenant = MappingProxyType(
            {loaded.policy.tenant: loaded for loaded in self._by_file.values()}
        )
        self.errors = errors
        for problem in errors:
            log_event(
                log,
                "policy rejected: last good version keeps serving",
                logging.WARNING,
                problem=problem,
            )
        return errors

    def put(self, text: str, name: str) -> Policy:
        """A policy posted through the admin API (validated the same way), kept in memory."""
        source = f"admin:{name}"
        policy = parse_policy(text, source, self._check)
        self._by_file[source] = LoadedPolicy(policy, source, 0)
        self._by_tenant = MappingProxyType(
            {loaded.policy.tenant: loaded for loaded in self._by_file.values()}
        )
        return policy

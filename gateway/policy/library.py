"""Load `policies/<tenant>.yaml`, validate them against the model catalog, reload them.

A bad file is rejected with `"<file>:<line>: <key>: <problem>"` and the last good
version of that tenant's policy keeps serving; a removed file removes the policy. The
loaded policies are an immutable mapping swapped whole, so readers never see half a
reload. Reading is bounded (`gateway.yaml_load.POLICY_BUDGET`: size, aliases, nodes)
and so is the policy itself (`gateway.policy.model`: rules, intents, examples); both
`reload` and `put` block, so the gateway runs them in a thread.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from types import MappingProxyType

import yaml
from pydantic import ValidationError

from gateway.logs import log_event
from gateway.policy.model import Policy
from gateway.yaml_lines import line_index, nearest_line, problems, yaml_problem
from gateway.yaml_load import POLICY_BUDGET, load

log = logging.getLogger("flywheel.policy")

# (policy, its source text) -> problems that need the rest of the system (models, templates)
Checker = Callable[[Policy], list[tuple[tuple[str, ...], str]]]
# Work a policy needs before it serves (learning its intents), done by whoever reloads,
# off the event loop, so the first request after a reload does not do it.
Prepare = Callable[[Policy], None]


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
        raw = load(text, POLICY_BUDGET)
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
            lines = line_index(text, POLICY_BUDGET)
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
        self._lock = threading.Lock()  # reload (file watcher) and put (admin) in threads
        self.errors: list[str] = []

    def get(self, tenant: str) -> Policy | None:
        loaded = self._by_tenant.get(tenant)
        return loaded.policy if loaded is not None else None

    def all(self) -> Mapping[str, LoadedPolicy]:
        return self._by_tenant

    def reload(self, prepare: Prepare | None = None) -> list[str]:
        """Re-read changed files, `prepare` each changed policy, then publish; return the
        problems found (the old versions stay)."""
        with self._lock:
            errors = self._reload(prepare)
        for problem in errors:
            log_event(
                log,
                "policy rejected: last good version keeps serving",
                logging.WARNING,
                problem=problem,
            )
        return errors

    def _reload(self, prepare: Prepare | None) -> list[str]:
        errors: list[str] = []
        files = sorted(self.directory.glob("*.yaml")) if self.directory else []
        seen: set[str] = set()
        for path in files:
            key = str(path)
            seen.add(key)
            try:
                stat = path.stat()
                mtime = stat.st_mtime_ns
                previous = self._by_file.get(key)
                if previous is not None and previous.mtime_ns == mtime:
                    continue
                if stat.st_size > POLICY_BUDGET.max_bytes:
                    raise PolicyError(
                        [f"{key}: refused: the file is {stat.st_size} bytes; at most "
                         f"{POLICY_BUDGET.max_bytes} allowed"]
                    )  # fmt: skip
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
            if prepare is not None:
                prepare(policy)
            self._by_file[key] = LoadedPolicy(policy, key, mtime)
            log_event(log, "policy loaded", tenant=policy.tenant, version=policy.version, file=key)
        for key in set(self._by_file) - seen:
            if not key.startswith("admin:"):
                log_event(log, "policy removed", file=key)
                del self._by_file[key]
        self._publish()
        self.errors = errors
        return errors

    def parse(self, text: str, tenant: str) -> Policy:
        """Validate a policy posted for `tenant` completely, without installing it:
        syntax, budgets, schema, references (the checker) and that it is for `tenant`."""
        source = f"admin:{tenant}"
        policy = parse_policy(text, source, self._check)
        if policy.tenant != tenant:
            line = line_index(text, POLICY_BUDGET).get(("tenant",), 1)
            raise PolicyError(
                [f"{source}:{line}: tenant: the policy is for {policy.tenant!r}, not {tenant!r}"]
            )
        return policy

    def install(self, policy: Policy) -> LoadedPolicy | None:
        """Serve a policy `parse` accepted, in memory; returns the one it replaces."""
        source = f"admin:{policy.tenant}"
        with self._lock:
            previous = self._by_tenant.get(policy.tenant)
            self._by_file[source] = LoadedPolicy(policy, source, 0)
            self._publish()
        log_event(log, "policy installed", tenant=policy.tenant, version=policy.version)
        return previous

    def put(self, text: str, tenant: str) -> Policy:
        """`parse` then `install`: nothing is installed unless all of it is valid."""
        policy = self.parse(text, tenant)
        self.install(policy)
        return policy

    def _publish(self) -> None:
        # An admin upload wins over the tenant's file for the life of the process.
        by_tenant: dict[str, LoadedPolicy] = {}
        for loaded in self._by_file.values():
            current = by_tenant.get(loaded.policy.tenant)
            if current is None or not current.source.startswith("admin:"):
                by_tenant[loaded.policy.tenant] = loaded
        self._by_tenant = MappingProxyType(by_tenant)

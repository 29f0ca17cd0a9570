"""Hot reload: re-read policies and templates when their files change.

watchfiles (inotify) notices edits at once; a bad file is rejected with file, line and
problem and the last good version keeps serving (see PolicyLibrary / TemplateLibrary).
Reading, validating and compiling (templates, a policy's intents) run in a worker
thread, never on the event loop, so a large policy does not pause serving; a changed
policy's intents are learned before it is published.
"""

from __future__ import annotations

import asyncio
import logging
from pathlib import Path
from typing import TYPE_CHECKING

from watchfiles import awatch

from gateway.logs import log_event
from gateway.policy.library import PolicyLibrary, Prepare
from gateway.policy.model import Policy
from gateway.prompting import TemplateLibrary

if TYPE_CHECKING:
    from gateway.policy.router import Router

log = logging.getLogger("flywheel.policy")


def reload_all(
    policies: PolicyLibrary, templates: TemplateLibrary, prepare: Prepare | None = None
) -> list[str]:
    """Templates first (policies are checked against them); returns every problem.
    Blocking: call it in a thread (`reload_router`) once the gateway serves."""
    return [*templates.reload(), *policies.reload(prepare)]


def prepare_for(router: Router) -> Prepare:
    """Learn a policy's own intents (cached by the classifier) before it serves."""

    def prepare(policy: Policy) -> None:
        if policy.intents:
            router.classifier.for_tenant(policy.intents)

    return prepare


async def reload_router(router: Router) -> list[str]:
    """Reload policies and templates in a worker thread; returns every problem."""
    return await asyncio.to_thread(
        reload_all, router.policies, router.templates, prepare_for(router)
    )


async def watch(directories: list[Path], router: Router) -> None:
    existing = [str(d) for d in directories if d.is_dir()]
    if not existing:
        return
    async for changes in awatch(*existing, debounce=200, step=50):
        log_event(log, "policy/template files changed", files=sorted({p for _, p in changes}))
        await reload_router(router)

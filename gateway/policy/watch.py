"""Hot reload: re-read policies and templates when their files change.

watchfiles (inotify) notices edits at once; a bad file is rejected with file, line and
problem and the last good version keeps serving (see PolicyLibrary / TemplateLibrary).
"""

from __future__ import annotations

import asyncio
import logging
from pathlib import Path
from typing import TYPE_CHECKING

from watchfiles import awatch

from gateway.logs import log_event
from gateway.policy.library import PolicyLibrary
from gateway.prompting import TemplateLibrary

if TYPE_CHECKING:
    from gateway.policy.router import Router

log = logging.getLogger("flywheel.policy")


def reload_all(policies: PolicyLibrary, templates: TemplateLibrary) -> list[str]:
    """Templates first (policies are checked against them); returns every problem."""
    return [*templates.reload(), *policies.reload()]


async def watch(directories: list[Path], router: Router) -> None:
    existing = [str(d) for d in directories if d.is_dir()]
    if not existing:
        return
    async for changes in awatch(*existing, debounce=200, step=50):
        log_event(log, "policy/template files changed", files=sorted({p for _, p in changes}))
        reload_all(router.policies, router.templates)
        await asyncio.to_thread(router.warm)

"""Worker processes for CPU-heavy work on the request path, with a deadline and a fair
share per tenant.

Scanning text in pure Python (regular expressions, gazetteer look-ups) holds the GIL, so a
thread would still stall the event loop; the work runs in `spawn`ed worker processes
instead (not forked: the gateway process has threads). A tenant runs at most `share` jobs
at once (by default all workers but one, so a single tenant never holds every worker); its
further jobs wait on the event loop, not in the pool's queue. A job not done by its
deadline raises `OffloadTimeout` at once; a job still queued is cancelled, one already
running is left to finish (callers bound its size) and keeps its tenant's slot until then,
so abandoned work cannot pile up in the pool.
"""

from __future__ import annotations

import asyncio
import logging
import multiprocessing
from collections.abc import Callable
from concurrent.futures import Future, ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from typing import ParamSpec, TypeVar

log = logging.getLogger("flywheel.offload")

P = ParamSpec("P")
T = TypeVar("T")


class OffloadTimeout(Exception):
    """The job did not finish (or start) before its deadline."""


class OffloadBroken(Exception):
    """A worker process died (killed, out of memory); the pool is rebuilt for the next job."""


class Offload:
    def __init__(self, workers: int, share: int | None = None) -> None:
        self.workers = workers
        self.share = share if share is not None else max(1, workers - 1)
        self._pool: ProcessPoolExecutor | None = None
        self._slots: dict[str, asyncio.Semaphore] = {}

    def _executor(self) -> ProcessPoolExecutor:
        if self._pool is None:  # workers start on first use, not with every gateway
            context = multiprocessing.get_context("spawn")
            self._pool = ProcessPoolExecutor(self.workers, mp_context=context)
        return self._pool

    async def run(
        self, tenant: str, deadline: float, fn: Callable[P, T], *args: P.args, **kwargs: P.kwargs
    ) -> T:
        """`fn(*args)` in a worker; `deadline` is in the event loop's clock (`loop.time()`)."""
        loop = asyncio.get_running_loop()
        slot = self._slots.get(tenant)
        if slot is None:
            slot = self._slots[tenant] = asyncio.Semaphore(self.share)
        try:
            async with asyncio.timeout_at(deadline):
                await slot.acquire()
        except TimeoutError:
            raise OffloadTimeout from None
        try:
            future: Future[T] = self._executor().submit(fn, *args, **kwargs)
        except BrokenProcessPool as exc:
            slot.release()
            self._rebuild()
            raise OffloadBroken from exc
        except BaseException:
            slot.release()
            raise
        future.add_done_callback(lambda _: _release_soon(loop, slot))
        try:
            async with asyncio.timeout_at(deadline):
                return await asyncio.shield(asyncio.wrap_future(future))
        except TimeoutError:
            future.cancel()  # only takes effect while it waits in the pool's queue
            raise OffloadTimeout from None
        except asyncio.CancelledError:  # the client went away
            future.cancel()
            raise
        except BrokenProcessPool as exc:
            self._rebuild()
            raise OffloadBroken from exc

    def _rebuild(self) -> None:
        pool, self._pool = self._pool, None
        if pool is not None:
            log.warning("worker pool broken; starting a new one")
            pool.shutdown(wait=False, cancel_futures=True)

    def close(self) -> None:
        if self._pool is not None:
            self._pool.shutdown(wait=False, cancel_futures=True)
            self._pool = None


def _release_soon(loop: asyncio.AbstractEventLoop, slot: asyncio.Semaphore) -> None:
    """Give the tenant's slot back from the pool's thread (on the loop's own thread)."""
    try:
        loop.call_soon_threadsafe(slot.release)
    except RuntimeError:  # the loop is closed: the gateway is shutting down
        pass

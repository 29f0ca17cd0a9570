"""Cancel work the client no longer waits for.

While a non-stream request (or a stream before its first chunk) waits for its upstream,
nothing reads the client's socket; `until_disconnect` watches the ASGI receive channel
for `http.disconnect` meanwhile and cancels the work when it comes, so an abandoned call
stops (its upstream connection closes) instead of running, and being billed, to the end.
"""

from __future__ import annotations

import asyncio
from collections.abc import Coroutine
from typing import Any, TypeVar

from starlette.types import Receive

from gateway.errors import ClientDisconnected

T = TypeVar("T")


async def until_disconnect(work: Coroutine[Any, Any, T], receive: Receive | None) -> T:
    """`await work`, unless the client disconnects first: then the work is cancelled
    (and has unwound) and `ClientDisconnected` is raised. Call it once the request's body
    has been read: every message after that is the disconnect.

    The work runs in the caller's task (no extra task on the hot path); one watcher task
    waits on `receive` and cancels the caller's task when the client goes."""
    task = asyncio.current_task()
    if receive is None or task is None:
        return await work
    watch = _Watch(receive, task)
    watcher = asyncio.ensure_future(watch.run())
    try:
        result = await work
    except BaseException:
        if not watch.gone:
            raise
        task.uncancel()
        raise ClientDisconnected("The client disconnected before the answer was ready") from None
    finally:
        watcher.cancel()
    if watch.gone:  # the work finished anyway (it absorbed the cancellation)
        task.uncancel()
    return result


class _Watch:
    def __init__(self, receive: Receive, task: asyncio.Task[Any]) -> None:
        self._receive = receive
        self._task = task
        self.gone = False

    async def run(self) -> None:
        while (await self._receive())["type"] != "http.disconnect":
            pass
        self.gone = True
        self._task.cancel()

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
    has been read: every message after that is the disconnect."""
    if receive is None:
        return await work
    job = asyncio.ensure_future(work)
    watcher = asyncio.ensure_future(_disconnected(receive))
    try:
        await asyncio.wait((job, watcher), return_when=asyncio.FIRST_COMPLETED)
    except asyncio.CancelledError:
        job.cancel()
        watcher.cancel()
        raise
    if job.done():
        watcher.cancel()
        return job.result()
    job.cancel()
    await asyncio.wait((job,))  # let it unwind: close the upstream connection, release
    if not job.cancelled() and job.exception() is None:
        return job.result()  # it finished before the cancel landed: keep the answer
    raise ClientDisconnected("The client disconnected before the answer was ready")


async def _disconnected(receive: Receive) -> None:
    while (await receive())["type"] != "http.disconnect":
        pass

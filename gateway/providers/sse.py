"""Split a byte stream into whole SSE events without holding any back."""

from __future__ import annotations

from collections.abc import AsyncIterable, AsyncIterator


async def iter_event_batches(chunks: AsyncIterable[bytes]) -> AsyncIterator[list[bytes]]:
    """Yield the complete events (each ending in a blank line) of every read as soon as
    that read arrives: one batch per read, so events that came together leave together
    (one write downstream) and none waits for a later read."""
    pending = b""
    async for chunk in chunks:
        pending += chunk
        batch = []
        while True:
            cut, width = _find_separator(pending)
            if cut < 0:
                break
            event, pending = pending[: cut + width], pending[cut + width :]
            if event.strip():
                batch.append(event if width == 2 else event.replace(b"\r\n", b"\n"))
        if batch:
            yield batch
    if pending.strip():
        yield [pending.rstrip(b"\r\n") + b"\n\n"]


def _find_separator(buffer: bytes) -> tuple[int, int]:
    lf = buffer.find(b"\n\n")
    crlf = buffer.find(b"\r\n\r\n")
    if crlf >= 0 and (lf < 0 or crlf < lf):
        return crlf, 4
    return lf, 2


def event_data(event: bytes) -> bytes | None:
    """The payload of an event's `data:` line(s), or None for a comment/other event."""
    data = [line[5:].lstrip(b" ") for line in event.split(b"\n") if line.startswith(b"data:")]
    if not data:
        return None
    return b"\n".join(data)

"""Feedback that arrived while the store was down, kept until it comes back.

`POST /v1/feedback` writes to the store at once; when the store is unreachable it hands
the record here (the client gets 202 with `"status": "buffered"`), and the event log's
flush loop writes what is buffered after its events, so feedback lands after the event
it rates when both waited. The buffer is bounded by count and by bytes: when it is full
the route answers 503 with Retry-After rather than losing a record silently. What is
buffered survives SIGTERM (flushed at close while the store answers) but not SIGKILL.
"""

from __future__ import annotations

import logging
from collections import deque
from dataclasses import dataclass

from gateway.events import Feedback
from gateway.logs import log_event
from gateway.store.base import Store, StoreUnavailable

log = logging.getLogger("flywheel.feedback")


@dataclass(frozen=True)
class FeedbackBufferSettings:
    max_records: int = 1000
    max_bytes: int = 8 * 1024 * 1024


class FeedbackBuffer:
    def __init__(self, settings: FeedbackBufferSettings) -> None:
        self._settings = settings
        self._records: deque[tuple[Feedback, int]] = deque()
        self._bytes = 0
        self.written = 0
        self.refused = 0  # another tenant's request by the time it was written: dropped

    def __len__(self) -> int:
        return len(self._records)

    def offer(self, feedback: Feedback) -> bool:
        """Keep `feedback` for later; False (nothing kept) when the buffer is full."""
        size = len(feedback.text or "") + 256  # the record's rough size in memory
        if (
            len(self._records) >= self._settings.max_records
            or self._bytes + size > self._settings.max_bytes
        ):
            return False
        self._records.append((feedback, size))
        self._bytes += size
        return True

    async def flush(self, store: Store) -> bool:
        """Write what is buffered, oldest first; False when the store failed (the rest
        stays buffered, the failed record included)."""
        while self._records:
            feedback, size = self._records[0]
            try:
                status = await store.put_feedback(feedback)
            except StoreUnavailable as exc:
                log_event(
                    log,
                    "buffered feedback flush failed",
                    logging.WARNING,
                    error=str(exc),
                    pending=len(self._records),
                )
                return False
            self._records.popleft()
            self._bytes -= size
            if status == "refused":
                self.refused += 1
                log_event(
                    log,
                    "buffered feedback refused",
                    logging.WARNING,
                    request_id=feedback.request_id,
                    tenant=feedback.tenant,
                )
            else:
                self.written += 1
        return True

"""Structured logs: one JSON line per event, written off the event loop.

`log_event(logger, "request", request_id=..., ...)` emits
`{"ts": ..., "level": "info", "logger": ..., "event": "request", "request_id": ...}`.
A QueueHandler hands records to a listener thread, so a slow stderr never blocks a
request.
"""

from __future__ import annotations

import atexit
import logging
import logging.handlers
import queue
import sys
import time
from typing import Any

import orjson

_listener: logging.handlers.QueueListener | None = None


class JSONFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        line: dict[str, Any] = {
            "ts": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created))
            + f".{int(record.msecs):03d}Z",
            "level": record.levelname.lower(),
            "logger": record.name,
            "event": record.getMessage(),
        }
        fields = getattr(record, "fields", None)
        if fields:
            line.update(fields)
        if record.exc_info:
            line["exception"] = self.formatException(record.exc_info)
        return orjson.dumps(line, default=str).decode()


def log_event(logger: logging.Logger, event: str, level: int = logging.INFO, **fields: Any) -> None:
    if logger.isEnabledFor(level):
        logger.log(level, event, extra={"fields": fields})


def setup_logging(level: str = "info") -> None:
    """Route every `flywheel.*` logger through one JSON handler on a background thread."""
    global _listener
    root = logging.getLogger("flywheel")
    root.setLevel(level.upper())
    if _listener is not None:
        return
    records: queue.SimpleQueue[logging.LogRecord] = queue.SimpleQueue()
    stream = logging.StreamHandler(sys.stderr)
    stream.setFormatter(JSONFormatter())
    _listener = logging.handlers.QueueListener(records, stream, respect_handler_level=False)
    _listener.start()
    atexit.register(_listener.stop)
    root.handlers[:] = [logging.handlers.QueueHandler(records)]
    root.propagate = False

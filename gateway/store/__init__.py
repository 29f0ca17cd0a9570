"""The store: one interface (`base.Store`), two backends, picked by URL scheme.

`open_store("sqlite:///path/flywheel.db")` gives the embedded SQLite store;
`open_store("redis://host:6379/0")` (or `rediss://`) gives the Redis store. Nothing is
connected until `start()` or the first call.
"""

from __future__ import annotations

from gateway.store.base import (
    AuditEntry,
    Change,
    FeedbackStatus,
    Store,
    StoreUnavailable,
    StreamEntry,
)
from gateway.store.scrub import safe_url

SCHEMES = ("sqlite:///", "redis://", "rediss://")


def open_store(url: str) -> Store:
    """A store for `url`; ValueError for an unknown scheme."""
    if url.startswith("sqlite:///"):
        from gateway.store.sqlite_store import SQLiteStore

        return SQLiteStore(url)
    if url.startswith(("redis://", "rediss://")):
        from gateway.store.redis_store import RedisStore  # redis is only needed here

        return RedisStore(url)
    raise ValueError(f"unsupported store url {safe_url(url)!r}: use one of {', '.join(SCHEMES)}")


__all__ = [
    "AuditEntry",
    "Change",
    "FeedbackStatus",
    "Store",
    "StoreUnavailable",
    "StreamEntry",
    "open_store",
]

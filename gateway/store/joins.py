"""The feedback join rule, shared by both backends: feedback joins an event only when
both carry the same tenant. A tenant cannot rate (and so poison the learning from)
another tenant's request, even in the instant before that request's event is stored."""

from __future__ import annotations

import logging
from typing import cast, get_args

from gateway.logs import log_event
from gateway.store.base import FeedbackStatus

log = logging.getLogger("flywheel.store")

_STATUSES = frozenset(get_args(FeedbackStatus))


def feedback_status(value: str) -> FeedbackStatus:
    """A backend's answer as a FeedbackStatus (ValueError for anything else)."""
    if value not in _STATUSES:
        raise ValueError(f"not a feedback status: {value!r}")
    return cast(FeedbackStatus, value)


def foreign_feedback_dropped(count: int) -> None:
    """Log feedback that another tenant left on request ids whose events just arrived."""
    log_event(log, "foreign feedback dropped", logging.WARNING, count=count)

"""The learner's Prometheus metrics, served on its own port."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge


class LearnerMetrics:
    def __init__(self) -> None:
        self.registry = r = CollectorRegistry()
        self.consumed = Counter(
            "flywheel_learner_consumed_total", "Stream entries consumed", ["stream"], registry=r
        )
        self.experiences = Counter(
            "flywheel_learner_experiences_total", "Decisions turned into experiences", registry=r
        )
        self.updates = Counter("flywheel_learner_updates_total", "Bandit updates", registry=r)
        self.publications = Counter(
            "flywheel_learner_publications_total", "Gate decisions", ["result"], registry=r
        )
        self.errors = Counter("flywheel_learner_errors_total", "Failed rounds", registry=r)
        self.malformed = Counter(
            "flywheel_learner_malformed_entries_total", "Stream entries skipped", registry=r
        )
        self.lag = Gauge(
            "flywheel_learner_lag_seconds", "Age of the newest event consumed", registry=r
        )
        self.pending = Gauge(
            "flywheel_learner_pending_decisions", "Decisions waiting for feedback", registry=r
        )

"""MLflow tracking for training jobs: one run per job, params, per-step metrics, the adapter.

The default tracking URI is `sqlite:///.flywheel/mlflow.db`. mlflow-skinny's SQLite backend
needs `sqlalchemy` and `alembic`; without them the run goes to a file store beside the
database (`.flywheel/mlruns`), which MLflow 3 only accepts with `MLFLOW_ALLOW_FILE_STORE=true`
(set here for that case). Nothing here talks to a network.
"""

from __future__ import annotations

import importlib.util
import logging
import math
import os
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from mlflow.entities import Metric, Param, RunTag
from mlflow.tracking import MlflowClient
from transformers import TrainerCallback, TrainerControl, TrainerState, TrainingArguments

DEFAULT_TRACKING_URI = "sqlite:///.flywheel/mlflow.db"
DEFAULT_EXPERIMENT = "flywheel-learner"

log = logging.getLogger(__name__)


def resolve_tracking_uri(uri: str) -> str:
    """The URI actually used: a SQLite URI falls back to a file store without sqlalchemy."""
    os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")
    if uri.startswith("sqlite:///"):
        if _has("sqlalchemy") and _has("alembic"):
            return uri
        database = Path(uri.removeprefix("sqlite:///"))
        fallback = (database.parent / "mlruns").absolute().as_uri()
        log.warning("sqlalchemy/alembic not installed: MLflow runs go to %s", fallback)
        uri = fallback
    if uri.startswith("file:") or "://" not in uri:
        os.environ.setdefault("MLFLOW_ALLOW_FILE_STORE", "true")
    return uri


def _has(module: str) -> bool:
    return importlib.util.find_spec(module) is not None


class Tracker:
    """One MLflow run; metrics go through `MlflowClient` (no global active run)."""

    def __init__(self, uri: str, experiment: str, run_name: str, tags: Mapping[str, str]) -> None:
        self.uri = resolve_tracking_uri(uri)
        if self.uri.startswith("sqlite:///"):
            Path(self.uri.removeprefix("sqlite:///")).parent.mkdir(parents=True, exist_ok=True)
        self.client = MlflowClient(tracking_uri=self.uri)
        found = self.client.get_experiment_by_name(experiment)
        if found is not None:
            experiment_id = found.experiment_id
        else:
            experiment_id = self.client.create_experiment(experiment, self._artifact_root())
        run = self.client.create_run(experiment_id, run_name=run_name, tags=dict(tags))
        self.run_id: str = run.info.run_id

    def _artifact_root(self) -> str | None:
        if not self.uri.startswith("sqlite:///"):
            return None  # the file store keeps artifacts beside the runs
        database = Path(self.uri.removeprefix("sqlite:///")).absolute()
        return (database.parent / "mlartifacts").as_uri()

    def log_params(self, params: Mapping[str, Any]) -> None:
        items = [Param(key, str(value)[:6000]) for key, value in params.items()]
        self.client.log_batch(self.run_id, params=items)

    def log_metrics(self, metrics: Mapping[str, Any], step: int) -> None:
        now = int(time.time() * 1000)
        items = [
            Metric(key.replace("/", "."), float(value), now, step)
            for key, value in metrics.items()
            if isinstance(value, int | float) and math.isfinite(value)
        ]
        if items:
            self.client.log_batch(self.run_id, metrics=items)

    def set_tags(self, tags: Mapping[str, str]) -> None:
        self.client.log_batch(self.run_id, tags=[RunTag(k, v) for k, v in tags.items()])

    def log_artifacts(self, directory: Path, artifact_path: str) -> None:
        self.client.log_artifacts(self.run_id, str(directory), artifact_path)

    def finish(self, status: str) -> None:
        mlflow_status = {"completed": "FINISHED", "stopped": "KILLED"}.get(status, "FAILED")
        self.client.set_terminated(self.run_id, mlflow_status)


class MlflowMetricsCallback(TrainerCallback):
    """Sends every `Trainer.log` (loss, reward, KL, learning rate, ...) to the run."""

    def __init__(self, tracker: Tracker) -> None:
        self.tracker = tracker

    def on_log(
        self,
        args: TrainingArguments,
        state: TrainerState,
        control: TrainerControl,
        logs: dict[str, Any] | None = None,
        **kwargs: Any,
    ) -> None:
        if logs:
            self.tracker.log_metrics(logs, state.global_step)

"""MLflow backend: a local file store (``file:`` URI) under ``TRACK_DIR/mlruns``; never a tracking server.

Read it back with MLflow's own client, ``MlflowClient("file:///…/mlruns")``, or browse it with
``mlflow ui --backend-store-uri TRACK_DIR/mlruns``.
"""

from __future__ import annotations

import os
import re
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from ready2unlearn.tracking.base import TRACKERS, TrackerInfo, flatten, missing_library, numeric

#: MLflow's own limits for one ``log_batch`` call and for one parameter value.
_PARAMS_PER_BATCH, _METRICS_PER_BATCH, _MAX_PARAM_CHARS = 100, 1000, 6000
#: What MLflow refuses in a metric or param name (it allows letters, digits, ``_-. :/``).
_NOT_ALLOWED = re.compile(r"[^\w\-. :/]")


def _name(key: str) -> str:
    """``key`` as MLflow accepts it: a benchmark cell ``random:0.1@7/...`` or ``class:3,5/...`` gets ``_``."""
    return _NOT_ALLOWED.sub("_", key)


class MlflowTracker:
    """One MLflow run in the file store ``track_dir/mlruns``, in experiment ``experiment``."""

    def __init__(self, track_dir: Path, run_name: str, experiment: str) -> None:
        # MLflow 3 keeps the file store only behind this opt-in (it steers new users to a database, which the
        # skinny package cannot open), and its usage telemetry would be network traffic: tracking here is
        # local and offline. A value the user set on purpose wins.
        os.environ.setdefault("MLFLOW_ALLOW_FILE_STORE", "true")
        os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")
        # Imported here, not at the top: mlflow is an optional extra that takes seconds to import, and only a
        # run with `--track mlflow` needs it.
        try:
            from mlflow.entities import Metric, Param
            from mlflow.tracking import MlflowClient
        except ImportError:
            raise missing_library("mlflow", "mlflow-skinny") from None
        self._metric, self._param = Metric, Param
        self.location = (track_dir / "mlruns").resolve()
        self.location.mkdir(parents=True, exist_ok=True)
        self.tracking_uri = self.location.as_uri()
        self.client = MlflowClient(tracking_uri=self.tracking_uri)
        found = self.client.get_experiment_by_name(experiment)
        exp_id = found.experiment_id if found is not None else self.client.create_experiment(experiment)
        self.run_id: str = self.client.create_run(exp_id, run_name=run_name).info.run_id
        self._last_step = 0

    def log_params(self, params: Mapping[str, Any]) -> None:
        """Records the config as MLflow params (values are text in MLflow; very long ones are cut)."""
        items = [self._param(_name(k), str(v)[:_MAX_PARAM_CHARS]) for k, v in flatten(params).items()]
        for i in range(0, len(items), _PARAMS_PER_BATCH):
            self.client.log_batch(self.run_id, params=items[i : i + _PARAMS_PER_BATCH])

    def log_metrics(self, metrics: Mapping[str, float], step: int) -> None:
        """Records one point of each curve at ``step``."""
        self._last_step = max(self._last_step, step)
        self._log(metrics, step)

    def log_summary(self, metrics: Mapping[str, float]) -> None:
        """Records final metrics at the last step seen (MLflow shows a metric's latest value)."""
        self._log(metrics, self._last_step)

    def _log(self, metrics: Mapping[str, float], step: int) -> None:
        now = int(time.time() * 1000)
        items = [self._metric(_name(k), v, now, step) for k, v in numeric(metrics).items()]
        for i in range(0, len(items), _METRICS_PER_BATCH):
            self.client.log_batch(self.run_id, metrics=items[i : i + _METRICS_PER_BATCH])

    def log_artifact(self, path: str | Path, folder: str | None = None) -> None:
        """Copies the file into the run's artifact folder (or its sub-folder ``folder``)."""
        self.client.log_artifact(self.run_id, str(path), artifact_path=folder)

    def close(self, failed: bool = False) -> None:
        """Marks the run finished (or failed)."""
        self.client.set_terminated(self.run_id, "FAILED" if failed else "FINISHED")


TRACKERS.register(
    "mlflow",
    TrackerInfo(MlflowTracker, "mlflow", "mlflow-skinny", "MLflow file store in TRACK_DIR/mlruns (mlflow-skinny)"),
)

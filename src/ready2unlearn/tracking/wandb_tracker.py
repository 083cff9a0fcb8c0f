"""Weights & Biases backend: an offline run under ``TRACK_DIR/wandb/offline-run-*``; nothing is uploaded.

The run folder holds the binary run log (``run-<id>.wandb``: config, history, summary) and ``files/`` with the
artifacts. ``wandb sync TRACK_DIR/wandb/offline-run-…`` uploads it later, if you choose to.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from ready2unlearn.tracking.base import TRACKERS, TrackerInfo, flatten, missing_library, numeric


class WandbTracker:
    """One W&B run in offline mode, in project ``experiment``."""

    def __init__(self, track_dir: Path, run_name: str, experiment: str) -> None:
        # Offline for the whole process, not only for this run: wandb builds its usage telemetry (which probes
        # the W&B server) from the process-wide settings, read from the environment when wandb is first set up.
        # Tracking here never uploads; `wandb sync` does that later, if the user wants it.
        os.environ["WANDB_MODE"] = "offline"
        os.environ["WANDB_ERROR_REPORTING"] = "false"
        # Imported here, not at the top: wandb is an optional extra that is slow to import, and only a run with
        # `--track wandb` needs it.
        try:
            import wandb
        except ImportError:
            raise missing_library("wandb", "wandb") from None
        track_dir.mkdir(parents=True, exist_ok=True)
        # Quiet too: no login, no console capture, no git or code snapshot, no system-metrics sampler (a second
        # process that would outlive short runs).
        settings = wandb.Settings(mode="offline", silent=True, console="off", save_code=False, disable_git=True,
                                  disable_job_creation=True, x_disable_stats=True)  # fmt: skip
        wandb.setup(settings=wandb.Settings(mode="offline"))  # in case wandb was set up before, online
        self.run = wandb.init(project=experiment, name=run_name, dir=str(track_dir.resolve()), settings=settings)
        self.location = Path(self.run.dir).parent  # .../wandb/offline-run-<time>-<id>
        self._defined: set[str] = set()  # keys given a step metric

    def log_params(self, params: Mapping[str, Any]) -> None:
        """Records the config (flattened to dotted keys, as the other backends do)."""
        self.run.config.update(flatten(params), allow_val_change=True)

    def log_metrics(self, metrics: Mapping[str, float], step: int) -> None:
        """Records one point of each curve, against a step key of the curve's own.

        W&B has one global step that may only grow, but a command logs several curves whose steps restart
        (one per request or benchmark cell, keyed ``req-02/forget_acc``). Each group of keys therefore gets its
        own step metric (``req-02/step``, or ``step`` without a prefix) instead of W&B's global one.
        """
        values = numeric(metrics)
        groups: dict[str, dict[str, float]] = {}
        for key, value in values.items():
            prefix = key.rpartition("/")[0]
            groups.setdefault(prefix, {})[key] = value
        for prefix, row in groups.items():
            step_key = f"{prefix}/step" if prefix else "step"
            for key in (step_key, *row):
                if key not in self._defined:
                    self._defined.add(key)
                    self.run.define_metric(key, step_metric=None if key == step_key else step_key)
            self.run.log({**row, step_key: step})

    def log_summary(self, metrics: Mapping[str, float]) -> None:
        """Records final metrics in the run summary."""
        self.run.summary.update(numeric(metrics))

    def log_artifact(self, path: str | Path, folder: str | None = None) -> None:
        """Copies the file into the run's ``files/`` folder (what ``wandb sync`` uploads with the run)."""
        dest = Path(self.run.dir) / (folder or "")
        dest.mkdir(parents=True, exist_ok=True)
        shutil.copy2(path, dest / Path(path).name)

    def close(self, failed: bool = False) -> None:
        """Finishes the run and flushes the run log."""
        self.run.finish(exit_code=1 if failed else 0)


TRACKERS.register(
    "wandb", TrackerInfo(WandbTracker, "wandb", "wandb", "Weights & Biases offline run in TRACK_DIR/wandb (wandb)")
)

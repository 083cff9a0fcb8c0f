"""TensorBoard backend: event files under ``TRACK_DIR/tensorboard/<run>``; ``tensorboard --logdir TRACK_DIR``.

TensorBoard has scalars and text but no parameters or files of its own: the config is a text summary (and
``params.json``), and artifacts are copied into ``<run>/artifacts/``.
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from ready2unlearn.tracking.base import TRACKERS, TrackerInfo, flatten, missing_library, numeric


class TensorBoardTracker:
    """One TensorBoard run folder written by ``torch.utils.tensorboard.SummaryWriter``."""

    def __init__(self, track_dir: Path, run_name: str, experiment: str) -> None:
        # Imported here, not at the top: torch's SummaryWriter needs the optional `tensorboard` package (it
        # raises ImportError without it), and only a run with `--track tensorboard` needs it.
        try:
            from torch.utils.tensorboard import SummaryWriter
        except ImportError:
            raise missing_library("tensorboard", "tensorboard") from None
        self.location = track_dir / "tensorboard" / run_name
        self.writer = SummaryWriter(log_dir=str(self.location))
        self.experiment = experiment
        self._last_step = 0

    def log_params(self, params: Mapping[str, Any]) -> None:
        """Writes the config as a text summary (a two-column table) and as ``params.json``."""
        flat = flatten(params)
        rows = "\n".join(f"| {k} | {v} |" for k, v in flat.items())
        self.writer.add_text("config", f"| key | value |\n|---|---|\n{rows}", 0)
        (self.location / "params.json").write_text(json.dumps(flat, indent=2), encoding="utf-8")

    def log_metrics(self, metrics: Mapping[str, float], step: int) -> None:
        """One scalar point per metric at ``step``."""
        self._last_step = max(self._last_step, step)
        for key, value in numeric(metrics).items():
            self.writer.add_scalar(key, value, step)

    def log_summary(self, metrics: Mapping[str, float]) -> None:
        """Final metrics as scalars under ``final/`` at the last step seen."""
        for key, value in numeric(metrics).items():
            self.writer.add_scalar(f"final/{key}", value, self._last_step)

    def log_artifact(self, path: str | Path, folder: str | None = None) -> None:
        """Copies the file into ``<run>/artifacts/`` (or its sub-folder ``folder``)."""
        dest = self.location / "artifacts" / (folder or "")
        dest.mkdir(parents=True, exist_ok=True)
        shutil.copy2(path, dest / Path(path).name)

    def close(self, failed: bool = False) -> None:
        """Flushes and closes the event file (TensorBoard has no run status; a failed run says so in text)."""
        if failed:
            self.writer.add_text("status", "failed", self._last_step)
        self.writer.close()


TRACKERS.register(
    "tensorboard",
    TrackerInfo(TensorBoardTracker, "tensorboard", "tensorboard", "TensorBoard event files in TRACK_DIR/tensorboard"),
)

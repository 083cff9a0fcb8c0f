"""Experiment tracking (``--track mlflow|wandb|tensorboard``): local, offline stores beside the runs.

Importing the package registers the three backends; none of their libraries is imported until a run asks
for that backend (``pip install "ready2unlearn[track]"`` brings them all).
"""

from ready2unlearn.tracking import mlflow_tracker, tensorboard_tracker, wandb_tracker  # noqa: F401  (registration)
from ready2unlearn.tracking.base import (
    TRACKERS,
    NullTracker,
    Tracker,
    TrackerInfo,
    default_track_dir,
    flatten,
    numeric,
    open_tracker,
    run_name,
    tracking,
)

__all__ = [
    "TRACKERS",
    "NullTracker",
    "Tracker",
    "TrackerInfo",
    "default_track_dir",
    "flatten",
    "numeric",
    "open_tracker",
    "run_name",
    "tracking",
]

"""The experiment-tracking contract: one small :class:`Tracker` protocol, a null tracker and the registry.

A tracker receives what a run already produces — the resolved config, curves (per epoch or per evaluation
step), final metrics and the files it wrote (card, report) — and records it in a local store that its own
tools can read back (an MLflow file store, a W&B offline run, TensorBoard event files). Tracking is local and
offline only: nothing here starts a server or talks to the network, and the stores stay beside the runs.

Backends register like datasets or methods (``TRACKERS``); their libraries are heavy optional extras, so each
imports its library only when a run asks for it.
"""

from __future__ import annotations

import importlib.util
import json
import math
import re
import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from ready2unlearn.errors import ConfigError
from ready2unlearn.registry import Registry

#: The extra that brings every tracking library (``pip install "ready2unlearn[track]"``).
EXTRA = "track"


class Tracker(Protocol):
    """Where a run's config, curves, final metrics and files are recorded.

    Attributes:
        location: The folder the backend writes into (what to open with its own tools); ``None`` while nothing
            has been written.
    """

    @property
    def location(self) -> Path | None:
        """The backend's folder."""
        ...

    def log_params(self, params: Mapping[str, Any]) -> None:
        """Records the resolved config (nested mappings are flattened to dotted keys)."""
        ...

    def log_metrics(self, metrics: Mapping[str, float], step: int) -> None:
        """Records one point of the curves: ``metrics`` at ``step`` (an epoch, an unlearning step)."""
        ...

    def log_summary(self, metrics: Mapping[str, float]) -> None:
        """Records final metrics (values that have no step)."""
        ...

    def log_artifact(self, path: str | Path, folder: str | None = None) -> None:
        """Stores a copy of the file at ``path`` with the run (a card, a report), optionally in ``folder``."""
        ...

    def close(self, failed: bool = False) -> None:
        """Ends the run, marking it failed when the command did not succeed."""
        ...


class NullTracker:
    """Records nothing: what a run without ``--track`` uses, so the recipes never ask whether to log."""

    location = None

    def log_params(self, params: Mapping[str, Any]) -> None:  # noqa: D102
        pass

    def log_metrics(self, metrics: Mapping[str, float], step: int) -> None:  # noqa: D102
        pass

    def log_summary(self, metrics: Mapping[str, float]) -> None:  # noqa: D102
        pass

    def log_artifact(self, path: str | Path, folder: str | None = None) -> None:  # noqa: D102
        pass

    def close(self, failed: bool = False) -> None:  # noqa: D102
        pass


@dataclass(frozen=True)
class TrackerInfo:
    """A registered backend.

    Attributes:
        factory: ``factory(track_dir, run_name, experiment) -> Tracker`` starts a run.
        module: The library it imports (checked before any work starts).
        package: The PyPI package that provides it, for the error message.
        summary: One line for ``--help`` and the README.
    """

    factory: Callable[[Path, str, str], Tracker]
    module: str
    package: str
    summary: str


TRACKERS: Registry[TrackerInfo] = Registry("tracker")


def missing_library(backend: str, package: str) -> ConfigError:
    """The one-line error for a backend whose library is not installed."""
    return ConfigError(f'--track {backend} needs the {package} package: pip install "ready2unlearn[{EXTRA}]"')


class DeferredTracker:
    """A backend's run that starts at its first curve point, final metric or file, not before.

    A command refused before it did any work (a bad ``--out``, missing data) then leaves no run behind, as
    it leaves no files; the config given to :meth:`log_params` before that is recorded when the run starts.
    """

    def __init__(self, start: Callable[[], Tracker]) -> None:
        self._start = start
        self._run: Tracker | None = None
        self._params: dict[str, Any] = {}

    @property
    def location(self) -> Path | None:
        """The backend's folder, once the run has started."""
        return None if self._run is None else self._run.location

    def _started(self) -> Tracker:
        if self._run is None:
            self._run = self._start()
            if self._params:
                self._run.log_params(self._params)
        return self._run

    def log_params(self, params: Mapping[str, Any]) -> None:  # noqa: D102
        if self._run is None:
            self._params.update(params)
        else:
            self._run.log_params(params)

    def log_metrics(self, metrics: Mapping[str, float], step: int) -> None:  # noqa: D102
        self._started().log_metrics(metrics, step)

    def log_summary(self, metrics: Mapping[str, float]) -> None:  # noqa: D102
        self._started().log_summary(metrics)

    def log_artifact(self, path: str | Path, folder: str | None = None) -> None:  # noqa: D102
        self._started().log_artifact(path, folder)

    def close(self, failed: bool = False) -> None:  # noqa: D102
        if self._run is not None:
            self._run.close(failed)


def open_tracker(name: str | None, track_dir: str | Path, run_name: str, experiment: str = "ready2unlearn") -> Tracker:
    """A run of backend ``name`` under ``track_dir`` that starts when the first result is logged.

    ``None`` gives a :class:`NullTracker`. The backend's library is looked up here, so a missing one stops the
    command before it trains anything.

    Raises:
        ConfigError: On an unknown backend (with a "did you mean") or a missing library.
    """
    if name is None:
        return NullTracker()
    info = TRACKERS.get(name)
    try:
        found = importlib.util.find_spec(info.module) is not None
    except (ImportError, ValueError):  # a parent package that is missing, or a module without a spec
        found = False
    if not found:
        raise missing_library(name, info.package)
    return DeferredTracker(lambda: info.factory(Path(track_dir), run_name, experiment))


@contextmanager
def tracking(name: str | None, track_dir: str | Path, run_name: str) -> Iterator[Tracker]:
    """:func:`open_tracker` as a context: the run is closed, and marked failed if the block raised."""
    tracker = open_tracker(name, track_dir, run_name)
    try:
        yield tracker
    except BaseException:
        tracker.close(failed=True)
        raise
    tracker.close()


def default_track_dir(out: str | Path) -> Path:
    """Where tracking stores go without ``--track-dir``: ``tracking/`` beside ``--out`` (``runs/tracking``)."""
    return Path(out).parent / "tracking"


def run_name(verb: str, out: str | Path) -> str:
    """A file-name-safe run name: the verb, the output folder's name and the start time."""
    stem = re.sub(r"[^A-Za-z0-9_.-]+", "-", Path(out).name or "run").strip("-") or "run"
    return f"{verb}-{stem}-{time.strftime('%Y%m%d-%H%M%S')}"


def flatten(params: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    """Nested mappings → dotted keys; lists and ``None`` as JSON text, so every backend can store them."""
    out: dict[str, Any] = {}
    for key, value in params.items():
        name = f"{prefix}{key}"
        if isinstance(value, Mapping):
            out.update(flatten(value, f"{name}."))
        elif isinstance(value, (bool, int, float, str)):
            out[name] = value
        else:
            out[name] = json.dumps(value, default=str)
    return out


def numeric(metrics: Mapping[str, Any]) -> dict[str, float]:
    """The entries that are numbers (booleans as 0/1), as floats; text, lists and ``None`` are left out."""
    out = {}
    for key, value in metrics.items():
        if isinstance(value, (bool, int, float)) and not (isinstance(value, float) and math.isinf(value)):
            out[key] = float(value)
    return out

"""The benchmark harness: the pieces every resumable runner (bench, ready-bench, lm-bench, plan) owns.

A runner composes them instead of inheriting them from another runner:

- :class:`ModelCache`: trained models as checkpoints in ``models/seed<S>/<name>-<hash>``;
- :class:`CellCache`: finished cells as ``cells/<key>-<hash>.json``, and the list of this run's cells;
- a :data:`Report` hook, ``report(results, out_dir)``, that :func:`publish` calls after writing
  ``results.json``: the runner holds its own report writer, so the harness imports no runner's report;
- :func:`check_resumable` refuses to resume a folder made with another config; :func:`run_resumable` checks,
  then runs the runner.

Every cached name ends in the hash of a *cache config* (:mod:`ready2unlearn.recipes.cache`), the mapping of
everything that made the artifact; it is stored beside the artifact and compared on load, so a changed,
inserted or reordered row never reuses a stale result (DESIGN §6).
"""

from __future__ import annotations

import json
import re
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any, Protocol

import torch
from torch import nn

from ready2unlearn.artifacts import CARD, load_weights, read_card, save_checkpoint, write_json
from ready2unlearn.config import to_dict
from ready2unlearn.errors import ConfigError
from ready2unlearn.recipes.cache import cache_key, cache_record, load_json, matches, store_json

#: ``report(results, out_dir)``: renders a runner's report from its results (any return value is ignored).
Report = Callable[[dict[str, Any], Path], object]

#: A model and its training info (seconds, metrics... as its ``train`` function returned them).
Trained = tuple[nn.Module, dict[str, Any]]


def slug(text: str) -> str:
    """``text`` as a file-name part: every run of other characters than ``[a-zA-Z0-9._-]`` becomes ``-``."""
    return re.sub(r"[^a-zA-Z0-9._-]+", "-", text).strip("-")


class ModelCache:
    """Trained models cached as checkpoints in ``root/seed<S>/<name>-<hash>``, keyed by their cache config.

    A cached checkpoint whose stored config differs from the one asked for is retrained over, never trusted.
    The training info is stored in the card under ``info`` (checkpoints of earlier ``r2u bench`` versions hold
    it under ``bench``; both load).

    Args:
        root: Folder of the cache.
        device: Where loaded models go.
        card: ``card(seed, name, info) -> card`` of a checkpoint written for ``seed`` (its provenance: training
            config, data fingerprints, versions); the cache adds ``info`` and ``cache``.
        seed: Seeds the random state before an untrained model is built (``torch.manual_seed`` by default).
    """

    def __init__(self, root: Path, device: torch.device, card: Callable[[int, str, dict[str, Any]], dict[str, Any]],
                 seed: Callable[[int], object] = torch.manual_seed) -> None:  # fmt: skip
        self.root, self.device, self.card, self.seed = Path(root), device, card, seed
        self._loaded: dict[str, Trained] = {}

    def path(self, seed: int, name: str, config: Mapping[str, Any]) -> Path:
        """The folder of model ``name`` made from ``config`` for ``seed``."""
        return self.root / f"seed{seed}" / f"{slug(name)}-{cache_key(config)}"

    def get(self, seed: int, name: str, config: Mapping[str, Any], build: Callable[[], nn.Module],
            train: Callable[[nn.Module], dict[str, Any]], keep: bool = True) -> Trained:  # fmt: skip
        """The model and its training info: from memory, from the cache folder, or built and trained now.

        Args:
            seed: The seed (part of the folder name; ``config`` must hold everything else that matters).
            name: The model's name (``standard``, ``ready``...).
            config: Everything the model depends on (hashed).
            build: Builds the untrained model (called after ``self.seed(seed)``). Cached weights are loaded into
                a model it builds, so a user's own module caches like a registered one.
            train: Trains it in place and returns JSON-able info (seconds, metrics...).
            keep: Keep the model in memory for the next call (until :meth:`clear`); ``False`` loads it anew.
        """
        d = self.path(seed, name, config)
        if str(d) in self._loaded:
            return self._loaded[str(d)]
        found = self._load(d, config, build)
        if found is None:
            self.seed(seed)
            model = build()
            info = train(model)
            save_checkpoint(model, d, {**self.card(seed, name, info), "info": info, "cache": cache_record(config)})
            found = (model, info)
        if keep:
            self._loaded[str(d)] = found
        return found

    def _load(self, d: Path, config: Mapping[str, Any], build: Callable[[], nn.Module]) -> Trained | None:
        if not (d / CARD).exists():
            return None
        card = read_card(d)  # hash-checked
        info = card.get("info", card.get("bench"))
        if info is None or not matches(card.get("cache"), config):
            return None
        model = build()
        load_weights(model, d, self.device)
        return model, info

    def clear(self) -> None:
        """Forgets the models kept in memory (the cache folder is untouched)."""
        self._loaded = {}


class CellCache:
    """Finished cells of a run as JSON files ``root/<folder>/<name(key)>-<hash>.json``, and which are this run's.

    A folder may hold the cells of other configs (a resumed run with an edited preset); :attr:`files` lists the
    ones this run planned or computed, in order, and :meth:`read` reads exactly those.

    Args:
        root: The run's output folder.
        folder: Sub-folder of the cells.
        name: Turns a cell key into the first part of its file name (default :func:`slug`).
    """

    def __init__(self, root: Path, folder: str = "cells", name: Callable[[str], str] = slug) -> None:
        self.folder, self.name = Path(root) / folder, name
        self.files: list[Path] = []

    def path(self, key: str, config: Mapping[str, Any] | None) -> Path:
        """Where the cell ``key`` made from cache config ``config`` lives (the name carries its hash).

        ``config=None`` is an unkeyed cell, ``<name(key)>.json``, trusted as found (``r2u bench``'s TOFU cells).
        """
        if config is None:
            return self.folder / f"{self.name(key)}.json"
        return self.folder / f"{self.name(key)}-{cache_key(config)}.json"

    @staticmethod
    def load(path: Path, config: Mapping[str, Any] | None) -> dict[str, Any] | None:
        """The cell at ``path`` if it was made from ``config`` (with its cache record); ``None``: compute it."""
        if config is not None:
            return load_json(path, config)
        return json.loads(path.read_text(encoding="utf-8")) if path.is_file() else None

    @staticmethod
    def store(path: Path, config: Mapping[str, Any] | None, payload: Mapping[str, Any]) -> dict[str, Any]:
        """Writes ``payload`` (plus its cache record when keyed) to ``path`` atomically; returns what was written."""
        if config is not None:
            return store_json(path, config, payload)
        write_json(path, payload)
        return dict(payload)

    def track(self, path: Path) -> Path:
        """Records ``path`` as one of this run's cells (in order); returns it."""
        self.files.append(path)
        return path

    def get(self, key: str, config: Mapping[str, Any] | None, make: Callable[[], Mapping[str, Any]]) -> dict[str, Any]:
        """The cell ``key``: loaded when cached, otherwise ``make()`` stored; tracked as this run's either way."""
        path = self.track(self.path(key, config))
        cell = self.load(path, config)
        return cell if cell is not None else self.store(path, config, make())

    def read(self, keep_key: bool = True) -> list[dict[str, Any]]:
        """This run's cells, without their full cache configs (``results["config"]`` has them already).

        Args:
            keep_key: Keep ``cache: {"key": ...}`` in each cell (``False`` drops the cache record).
        """
        cells = []
        for p in self.files:
            cell = json.loads(p.read_text(encoding="utf-8"))
            record = cell.pop("cache", None)
            if keep_key and record is not None:
                cell["cache"] = {"key": record["key"]}
            cells.append(cell)
        return cells


def publish(results: dict[str, Any], out: Path, report: Report | None) -> dict[str, Any]:
    """Writes ``out/results.json``, then renders the report with ``report(results, out)``; returns ``results``."""
    write_json(out / "results.json", results)
    if report is not None:
        report(results, out)
    return results


class Runner(Protocol):
    """A benchmark runner: built from its config and output folder, run once."""

    def run(self) -> dict[str, Any]:
        """Runs every missing cell, writes the results and the report, and returns the results."""
        ...


def check_resumable(cfg: Any, out_dir: str | Path, config_file: str = "bench_config.json",
                    what: str = "a benchmark run", flag: str = "--out") -> None:  # fmt: skip
    """Refuses to resume ``out_dir`` when the config saved there by its last run is not ``cfg``.

    Args:
        cfg: The resolved config.
        out_dir: The run's folder; one without ``config_file`` is a new run and passes.
        config_file: Where the runner saved its config (``{"preset", "config"}``).
        what: The kind of run, in the error message.
        flag: The command-line option that names the folder, in the error message.

    Raises:
        ConfigError: If ``out_dir`` holds a run of a different config.
    """
    saved = Path(out_dir) / config_file
    if saved.exists() and json.loads(saved.read_text(encoding="utf-8"))["config"] != to_dict(cfg):
        raise ConfigError(f"{out_dir} holds {what} with a different config; resume it with the same preset and "
                          f"overrides, or choose another {flag}")  # fmt: skip


def run_resumable(make_runner: Callable[[Any, Path, str, bool], Runner], cfg: Any, preset_path: str,
                  out_dir: str | Path, show_progress: bool, *, config_file: str = "bench_config.json",
                  what: str = "a benchmark run") -> dict[str, Any]:  # fmt: skip
    """Runs ``make_runner(cfg, out_dir, preset, show_progress)``, refusing to resume a run of another config.

    Args:
        make_runner: The runner's class (or any callable with its constructor's first four arguments).
        cfg: The resolved config; compared with the one saved in ``out_dir/config_file`` by the last run.
        preset_path: The preset's file; its stem names the run.
        out_dir: The run's folder (resumed when it holds a run of ``cfg``).
        show_progress: Progress bars.
        config_file: Where the runner saves its config (``{"preset", "config"}``).
        what: The kind of run, in the error message.

    Returns:
        The runner's results, plus ``wall_seconds`` of this call.

    Raises:
        ConfigError: If ``out_dir`` holds a run of a different config.
    """
    check_resumable(cfg, out_dir, config_file, what)
    t0 = time.perf_counter()
    results = make_runner(cfg, Path(out_dir), Path(preset_path).stem, show_progress).run()
    results["wall_seconds"] = time.perf_counter() - t0
    return results

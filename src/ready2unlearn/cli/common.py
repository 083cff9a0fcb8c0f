"""Shared CLI plumbing: console, common flags, and metric tables.

User-supplied text (paths, request specs, ledger targets and reasons) must never reach rich as markup:
``[/]`` in a path would raise a ``MarkupError`` and ``:-1:`` would turn into an emoji. The consoles
therefore never expand emoji codes, and every interpolated user string goes through :func:`esc`.
"""

from __future__ import annotations

import argparse
import getpass
from collections.abc import Mapping
from contextlib import AbstractContextManager
from typing import Any

from rich.console import Console
from rich.markup import escape
from rich.table import Table

from ready2unlearn.errors import ConfigError
from ready2unlearn.tracking import Tracker, default_track_dir, run_name, tracking

console = Console(highlight=False, emoji=False)
err_console = Console(stderr=True, highlight=False, emoji=False)


def esc(value: Any) -> str:
    """``str(value)`` with rich markup escaped, for user text inside a markup string or a table cell."""
    return escape(str(value))


def notice(text: str) -> None:
    """Prints a one-line notice on stderr (``text`` is plain text, not markup)."""
    err_console.print(esc(text), soft_wrap=True)


def add_data_dir(p: argparse.ArgumentParser) -> None:
    """Adds ``--data-dir``."""
    p.add_argument(
        "--data-dir",
        metavar="DIR",
        help="folder holding the dataset folders (default: $R2U_DATA_DIR, else ../shared/data if present)",
    )


def add_preset_run_args(p: argparse.ArgumentParser, group: str) -> None:
    """Adds the positional preset, ``key=value`` overrides, ``--out``, ``--data-dir`` and ``--quiet``."""
    p.add_argument("preset", help=f"{group} preset (r2u ls presets) or YAML file")
    p.add_argument("overrides", nargs="*", metavar="key.sub=value", help="config overrides")
    p.add_argument("--out", "-o", required=True, metavar="DIR")
    add_data_dir(p)
    add_quiet(p)


def add_track(p: argparse.ArgumentParser) -> None:
    """Adds ``--track`` and ``--track-dir`` (experiment tracking in a local, offline store)."""
    p.add_argument("--track", metavar="BACKEND",
                   help="record the config, curves, final metrics and card/report in a local store: mlflow (file "
                   "store), wandb (offline run) or tensorboard (event files); extra: ready2unlearn[track]")  # fmt: skip
    p.add_argument(
        "--track-dir", metavar="DIR", help="where the tracking store lives (default: tracking/ beside --out)"
    )


def track_run(args: argparse.Namespace, verb: str) -> AbstractContextManager[Tracker]:
    """The tracker of this command (``--track``), to use as a context; a null tracker without ``--track``.

    Raises:
        ConfigError: On an unknown backend, a missing library, or ``--track-dir`` without ``--track``.
    """
    if args.track is None and args.track_dir is not None:
        raise ConfigError("--track-dir needs --track mlflow|wandb|tensorboard")
    track_dir = args.track_dir or default_track_dir(args.out)
    return tracking(args.track, track_dir, run_name(verb, args.out))


def add_ledger(p: argparse.ArgumentParser) -> None:
    """``--ledger DB``, the deletion-request ledger (required)."""
    p.add_argument("--ledger", "-l", required=True, metavar="DB", help="ledger database file (SQLite)")


def current_user() -> str:
    """The login name of whoever runs the command (``unknown`` when the system cannot say)."""
    try:
        return getpass.getuser()
    except (KeyError, OSError):
        return "unknown"


def add_quiet(p: argparse.ArgumentParser) -> None:
    """Adds ``--quiet`` (no progress bars or per-epoch lines)."""
    p.add_argument("-q", "--quiet", action="store_true", help="no progress bar or per-epoch lines")


def metrics_table(title: str, runs: Mapping[str, Mapping[str, float]]) -> Table:
    """A table with one row per metric and one column per run (narrow terminals keep every number)."""
    metrics = sorted({k for r in runs.values() for k in r})
    table = Table(title=esc(title))
    table.add_column("metric")
    for name in runs:
        table.add_column(esc(name), justify="right")
    for m in metrics:
        table.add_row(esc(m), *(esc(_fmt(r.get(m))) for r in runs.values()))
    return table


def _fmt(v: float | None) -> str:
    if v is None:
        return "-"
    return f"{v:.4f}" if isinstance(v, float) else str(v)

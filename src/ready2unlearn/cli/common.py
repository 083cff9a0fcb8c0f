"""Shared CLI plumbing: console, common flags, and metric tables."""

from __future__ import annotations

import argparse
from collections.abc import Mapping

from rich.console import Console
from rich.table import Table

console = Console(highlight=False)
err_console = Console(stderr=True, highlight=False)


def add_data_dir(p: argparse.ArgumentParser) -> None:
    """Adds ``--data-dir``."""
    p.add_argument(
        "--data-dir",
        metavar="DIR",
        help="folder holding the dataset folders (default: $R2U_DATA_DIR, else ../shared/data if present)",
    )


def add_quiet(p: argparse.ArgumentParser) -> None:
    """Adds ``--quiet`` (no progress bars or per-epoch lines)."""
    p.add_argument("-q", "--quiet", action="store_true", help="no progress bar or per-epoch lines")


def metrics_table(title: str, rows: Mapping[str, Mapping[str, float]]) -> Table:
    """A table with one row per model/run and one column per metric."""
    columns = sorted({k for r in rows.values() for k in r})
    table = Table(title=title)
    table.add_column("model")
    for c in columns:
        table.add_column(c, justify="right")
    for name, r in rows.items():
        table.add_row(name, *(_fmt(r.get(c)) for c in columns))
    return table


def _fmt(v: float | None) -> str:
    if v is None:
        return "-"
    return f"{v:.4f}" if isinstance(v, float) else str(v)

"""A rich progress bar that can be switched off (tests, ``--quiet``, non-interactive logs).

Task descriptions may quote user text (a request spec, a preset's setting), so they are shown as plain
text: never parsed as markup (``[/]`` would raise) and without emoji codes (``:-1:`` stays as typed).
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Any

from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)


class _NullProgress:
    """Drop-in for ``rich.progress.Progress`` that does nothing."""

    def add_task(self, *args: Any, **kwargs: Any) -> int:
        return 0

    def update(self, *args: Any, **kwargs: Any) -> None:
        pass

    def advance(self, *args: Any, **kwargs: Any) -> None:
        pass


@contextlib.contextmanager
def progress_bar(enabled: bool = True) -> Iterator[Progress | _NullProgress]:
    """Context manager yielding a live progress bar (or a no-op stand-in when disabled)."""
    if not enabled:
        yield _NullProgress()
        return
    bar = Progress(
        TextColumn("{task.description}", style="progress.description", markup=False),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        TimeRemainingColumn(),
        console=Console(highlight=False, emoji=False),
        transient=True,
    )
    with bar:
        yield bar

"""A rich progress bar that can be switched off (tests, ``--quiet``, non-interactive logs)."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Any

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
        TextColumn("[progress.description]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        TimeRemainingColumn(),
        transient=True,
    )
    with bar:
        yield bar

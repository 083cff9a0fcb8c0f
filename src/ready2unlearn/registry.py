"""A small, strict name → object registry shared by datasets, models, methods, metrics and attacks.

Keys are explicit lowercase identifiers, validated when registered; looking up an unknown key raises a
:class:`~ready2unlearn.errors.ConfigError` with a "did you mean" list, so a typo on the command line is
one readable line rather than a ``KeyError`` traceback.
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Callable, Iterator
from typing import Generic, TypeVar

from ready2unlearn.errors import ConfigError

T = TypeVar("T")
_KEY = re.compile(r"^[a-z][a-z0-9_]*$")


class Registry(Generic[T]):
    """Maps lowercase names to registered entries.

    Args:
        kind: What the registry holds ("dataset", "model", ...), used in error messages.
    """

    def __init__(self, kind: str) -> None:
        self.kind = kind
        self._entries: dict[str, T] = {}

    def register(self, name: str, entry: T | None = None) -> Callable[[T], T] | T:
        """Registers ``entry`` under ``name``; usable directly or as a decorator.

        Args:
            name: Lowercase identifier (letters, digits, underscores; starts with a letter).
            entry: The object to register. When omitted, returns a decorator.

        Returns:
            The entry itself (or a decorator that registers and returns it).

        Raises:
            ValueError: If the name is malformed or already taken (a programming error, not user input).
        """
        if not _KEY.match(name):
            raise ValueError(f"{self.kind} name {name!r} must be lowercase [a-z][a-z0-9_]*")
        if name in self._entries:
            raise ValueError(f"{self.kind} {name!r} is already registered")

        def _add(obj: T) -> T:
            self._entries[name] = obj
            return obj

        return _add(entry) if entry is not None else _add

    def get(self, name: str) -> T:
        """Returns the entry for ``name``.

        Raises:
            ConfigError: If ``name`` is unknown; the message lists close matches and all known names.
        """
        try:
            return self._entries[name]
        except KeyError:
            close = difflib.get_close_matches(name, list(self._entries), n=3, cutoff=0.5)
            hint = f" Did you mean {', '.join(repr(c) for c in close)}?" if close else ""
            known = ", ".join(sorted(self._entries))
            raise ConfigError(f"unknown {self.kind} {name!r}.{hint} Known: {known}.") from None

    def names(self) -> list[str]:
        """Sorted list of registered names."""
        return sorted(self._entries)

    def items(self) -> Iterator[tuple[str, T]]:
        """Iterates over ``(name, entry)`` pairs in name order."""
        for name in self.names():
            yield name, self._entries[name]

    def __contains__(self, name: object) -> bool:
        return name in self._entries

    def __len__(self) -> int:
        return len(self._entries)

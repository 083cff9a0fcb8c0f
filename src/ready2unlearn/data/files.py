"""Finding dataset files on disk and checking them against the shipped checksum manifest.

The data root is, in order: the ``data_dir`` argument (``--data-dir``), ``$R2U_DATA_DIR``, then
``../shared/data`` or ``./shared/data`` when they exist. Within it, each dataset keeps its files in the
layout of the official releases (gzipped or not; torchvision's ``MNIST/raw`` layout also works).

The manifest stores the sha256 of each file's *decompressed* content, so a user's own copy passes
whether it is gzipped with different header bytes or not gzipped at all. Any problem is a one-line
:class:`~ready2unlearn.errors.DataError` naming the file and what to do.
"""

from __future__ import annotations

import gzip
import hashlib
import json
import os
import zlib
from functools import cache
from importlib import resources
from pathlib import Path
from typing import Any

from ready2unlearn.errors import DataError

ENV_VAR = "R2U_DATA_DIR"
_DEFAULT_ROOTS = (Path("../shared/data"), Path("shared/data"))


def data_root(data_dir: str | os.PathLike[str] | None = None) -> Path | None:
    """The directory datasets are read from, or ``None`` if no candidate exists.

    Raises:
        DataError: If ``data_dir`` (or ``$R2U_DATA_DIR``) is given but is not a directory.
    """
    for given, origin in ((data_dir, "--data-dir"), (os.environ.get(ENV_VAR) or None, f"${ENV_VAR}")):
        if given:
            p = Path(given).expanduser()
            if p.exists() and not p.is_dir():
                raise DataError(f"data directory {str(p)!r} (from {origin}) is a file, not a folder")
            if not p.is_dir():
                raise DataError(f"data directory {str(p)!r} (from {origin}) does not exist")
            return p.resolve()
    for p in _DEFAULT_ROOTS:
        if p.is_dir():
            return p.resolve()
    return None


@cache
def manifest() -> dict[str, dict[str, Any]]:
    """The shipped manifest: relative path (without ``.gz``) → ``{"sha256", "bytes"}`` of the content."""
    text = (resources.files("ready2unlearn") / "data" / "manifest.json").read_text(encoding="utf-8")
    return json.loads(text)


def find_file(root: Path | None, dataset: str, rel: str, dirs: tuple[str, ...]) -> Path:
    """Locates ``rel`` (with or without ``.gz``) in the first of ``dirs`` under ``root`` that holds it.

    Raises:
        DataError: If no root is configured or the file is in none of the directories.
    """
    if root is None:
        raise DataError(
            f"{dataset}: no data directory; pass --data-dir DIR or set ${ENV_VAR} to a folder holding {dirs[0]}/{rel}"
        )
    for d in dirs:
        for name in (rel, rel + ".gz"):
            p = root / d / name
            if p.is_file():
                return p
    for d in dirs:
        if (root / d / rel).is_dir():  # "missing" would send the user looking for a file that is there
            raise DataError(f"{dataset}: {str(root / d / rel)!r} is a folder, not a file; put the official file there")
    raise DataError(
        f"{dataset}: file {str(root / dirs[0] / rel)!r}[.gz] is missing; copy the official file there, "
        f"or point --data-dir / ${ENV_VAR} at a directory that has {dirs[0]}/{rel}"
    )


def read_verified(path: Path, dataset: str, manifest_key: str | None, verify: bool = True) -> bytes:
    """Reads a (possibly gzipped) file and checks its content against the manifest.

    Args:
        path: File to read; a ``.gz`` suffix means gzip.
        dataset: Dataset name for messages.
        manifest_key: Key in the manifest, or ``None`` for files without a known checksum.
        verify: Skip the checksum when ``False`` (structure is still checked by the caller).

    Raises:
        DataError: If the file cannot be read or decompressed, or its checksum does not match.
    """
    try:
        raw = path.read_bytes()
        data = gzip.decompress(raw) if path.suffix == ".gz" else raw
    except (OSError, EOFError, zlib.error, gzip.BadGzipFile) as e:
        raise DataError(f"{dataset}: file {str(path)!r} is corrupt or unreadable ({e}); replace it") from None
    if verify and manifest_key is not None:
        entry = manifest().get(manifest_key)
        if entry is not None and hashlib.sha256(data).hexdigest() != entry["sha256"]:
            raise DataError(
                f"{dataset}: file {str(path)!r} failed its sha256 check (corrupt or a different version); "
                "replace it with the official file"
            )
    return data

"""What a bring-your-own reader hands back, and the helpers every reader shares.

A reader (CSV, Parquet, npz, image folder, Hugging Face folder) turns a user's file into one or two
:class:`Part` s: ``{"all": part}`` when the file has no split of its own (the toolkit then makes a
stratified one), or ``{"train": part, "test": part}`` when it has. Labels stay raw here (integers or
strings); :mod:`ready2unlearn.data.byo` maps them to class indices over both parts at once.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

import numpy as np

from ready2unlearn.errors import ConfigError, DataError

#: ``tabular`` rows are feature vectors ``[F]``; ``image`` rows are ``[C, H, W]`` floats.
SourceKind = Literal["image", "tabular"]

_CHUNK = 1 << 20


@dataclass
class Part:
    """One part (train, test, or everything) of a user's dataset, before labels become class indices.

    Attributes:
        x: Inputs, float32: ``[N, F]`` features or ``[N, C, H, W]`` images.
        labels: Raw labels ``[N]``: integers (class indices) or strings (class names).
        ids: Sample ids ``[N]`` int64, or ``None`` for the row numbers.
        groups: Group columns, each ``[N]``.
    """

    x: np.ndarray
    labels: np.ndarray
    ids: np.ndarray | None = None
    groups: dict[str, np.ndarray] = field(default_factory=dict)


@dataclass
class Source:
    """A user's dataset as read from disk.

    Attributes:
        kind: ``image`` or ``tabular``.
        parts: ``{"all": ...}`` or ``{"train": ..., "test": ...}``.
        features: Names of the feature columns (tabular data), in input order.
        class_names: Names for integer labels when the file carries them (a ``ClassLabel`` feature).
        meta: Extra provenance for the card (keys read, keys ignored...).
    """

    kind: SourceKind
    parts: dict[str, Part]
    features: tuple[str, ...] = ()
    class_names: tuple[str, ...] = ()
    meta: dict[str, object] = field(default_factory=dict)


def existing(path: Path, fmt: str, folder: bool) -> Path:
    """``path`` if it exists as a file (``folder=False``) or folder; a one-line error otherwise.

    Raises:
        DataError: If it is missing or of the other type.
    """
    if not path.exists():
        raise DataError(f"{fmt}: {str(path)!r} does not exist")
    if folder and not path.is_dir():
        raise DataError(f"{fmt}: {str(path)!r} is a file; {fmt}:DIR takes a folder")
    if not folder and path.is_dir():
        raise DataError(f"{fmt}: {str(path)!r} is a folder; {fmt}:PATH takes a file")
    if not folder and path.stat().st_size == 0:
        raise DataError(f"{fmt}: file {str(path)!r} is empty")
    return path


def files_under(root: Path) -> list[Path]:
    """Every regular file below ``root``, sorted by relative path (the order fingerprints hash them in).

    Hidden files and folders (``.DS_Store``, ``.ipynb_checkpoints``) are left out: a file browser or an
    editor writes them, and they must not make the data look changed.
    """
    rel = {p: p.relative_to(root) for p in root.rglob("*") if p.is_file()}
    shown = [p for p, r in rel.items() if not any(s.startswith(".") for s in r.parts)]
    return sorted(shown, key=lambda p: rel[p].as_posix())


def fingerprint(path: Path) -> str:
    """sha256 of a file's content, or of a folder's sorted file list and their contents.

    A folder's hash covers each file's relative path and length as well as its bytes, so renaming or
    moving a file between class folders changes it too (hidden files are not covered: :func:`files_under`).

    Raises:
        DataError: If the path is missing or a file cannot be read.
    """
    h = hashlib.sha256()
    try:
        if path.is_dir():
            for p in files_under(path):
                h.update(f"{p.relative_to(path).as_posix()}\0{p.stat().st_size}\0".encode())
                _hash_into(h, p)
        elif path.is_file():
            _hash_into(h, path)
        else:
            raise DataError(f"{str(path)!r} does not exist")
    except OSError as e:
        raise DataError(f"cannot read {str(path)!r} ({e.strerror or e})") from None
    return h.hexdigest()


def _hash_into(h: hashlib._Hash, path: Path) -> None:
    with path.open("rb") as f:
        while chunk := f.read(_CHUNK):
            h.update(chunk)


def images_to_chw(x: np.ndarray, where: str) -> np.ndarray:
    """Image arrays as float32 ``[N, C, H, W]``: 8-bit pixels scaled to [0, 1], other numbers kept.

    ``[N, H, W]`` is grayscale; ``[N, H, W, C]`` with C in 1..4 is channels-last (MedMNIST, decoded
    images); ``[N, C, H, W]`` with C in 1..4 is already channels-first.

    Raises:
        DataError: If the shape is none of these or the values are not numbers.
    """
    if x.dtype.kind not in "biuf":
        raise DataError(f"{where}: images must be numbers, got dtype {x.dtype}")
    if x.ndim == 3:
        x = x[:, None]
    elif x.ndim == 4 and x.shape[-1] <= 4 < x.shape[1]:
        x = x.transpose(0, 3, 1, 2)
    elif not (x.ndim == 4 and x.shape[1] <= 4):
        raise DataError(f"{where}: images must be [N, H, W], [N, H, W, C] or [N, C, H, W] with 1-4 channels, "
                        f"got shape {list(x.shape)}")  # fmt: skip
    scale = 255.0 if x.dtype == np.uint8 else 1.0
    return np.ascontiguousarray(x, dtype=np.float32) / np.float32(scale)


def missing_extra(package: str, fmt: str) -> ConfigError:
    """The one-line error for a reader whose optional library is not installed."""
    return ConfigError(f'{fmt}: data needs the "{package}" package: pip install "ready2unlearn[data]"')

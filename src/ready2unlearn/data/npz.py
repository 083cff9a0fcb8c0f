"""NumPy ``.npz`` archives, including the MedMNIST release files (e.g. the paper's ``pathmnist.npz``).

Two layouts. With a split of its own (MedMNIST): ``train_images``, ``train_labels``, ``test_images``,
``test_labels`` (``val_*`` and other keys are left out and listed in the card). Without: ``images``
(or ``x``) and ``labels`` (or ``y``), split by the toolkit. ``label_col`` / ``id_col`` / ``group_col``
name other keys (``train_`` / ``test_`` prefixed in the split layout). Images ``[N, H, W(, C)]`` become
float ``[N, C, H, W]`` (8-bit pixels scaled to [0, 1]); a 2-D array ``[N, F]`` is tabular features.
Archives are read with ``allow_pickle=False``: an object array is refused, never unpickled.
"""

from __future__ import annotations

import zipfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ready2unlearn.data.source import Part, Source, SourceKind, existing, images_to_chw
from ready2unlearn.data.tabular import check_feature, group_values, unique_ids
from ready2unlearn.errors import DataError

X_KEYS = ("images", "x")
Y_KEYS = ("labels", "y")
PARTS = ("train", "test")


@dataclass(frozen=True)
class _Keys:
    """The archive keys of one part: inputs, labels, and the optional ids and group."""

    x: str
    y: str
    ids: str | None = None
    group: str | None = None

    def used(self) -> list[str]:
        return [k for k in (self.x, self.y, self.ids, self.group) if k is not None]


def read_npz(path: Path, label_col: str | None, id_col: str | None, group_col: str | None) -> Source:
    """Reads an ``.npz`` archive in either layout (see the module docstring).

    Raises:
        DataError: If the file is missing, empty, not an ``.npz`` archive, holds object arrays, lacks the
            expected keys, or its arrays do not line up.
    """
    existing(path, "npz", folder=False)
    where = f"npz: file {str(path)!r}"
    try:
        archive = np.load(path, allow_pickle=False)
    except (ValueError, OSError, EOFError, zipfile.BadZipFile) as e:
        # numpy falls back to unpickling whatever is not a zip or .npy file; allow_pickle=False refuses that.
        why = "not a zip of .npy arrays; pickled content is never loaded" if "pickle" in str(e) else str(e)
        raise DataError(f"{where} is not a readable .npz archive ({why})".splitlines()[0]) from None
    if not isinstance(archive, np.lib.npyio.NpzFile):
        raise DataError(f"{where} is a single .npy array, not an .npz archive of named arrays")
    try:
        keys = list(archive.files)
        split = any(k.startswith("train_") for k in keys)
        wanted = {p: _keys(keys, f"{p}_", label_col, id_col, group_col, where) for p in PARTS} if split else {
            "all": _keys(keys, "", label_col, id_col, group_col, where)
        }  # fmt: skip
        arrays = {k: archive[k] for ks in wanted.values() for k in ks.used()}
    except (ValueError, OSError, EOFError, zipfile.BadZipFile) as e:
        why = "it holds object arrays, which are never unpickled" if "pickle" in str(e) else str(e)
        raise DataError(f"{where} cannot be read ({why})".splitlines()[0]) from None
    finally:
        archive.close()
    parts = {p: _part(arrays, ks, group_col, where) for p, ks in wanted.items()}
    kinds = {_kind(part.x) for part in parts.values()}
    if len(kinds) > 1 or len({part.x.shape[1:] for part in parts.values()}) > 1:
        raise DataError(f"{where}: train and test inputs have different shapes")
    used = {k for ks in wanted.values() for k in ks.used()}
    meta = {"keys": sorted(used), "ignored_keys": sorted(set(keys) - used)}
    return Source(kinds.pop(), parts, meta=meta)


def _keys(
    keys: list[str], prefix: str, label_col: str | None, id_col: str | None, group_col: str | None, where: str
) -> _Keys:
    medmnist = "train_images/train_labels/test_images/test_labels (the MedMNIST layout)"
    layout = medmnist if prefix else f"images/labels (or x/y), or {medmnist}"

    def missing(name: str) -> DataError:
        return DataError(f"{where} has no array {name!r} (it has: {', '.join(keys) or 'none'}); expected {layout}")

    x = next((prefix + k for k in X_KEYS if prefix + k in keys), None)
    if x is None:
        raise missing(prefix + X_KEYS[0])
    y = prefix + label_col if label_col else next((prefix + k for k in Y_KEYS if prefix + k in keys), None)
    if y is None or y not in keys:
        raise missing(y or prefix + Y_KEYS[0])
    return _Keys(x, y, _optional(keys, prefix, id_col, "--id-col", where),
                 _optional(keys, prefix, group_col, "--group-col", where))  # fmt: skip


def _optional(keys: list[str], prefix: str, col: str | None, flag: str, where: str) -> str | None:
    if col is None:
        return None
    if prefix + col not in keys:
        raise DataError(f"{where} has no array {prefix + col!r} for {flag} (it has: {', '.join(keys)})")
    return prefix + col


def _part(arrays: dict[str, np.ndarray], keys: _Keys, group_col: str | None, where: str) -> Part:
    raw, labels = arrays[keys.x], arrays[keys.y]
    if labels.ndim == 2 and labels.shape[1] == 1:  # MedMNIST stores labels as [N, 1]
        labels = labels[:, 0]
    if labels.ndim != 1 or len(labels) != len(raw):
        raise DataError(f"{where}: {keys.y!r} must hold one label per row of {keys.x!r} ({len(raw)} rows), got "
                        f"shape {list(labels.shape)}")  # fmt: skip
    if raw.ndim == 2:
        check_feature(raw.reshape(-1), f"{where} array {keys.x!r}")
        x = raw.astype(np.float32)
    else:
        x = images_to_chw(raw, f"{where} array {keys.x!r}")
    ids = None if keys.ids is None else unique_ids(arrays[keys.ids], f"{where} array {keys.ids!r}")
    groups = {}
    if keys.group is not None and group_col is not None:
        groups[group_col] = group_values(arrays[keys.group])
    for name, values in (("ids", ids), ("group", groups.get(group_col or ""))):
        if values is not None and len(values) != len(x):
            raise DataError(f"{where}: the {name} array has {len(values)} rows, the inputs {len(x)}")
    return Part(x, labels, ids, groups)


def _kind(x: np.ndarray) -> SourceKind:
    return "tabular" if x.ndim == 2 else "image"

"""Bring your own data: ``csv:PATH``, ``parquet:PATH``, ``npz:PATH``, ``imagefolder:DIR``, ``hf:DIR``.

A dataset name with a format prefix is a user's file instead of a registered dataset. This module reads
it through the format's reader and turns the result into a :class:`Split` the way the built-in datasets
are: labels become class indices (integers as they are; strings numbered in sorted order, their names
kept), ids are the file's own (``id_col``) or its row numbers, a group column becomes a group for
``group:COLUMN=VALUE`` requests, and a file without a train/test split of its own gets a stratified one
(``data.test_fraction``, ``data.split_seed``). Tabular features are standardised with the training
part's mean and std; images stay in [0, 1].

The path is made absolute when the config is built, so a checkpoint's card names the file it was
trained on, with the file's (or folder's) sha256: ``r2u unlearn`` / ``r2u eval`` reload it from there and
refuse, in one line, when it has changed.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any, Protocol

import numpy as np
import torch

from ready2unlearn.data.base import ArrayDataset, DataSpec, Split, standardize
from ready2unlearn.data.hf_folder import read_hf
from ready2unlearn.data.imagefolder import read_imagefolder
from ready2unlearn.data.npz import read_npz
from ready2unlearn.data.source import Part, Source, fingerprint
from ready2unlearn.data.tabular import columns_to_source, read_csv, read_parquet
from ready2unlearn.errors import ConfigError, DataError

Reader = Callable[[Path, str | None, str | None, str | None], Source]


def _read_csv(path: Path, label: str | None, ids: str | None, group: str | None) -> Source:
    return columns_to_source(read_csv(path), f"csv: file {str(path)!r}", label, ids, group)


def _read_parquet(path: Path, label: str | None, ids: str | None, group: str | None) -> Source:
    return columns_to_source(read_parquet(path), f"parquet: file {str(path)!r}", label, ids, group)


READERS: dict[str, Reader] = {
    "csv": _read_csv, "parquet": _read_parquet, "npz": read_npz, "imagefolder": read_imagefolder, "hf": read_hf,
}  # fmt: skip

#: ``(form, kind, summary)`` rows for ``r2u ls datasets``.
FORMS = (
    ("csv:PATH", "tabular", "your CSV: header row, a label column, numeric features (--label-col/--id-col/"
                            "--group-col); stratified split"),
    ("parquet:PATH", "tabular", "your Parquet file, same columns as CSV (extra: data)"),
    ("npz:PATH", "image/tabular", "arrays images/labels, or train_/test_ ones (MedMNIST: the paper's pathmnist.npz)"),
    ("imagefolder:DIR", "image", "DIR/<class>/*.png|jpg, or DIR/train/<class>/... + DIR/test/<class>/..."),
    ("hf:DIR", "image/tabular", "a datasets folder from save_to_disk; train/test splits kept (extra: data)"),
)  # fmt: skip


def is_byo(name: str) -> bool:
    """Whether a dataset name is a bring-your-own ``FORMAT:PATH`` (registered names have no colon)."""
    return ":" in name


def parse(name: str) -> tuple[str, Path]:
    """``"csv:data/x.csv"`` → ``("csv", Path("data/x.csv"))``.

    Raises:
        ConfigError: If the format is unknown or the path is empty.
    """
    fmt, _, raw = name.partition(":")
    if fmt not in READERS:
        forms = ", ".join(form for form, _, _ in FORMS)
        # "data.name" leads, as config messages do: from_dict would otherwise prefix a bare "data."
        raise ConfigError(f"data.name {name!r}: unknown data format {fmt!r}; bring your own data as one of {forms}")
    if not raw.strip():
        raise ConfigError(f"data.name {name!r} names no path; write {fmt}:PATH")
    return fmt, Path(raw)


def normalize(name: str) -> str:
    """The name with an absolute path, so a card records where the data is, whatever the working directory."""
    fmt, path = parse(name)
    return f"{fmt}:{os.path.abspath(path.expanduser())}"


class Options(Protocol):
    """What :func:`load` reads from a ``DataConfig`` (which sits above this module)."""

    name: str
    label_col: str | None
    id_col: str | None
    group_col: str | None
    test_fraction: float
    split_seed: int


def load(cfg: Options) -> Split:
    """Reads the bring-your-own dataset ``cfg.name`` (``FORMAT:PATH``) and splits it.

    Args:
        cfg: The ``DataConfig``: columns, and ``test_fraction`` / ``split_seed`` for files without a split.

    Raises:
        ConfigError: If the format's optional library is not installed.
        DataError: On a missing, empty or malformed file (one line, naming the file and what is wrong).
    """
    fmt, path = parse(cfg.name)
    src = READERS[fmt](path, cfg.label_col, cfg.id_col, cfg.group_col)
    where = f"{fmt}: {'' if path.is_dir() else 'file '}{str(path)!r}"  # as the readers name it
    labels, class_names = _class_indices({k: p.labels for k, p in src.parts.items()}, src.class_names, where)
    meta: dict[str, Any] = {
        "source": {"format": fmt, "path": str(path), "sha256": fingerprint(path)},
        **{k: getattr(cfg, k) for k in ("label_col", "id_col", "group_col") if getattr(cfg, k) is not None},
        **src.meta,
    }
    if "all" in src.parts:
        train, test = _stratified(src.parts["all"], labels["all"], cfg.test_fraction, cfg.split_seed, where)
        meta.update(test_fraction=cfg.test_fraction, split_seed=cfg.split_seed)
    else:
        train, test = (_with_ids(src.parts[p], labels[p]) for p in ("train", "test"))
        meta["split"] = "the file's own train/test"
    if src.kind == "tabular":
        train.x, test.x = standardize(train.x, test.x, axis=(0,))
        meta.update(features=list(src.features), standardized="per feature, with the training part's mean and std")
    spec = DataSpec(src.kind, tuple(train.x.shape[1:]), len(class_names), class_names)
    return Split(cfg.name, _tensors(train), _tensors(test), spec, meta)


def check_unchanged(meta: Mapping[str, Any]) -> None:
    """Refuses a checkpoint's bring-your-own data when the recorded file is gone or its sha256 changed.

    Args:
        meta: The card's ``data.meta``; built-in datasets (no ``source``) pass untouched.

    Raises:
        DataError: One line naming the file and both fingerprints.
    """
    source = meta.get("source")
    if not isinstance(source, Mapping) or "sha256" not in source:
        return
    path, fmt = Path(str(source["path"])), source.get("format", "data")
    if not path.exists():
        raise DataError(f"the checkpoint was trained on {fmt}:{path}, which no longer exists; put that data back "
                        "there (cards record absolute paths)")  # fmt: skip
    now = fingerprint(path)
    if now != source["sha256"]:
        then = str(source["sha256"])[:12]
        raise DataError(f"{fmt}: {str(path)!r} changed since the checkpoint was trained on it (sha256 {then} "
                        f"then, {now[:12]} now); restore it, or train a new model")  # fmt: skip


def _class_indices(
    parts: dict[str, np.ndarray], names: tuple[str, ...], where: str
) -> tuple[dict[str, np.ndarray], tuple[str, ...]]:
    """Integer labels as they are (names ``"0".."K-1"`` unless given), strings numbered in sorted order."""
    values = {k: np.asarray(v).ravel() for k, v in parts.items()}
    if all(v.dtype.kind in "biuf" for v in values.values()):
        for v in values.values():
            bad = v[~np.isfinite(v.astype(np.float64)) | (v != np.round(v.astype(np.float64)))]
            if len(bad):
                raise DataError(f"{where}: label {bad[0].item()!r} is not an integer; labels must be integer class "
                                "indices or strings (class names)")  # fmt: skip
        ints = {k: v.astype(np.int64) for k, v in values.items()}
        low = min(int(v.min()) for v in ints.values())
        if low < 0:
            raise DataError(f"{where}: label {low} is negative; integer labels are class indices 0..K-1 "
                            "(or use strings, numbered in sorted order)")  # fmt: skip
        k = max(int(v.max()) for v in ints.values()) + 1
        classes = names if len(names) >= k else tuple(str(i) for i in range(k))
        present = np.unique(np.concatenate(list(ints.values())))
    else:
        text = {k: v.astype(str) for k, v in values.items()}
        classes = tuple(sorted(set(np.concatenate(list(text.values())).tolist())))
        ints = {k: np.searchsorted(np.asarray(classes), v).astype(np.int64) for k, v in text.items()}
        present = np.arange(len(classes))
    if len(present) < 2:
        raise DataError(f"{where}: every sample has the label {classes[int(present[0])]!r}; a classifier needs "
                        "at least two classes")  # fmt: skip
    return ints, classes


def _with_ids(part: Part, labels: np.ndarray) -> Part:
    """The part with class-index labels and its ids (the row numbers when the file has none)."""
    ids = np.arange(len(labels), dtype=np.int64) if part.ids is None else part.ids
    return Part(part.x, labels, ids, part.groups)


def _stratified(part: Part, labels: np.ndarray, test_fraction: float, seed: int, where: str) -> tuple[Part, Part]:
    """A stratified train/test split, as for ``digits``: sorted positions, ids and groups carried along."""
    from sklearn.model_selection import train_test_split

    whole = _with_ids(part, labels)
    try:
        tr, te = train_test_split(np.arange(len(labels)), test_size=test_fraction, stratify=labels,
                                  random_state=seed)  # fmt: skip
    except ValueError as e:
        raise DataError(f"{where}: cannot make a stratified split with data.test_fraction={test_fraction:g} "
                        f"({e})".splitlines()[0]) from None  # fmt: skip
    return _rows(whole, np.sort(tr)), _rows(whole, np.sort(te))


def _rows(part: Part, pos: np.ndarray) -> Part:
    ids = None if part.ids is None else part.ids[pos]
    return Part(part.x[pos], part.labels[pos], ids, {k: v[pos] for k, v in part.groups.items()})


def _tensors(part: Part) -> ArrayDataset:
    ids = np.arange(len(part.labels)) if part.ids is None else part.ids  # _with_ids has set them already
    return ArrayDataset(
        torch.from_numpy(np.ascontiguousarray(part.x, dtype=np.float32)),
        torch.as_tensor(part.labels, dtype=torch.int64),
        torch.as_tensor(ids, dtype=torch.int64),
        dict(part.groups),
    )

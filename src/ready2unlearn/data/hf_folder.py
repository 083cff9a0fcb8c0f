"""Hugging Face ``datasets`` folders written by ``save_to_disk`` (a ``Dataset`` or a ``DatasetDict``).

A ``DatasetDict`` with ``train`` and ``test`` keeps that split; one with ``train`` but no ``test`` (or a
single split, or a plain ``Dataset``) is split by the toolkit, and other splits are listed in the card as
ignored. Inputs come from the first column named ``image``, ``img``, ``pixel_values`` or ``x`` (images,
or a feature vector per row); without one, every column but the label, id and group is a numeric
feature, as for CSV. Labels come from ``label`` or ``labels`` unless ``label_col`` names another; a
``ClassLabel`` column gives the class names. Needs ``datasets`` (the ``data`` extra).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from ready2unlearn.data.source import Part, Source, SourceKind, existing, images_to_chw, missing_extra
from ready2unlearn.data.tabular import check_feature, columns_to_source, group_values, unique_ids
from ready2unlearn.errors import DataError

INPUT_COLUMNS = ("image", "img", "pixel_values", "x")
LABEL_COLUMNS = ("label", "labels")


def read_hf(path: Path, label_col: str | None, id_col: str | None, group_col: str | None) -> Source:
    """Reads a ``save_to_disk`` folder (see the module docstring).

    Raises:
        ConfigError: If ``datasets`` is not installed.
        DataError: If the folder is missing or not a saved dataset, has no usable split, or its columns
            break the column rules.
    """
    existing(path, "hf", folder=True)
    where = f"hf: {str(path)!r}"
    try:
        import datasets  # optional (the data extra), and slow to import: only this format needs it
    except ImportError:
        raise missing_extra("datasets", "hf") from None
    try:
        loaded = datasets.load_from_disk(str(path))
    except (OSError, ValueError, KeyError) as e:
        raise DataError(f"{where} is not a dataset saved with save_to_disk ({e})".splitlines()[0]) from None
    if isinstance(loaded, datasets.DatasetDict):
        names = list(loaded)
        if "train" in loaded and "test" in loaded:
            chosen = {"train": loaded["train"], "test": loaded["test"]}
        elif "train" in loaded or len(names) == 1:
            chosen = {"all": loaded["train" if "train" in loaded else names[0]]}
        else:
            raise DataError(f"{where} has splits {', '.join(names)}; it needs train (and test), or a single split")
        ignored = sorted(set(names) - {"train", "test"} - ({names[0]} if len(names) == 1 else set()))
    else:
        chosen, ignored = {"all": loaded}, []
    read = {part: _read_split(ds, where if part == "all" else f"{where} ({part})", label_col, id_col, group_col)
            for part, ds in chosen.items()}  # fmt: skip
    if len({(s.kind, s.parts["all"].x.shape[1:]) for s in read.values()}) > 1:
        raise DataError(f"{where}: train and test inputs have different shapes")
    last = list(read.values())[-1]
    parts = {part: s.parts["all"] for part, s in read.items()}
    return Source(last.kind, parts, last.features, last.class_names, meta={**last.meta, "ignored_splits": ignored})


def _read_split(ds: Any, where: str, label_col: str | None, id_col: str | None, group_col: str | None) -> Source:
    columns = list(ds.column_names)
    label = label_col or next((c for c in LABEL_COLUMNS if c in columns), LABEL_COLUMNS[0])
    feature = ds.features.get(label)
    class_names = tuple(feature.names) if hasattr(feature, "names") else ()  # a ClassLabel column
    table = ds.with_format("numpy")[:]  # one pass over the arrow table, column by column
    x_col = next((c for c in INPUT_COLUMNS if c in columns and c not in (label, id_col, group_col)), None)
    if x_col is None:
        for name, values in table.items():
            if np.asarray(values).ndim != 1:
                raise DataError(f"{where}: column {name!r} holds sequences, not one number per row; name it "
                                f"{INPUT_COLUMNS[-1]!r} to use it as the input")  # fmt: skip
        src = columns_to_source({k: _plain(v) for k, v in table.items()}, where, label, id_col, group_col)
        src.class_names = class_names
        return src
    for flag, col in (("--label-col", label), ("--id-col", id_col), ("--group-col", group_col)):
        if col is not None and col not in columns:
            raise DataError(f"{where} has no column {col!r} (it has: {', '.join(columns)}); name the right one "
                            f"with {flag}")  # fmt: skip
    raw = table[x_col]
    if raw.dtype == object:
        raise DataError(f"{where}: input column {x_col!r} holds rows of different shapes (or mixed grayscale and "
                        "colour images); make them one shape first")  # fmt: skip
    kind: SourceKind = "tabular" if raw.ndim == 2 else "image"
    if kind == "tabular":
        check_feature(raw.reshape(-1), f"{where} input column {x_col!r}")
        x = raw.astype(np.float32)
    else:
        x = images_to_chw(raw, f"{where} input column {x_col!r}")
    ids = None if id_col is None else unique_ids(table[id_col], f"{where} column {id_col!r}")
    groups = {} if group_col is None else {group_col: group_values(_plain(table[group_col]))}
    part = Part(x, _plain(table[label]), ids, groups)
    return Source(kind, {"all": part}, class_names=class_names, meta={"input_column": x_col})


def _plain(values: Any) -> np.ndarray:
    """A column as a numeric or string array (``datasets`` gives strings as object arrays at times)."""
    arr = np.asarray(values)
    return arr.astype(str) if arr.dtype == object else arr

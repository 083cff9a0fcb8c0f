"""Hugging Face ``datasets.Dataset`` → :class:`~ready2unlearn.data.ArrayDataset`.

A dataset from the hub (or built with ``Dataset.from_dict``) becomes aligned tensors: inputs from the first
column named ``x``, ``image``, ``pixel_values`` or ``input_ids``, labels from ``label`` or ``labels``, and
sample ids from ``id`` (else the row numbers, which a ``samples`` request then names). ``datasets`` is an
optional dependency (the ``hf`` extra).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import torch

from ready2unlearn.data.base import ArrayDataset
from ready2unlearn.errors import ConfigError, DataError

X_COLUMNS = ("x", "image", "pixel_values", "input_ids")
Y_COLUMNS = ("label", "labels")
ID_COLUMN = "id"


def looks_like_hf_dataset(data: Any) -> bool:
    """Whether ``data`` is a ``datasets`` object, judged without importing ``datasets``."""
    return type(data).__module__.split(".")[0] == "datasets"


def from_hf_dataset(
    ds: Any,
    *,
    x: str | None = None,
    y: str | None = None,
    ids: str | None = None,
    groups: Sequence[str] = (),
) -> ArrayDataset:
    """Converts one split of a Hugging Face dataset into an :class:`ArrayDataset`.

    Inputs keep their shape; ``uint8`` pixels become floats in [0, 1], other floats ``float32`` and integers
    (token ids) ``int64``. Rows of different lengths must be padded first (e.g. ``padding="max_length"``).

    Args:
        ds: A ``datasets.Dataset`` (one split, not a ``DatasetDict``).
        x: Input column (default: the first of ``x``, ``image``, ``pixel_values``, ``input_ids`` present).
        y: Integer label column (default: ``label`` or ``labels``).
        ids: Integer sample-id column (default: ``id`` when present, else the row numbers 0..N-1).
        groups: Columns kept as group columns, for ``group:COLUMN=VALUE`` requests.

    Returns:
        The dataset as tensors.

    Raises:
        ConfigError: If the ``datasets`` package is not installed.
        DataError: On a missing column, non-integer labels or ids, or ragged inputs.
    """
    # Imported here, and only here: `datasets` (with pandas and pyarrow, ~260 MB) is an optional extra, and
    # every other code path works without it.
    try:
        import datasets
    except ImportError:
        raise ConfigError(
            'a Hugging Face dataset needs the "datasets" package: pip install "ready2unlearn[hf]"'
        ) from None
    if isinstance(ds, datasets.DatasetDict):
        raise DataError(f"got a DatasetDict with splits {', '.join(ds)}; pass one split, e.g. ds['train']")
    if not isinstance(ds, datasets.Dataset):
        raise DataError(f"expected a datasets.Dataset, got {type(ds).__name__}")
    columns = ds.column_names
    x_col = _pick(x, X_COLUMNS, columns, "input")
    y_col = _pick(y, Y_COLUMNS, columns, "label")
    id_col = _pick(ids, (ID_COLUMN,), columns, "id", required=False)
    for g in groups:
        _pick(g, (), columns, "group")
    wanted = list(dict.fromkeys([x_col, y_col, *([id_col] if id_col else []), *groups]))
    table = ds.with_format("numpy", columns=wanted)[:]  # one pass over the arrow table, column by column

    labels = _integers(table[y_col], y_col, "labels")
    row_ids = _integers(table[id_col], id_col, "ids") if id_col else np.arange(len(labels), dtype=np.int64)
    if len(np.unique(row_ids)) != len(row_ids):
        raise DataError(f"column {id_col!r} holds duplicate ids; a deletion request must name each sample once")
    return ArrayDataset(
        x=_inputs(table[x_col], x_col),
        y=torch.as_tensor(labels),
        ids=torch.as_tensor(row_ids),
        groups={g: np.asarray(table[g]) for g in groups},
    )


def _pick(given: str | None, defaults: Sequence[str], columns: Sequence[str], what: str,
          required: bool = True) -> str | None:  # fmt: skip
    if given is not None:
        if given not in columns:
            raise DataError(f"the dataset has no {what} column {given!r} (it has: {', '.join(columns)})")
        return given
    for name in defaults:
        if name in columns:
            return name
    if not required:
        return None
    arg = {"input": "x", "label": "y"}.get(what, what)
    raise DataError(f"no {what} column found (looked for {', '.join(defaults)}; the dataset has "
                    f"{', '.join(columns)}): name it with {arg}=...")  # fmt: skip


def _integers(values: np.ndarray, column: str, what: str) -> np.ndarray:
    if values.dtype.kind not in "iu" or values.ndim != 1:
        hint = f" (encode them: ds.class_encode_column({column!r}))" if what == "labels" else ""
        raise DataError(f"{what} column {column!r} must hold one integer per row, got {values.dtype}{hint}")
    return values.astype(np.int64)


def _inputs(values: np.ndarray, column: str) -> torch.Tensor:
    if values.dtype == object:
        raise DataError(f"input column {column!r} has rows of different shapes; pad them to one length first")
    if values.dtype == np.uint8:  # 8-bit pixels, as decoded images arrive
        return torch.as_tensor(values.astype(np.float32) / 255.0)
    if values.dtype.kind == "f":
        return torch.as_tensor(values.astype(np.float32))
    if values.dtype.kind in "iub":
        return torch.as_tensor(values.astype(np.int64))
    raise DataError(f"input column {column!r} holds {values.dtype}, not numbers (tokenize text first)")

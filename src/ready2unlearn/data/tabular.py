"""Tabular files (CSV, Parquet) and the column rules every column-based source follows.

One column holds the label (``label`` unless ``label_col`` names another), optionally one the sample id
(``id_col``; default: the row numbers) and one a group (``group_col``, for ``group:COLUMN=VALUE``
requests). Every other column is a feature and must be numeric: categorical features are not encoded
for you, so a text column is a one-line error naming it. CSV needs only the standard library and numpy;
Parquet needs ``pyarrow`` (the ``data`` extra).
"""

from __future__ import annotations

import csv
import io
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from ready2unlearn.data.source import Part, Source, existing, missing_extra
from ready2unlearn.errors import DataError

DEFAULT_LABEL = "label"
_INT = re.compile(r"^\s*[-+]?\d+\s*$")


def read_csv(path: Path) -> dict[str, np.ndarray]:
    """The columns of a UTF-8 CSV file with a header row: numeric columns as numbers, others as strings.

    Raises:
        DataError: If the file is missing, empty, not UTF-8 CSV, has duplicate headers or ragged rows.
    """
    existing(path, "csv", folder=False)
    try:
        text = path.read_bytes().decode("utf-8-sig")  # -sig: spreadsheets often write a byte-order mark
        reader = csv.reader(io.StringIO(text, newline=""))
        # (line number, fields); blank lines are not rows, but messages count them like an editor does
        rows = [(reader.line_num, r) for r in reader if r]
    except UnicodeDecodeError:
        raise DataError(f"csv: file {str(path)!r} is not UTF-8 text") from None
    except csv.Error as e:
        raise DataError(f"csv: file {str(path)!r} is not valid CSV ({e})") from None
    except OSError as e:
        raise DataError(f"csv: cannot read {str(path)!r} ({e.strerror or e})") from None
    if not rows:
        raise DataError(f"csv: file {str(path)!r} is empty")
    header, body = [h.strip() for h in rows[0][1]], rows[1:]
    if not body:
        raise DataError(f"csv: file {str(path)!r} has a header but no rows")
    dupes = sorted({h for h in header if header.count(h) > 1})
    if dupes:
        raise DataError(f"csv: file {str(path)!r} repeats the column name(s) {', '.join(map(repr, dupes))}")
    for n, row in body:
        if len(row) != len(header):
            raise DataError(f"csv: file {str(path)!r} line {n} has {len(row)} fields but the header has "
                            f"{len(header)}; every row needs one value per column")  # fmt: skip
    return {name: _parse_column([r[i] for _, r in body]) for i, name in enumerate(header)}


def _parse_column(values: list[str]) -> np.ndarray:
    """Integers when every cell is one (exact, even past 2**53), else floats, else the strings as typed."""
    if all(_INT.match(v) for v in values):
        try:
            return np.asarray([int(v) for v in values], dtype=np.int64)
        except OverflowError:
            pass  # beyond int64: read as floats below
    try:
        return np.asarray(values, dtype=np.float64)
    except ValueError:
        return np.asarray([v.strip() for v in values], dtype=str)


def read_parquet(path: Path) -> dict[str, np.ndarray]:
    """The columns of a Parquet file as numpy arrays (strings for non-numeric columns).

    Raises:
        ConfigError: If ``pyarrow`` is not installed.
        DataError: If the file is missing, empty or not Parquet.
    """
    existing(path, "parquet", folder=False)
    try:
        import pyarrow.parquet as pq  # optional (the data extra): only Parquet files need it
    except ImportError:
        raise missing_extra("pyarrow", "parquet") from None
    try:
        table = pq.read_table(path)
    except Exception as e:  # pyarrow raises ArrowInvalid, OSError and others for a file that is not Parquet
        raise DataError(f"parquet: file {str(path)!r} is not a readable Parquet file ({e})".splitlines()[0]) from None
    if table.num_rows == 0:
        raise DataError(f"parquet: file {str(path)!r} has no rows")
    return {name: _arrow_column(table.column(name)) for name in table.column_names}


def _arrow_column(col: Any) -> np.ndarray:
    import pyarrow as pa

    if pa.types.is_integer(col.type) or pa.types.is_floating(col.type) or pa.types.is_boolean(col.type):
        # Nulls become NaN (floats) here and are reported as missing values by the feature check.
        return col.to_numpy().astype(np.float64) if col.null_count else col.to_numpy()
    return np.asarray(["" if v is None else str(v) for v in col.to_pylist()], dtype=str)


def columns_to_source(
    columns: Mapping[str, np.ndarray], where: str, label_col: str | None, id_col: str | None, group_col: str | None
) -> Source:
    """Splits named columns into label, ids, group and numeric features (everything else).

    Args:
        columns: Column name → values ``[N]`` (numbers or strings).
        where: ``FORMAT: 'PATH'`` prefix for messages.
        label_col: Label column (default ``label``).
        id_col: Integer sample-id column, or ``None`` for the row numbers.
        group_col: Group column kept for ``group:COLUMN=VALUE`` requests, or ``None``.

    Raises:
        DataError: On a missing column (the message lists those that exist), ids that are not unique
            integers, a non-numeric or incomplete feature column, or no feature column at all.
    """
    names = list(columns)
    label = label_col or DEFAULT_LABEL
    for flag, col in (("--label-col", label), ("--id-col", id_col), ("--group-col", group_col)):
        if col is not None and col not in columns:
            raise DataError(f"{where} has no column {col!r} (it has: {', '.join(names)}); name the right one "
                            f"with {flag}")  # fmt: skip
    ids = None if id_col is None else unique_ids(columns[id_col], f"{where} column {id_col!r}")
    used = {label, id_col, group_col}
    features = [n for n in names if n not in used]
    if not features:
        raise DataError(f"{where} has no feature column: every column is the label, id or group")
    for n in features:
        check_feature(columns[n], f"{where} feature column {n!r}")
    x = np.stack([columns[n].astype(np.float32) for n in features], axis=1)
    groups = {} if group_col is None else {group_col: group_values(columns[group_col])}
    part = Part(x, columns[label], ids, groups)
    return Source("tabular", {"all": part}, features=tuple(features))


def check_feature(values: np.ndarray, what: str) -> None:
    """Raises a one-line :class:`DataError` unless ``values`` are finite numbers."""
    if values.dtype.kind not in "biuf":
        row, text = next(((i, str(v)) for i, v in enumerate(values) if not _is_number(str(v))), (0, str(values[0])))
        if not text.strip():
            raise DataError(f"{what} has a missing value in data row {row + 1}; fill or drop it")
        raise DataError(f"{what} is not numeric (data row {row + 1}: {text!r}); only numeric features are "
                        "supported: encode it as numbers or drop it")  # fmt: skip
    bad = np.flatnonzero(~np.isfinite(values.astype(np.float64)))
    if len(bad):
        raise DataError(f"{what} has a missing or non-finite value in data row {bad[0] + 1}; fill or drop it")


def _is_number(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


def unique_ids(values: np.ndarray, what: str) -> np.ndarray:
    """Sample ids as int64; a one-line error unless they are unique integers."""
    v = np.asarray(values).ravel()
    if v.dtype.kind in "f" and np.all(np.isfinite(v)) and np.all(v == np.round(v)):
        v = v.astype(np.int64)
    if v.dtype.kind not in "iu":
        sample = next((x for x in v.tolist() if not isinstance(x, int)), v[0])
        raise DataError(f"{what} must hold integer sample ids, got {str(sample)!r}")
    uniq, counts = np.unique(v, return_counts=True)
    if len(uniq) != len(v):
        raise DataError(f"{what} holds duplicate sample ids (e.g. {int(uniq[counts > 1][0])}); every sample "
                        "needs its own id so a deletion request names it once")  # fmt: skip
    return v.astype(np.int64)


def group_values(values: np.ndarray) -> np.ndarray:
    """Group values: integers stay integers (``group:user=7`` matches them), anything else becomes text."""
    v = np.asarray(values).ravel()
    if v.dtype.kind in "iu":
        return v.astype(np.int64)
    if v.dtype.kind == "f" and np.all(np.isfinite(v)) and np.all(v == np.round(v)):
        return v.astype(np.int64)
    return v.astype(str)

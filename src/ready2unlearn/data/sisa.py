"""SISA's data layout: which shard and which slice every training row belongs to.

SISA (Bourtoule et al., "Machine Unlearning", IEEE S&P 2021) splits the training set into ``S`` disjoint
*shards*, trains one constituent model per shard, and feeds each shard to its model in ``R`` cumulative
*slices*, checkpointing after each. A deletion then retrains only the shards holding deleted rows, and each
from the checkpoint taken before the first slice that held one.

For that retraining to be *exact*, the layout of the rows that remain must not depend on which rows were
deleted: a model trained from scratch without them must put every remaining row in the same shard and slice.
So a row's place is a hash of the seed and its stable id (or of its owner's group value, so that all rows of
a user share one shard and a user's request touches one constituent), never a position or a permutation of
the current row count.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np

from ready2unlearn.config import check
from ready2unlearn.data.base import ArrayDataset
from ready2unlearn.errors import DataError


@dataclass
class SisaConfig:
    """SISA training layout (Bourtoule et al. 2021).

    Attributes:
        shards: Number of disjoint shards, one constituent model each (≥ 1).
        slices: Cumulative slices per shard, one checkpoint after each (≥ 1).
        aggregation: How constituents vote at inference: ``softmax`` (mean of their softmax outputs) or
            ``vote`` (majority of their labels, ties broken by the mean softmax).
        shard_by: A group column (e.g. ``owner``) whose rows must share one shard, so that a group request
            retrains a single constituent; ``null`` = shard by sample id.
        epochs_per_slice: Epochs of training after each slice is added; ``null`` = ``round(2E / (R + 1))``
            for a run of ``E`` epochs, which keeps the number of row visits of a shard equal to training on
            it for ``E`` epochs (slice ``r`` trains on ``r / R`` of the shard).
    """

    shards: int = 1
    slices: int = 1
    aggregation: Literal["softmax", "vote"] = "softmax"
    shard_by: str | None = None
    epochs_per_slice: int | None = None

    def __post_init__(self) -> None:
        check(self.shards >= 1, f"sisa.shards must be at least 1, got {self.shards}")
        check(self.slices >= 1, f"sisa.slices must be at least 1, got {self.slices}")
        check(self.epochs_per_slice is None or self.epochs_per_slice >= 1,
              f"sisa.epochs_per_slice must be at least 1 or null, got {self.epochs_per_slice}")  # fmt: skip

    def slice_epochs(self, epochs: int) -> int:
        """Epochs to train after each slice for a run configured with ``epochs`` epochs."""
        if self.epochs_per_slice is not None:
            return self.epochs_per_slice
        return max(1, round(2 * epochs / (self.slices + 1)))


def _bucket(keys: np.ndarray, seed: int, salt: str, buckets: int) -> np.ndarray:
    """A stable bucket in ``[0, buckets)`` for every key: the first 8 bytes of sha256(seed, salt, key)."""
    out = np.empty(len(keys), dtype=np.int64)
    for i, key in enumerate(keys.tolist()):
        digest = hashlib.sha256(f"{seed}:{salt}:{key}".encode()).digest()
        out[i] = int.from_bytes(digest[:8], "little") % buckets
    return out


@dataclass(frozen=True)
class SisaLayout:
    """Shard and slice of every row of one dataset.

    Attributes:
        shard: ``[N]`` shard of each row.
        slice: ``[N]`` slice of each row within its shard.
        shards: Number of shards.
        slices: Number of slices.
    """

    shard: np.ndarray
    slice: np.ndarray
    shards: int
    slices: int

    def rows(self, shard: int, upto_slice: int, exclude: np.ndarray | None = None) -> np.ndarray:
        """Positions of ``shard``'s rows in slices ``0..upto_slice``, minus ``exclude`` (a boolean row mask)."""
        keep = (self.shard == shard) & (self.slice <= upto_slice)
        if exclude is not None:
            keep &= ~exclude
        return np.flatnonzero(keep)

    def sizes(self) -> list[list[int]]:
        """Rows per ``[shard][slice]``."""
        return [[int(((self.shard == k) & (self.slice == r)).sum()) for r in range(self.slices)]
                for k in range(self.shards)]  # fmt: skip

    def to_dict(self) -> dict[str, Any]:
        """Card entry: the counts (the assignment itself is recomputed from the ids and the seed)."""
        return {"shards": self.shards, "slices": self.slices, "rows": self.sizes()}


def sisa_layout(data: ArrayDataset, cfg: SisaConfig, seed: int) -> SisaLayout:
    """Places every row of ``data`` in a shard and a slice, from its id (or group value) and ``seed`` only.

    Args:
        data: The training set (its ``ids`` must be unique; with ``cfg.shard_by`` it needs that group column).
        cfg: Shard and slice counts.
        seed: The training seed; another seed gives another (equally balanced) layout.

    Returns:
        A :class:`SisaLayout`; a row keeps its place in any subset of ``data`` that still contains it.

    Raises:
        DataError: If ``cfg.shard_by`` names a group column the data does not have.
    """
    ids = data.ids.numpy()
    if cfg.shard_by is None:
        shard_keys = ids
    elif cfg.shard_by in data.groups:
        shard_keys = np.asarray(data.groups[cfg.shard_by])
    else:
        known = ", ".join(sorted(data.groups)) or "none"
        raise DataError(f"sisa.shard_by={cfg.shard_by!r} is not a group column of this dataset (it has: {known})")
    return SisaLayout(
        shard=_bucket(shard_keys, seed, "shard", cfg.shards),
        slice=_bucket(ids, seed, "slice", cfg.slices),
        shards=cfg.shards,
        slices=cfg.slices,
    )

"""In-memory datasets, train/test splits and their fingerprints.

Everything the toolkit trains on fits in memory on a laptop (MNIST is 188 MB as float32), so a dataset is
just aligned tensors: inputs ``x``, integer labels ``y``, stable sample ``ids`` (the sample's index in the
source's own ordering, which is what a deletion request names) and optional group columns (owner/user
ids) for group requests. Batching is a shuffled index permutation: no DataLoader workers to
fork, and deterministic given a ``torch.Generator``.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np
import torch

Kind = Literal["image", "tabular", "text", "qa"]


@dataclass(frozen=True)
class DataSpec:
    """What a model needs to know about its inputs and outputs.

    Attributes:
        kind: ``"image"`` (float tensors ``[C, H, W]``), ``"tabular"`` (float feature vectors ``[F]``), ``"text"``
            (token-id tensors ``[L]``) or ``"qa"``.
        input_shape: Shape of one input, without the batch dimension.
        num_classes: Number of labels (0 for QA data).
        class_names: Human-readable label names, index = label.
        vocab_size: Token vocabulary size for text data (0 otherwise); id 0 is padding.
    """

    kind: Kind
    input_shape: tuple[int, ...]
    num_classes: int
    class_names: tuple[str, ...] = ()
    vocab_size: int = 0

    def to_dict(self) -> dict[str, Any]:
        """Plain-data form stored in model cards."""
        return {
            "kind": self.kind,
            "input_shape": list(self.input_shape),
            "num_classes": self.num_classes,
            "class_names": list(self.class_names),
            "vocab_size": self.vocab_size,
        }

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> DataSpec:
        """Inverse of :meth:`to_dict`."""
        return cls(
            kind=d["kind"],
            input_shape=tuple(d["input_shape"]),
            num_classes=int(d["num_classes"]),
            class_names=tuple(d.get("class_names", ())),
            vocab_size=int(d.get("vocab_size", 0)),
        )


@dataclass(frozen=True)
class ArrayDataset:
    """Aligned in-memory tensors for a classification dataset.

    Attributes:
        x: Inputs, ``[N, ...]`` (float images or long token ids).
        y: Labels, ``[N]`` int64.
        ids: Stable sample ids, ``[N]`` int64, unique within the source dataset.
        groups: Optional named group columns (e.g. an owner id per sample), each ``[N]``.
    """

    x: torch.Tensor
    y: torch.Tensor
    ids: torch.Tensor
    groups: Mapping[str, np.ndarray] = field(default_factory=dict)

    def __post_init__(self) -> None:
        n = len(self.x)
        if len(self.y) != n or len(self.ids) != n or any(len(g) != n for g in self.groups.values()):
            raise ValueError("x, y, ids and group columns must have the same length")

    def __len__(self) -> int:
        return len(self.y)

    @property
    def labels(self) -> np.ndarray:
        """Labels as a numpy array."""
        return self.y.numpy()

    def subset(self, index: np.ndarray | torch.Tensor | list[int]) -> ArrayDataset:
        """Rows at the given positions (not ids), as a new dataset sharing nothing mutable."""
        idx = torch.as_tensor(np.asarray(index, dtype=np.int64))
        np_idx = idx.numpy()
        return ArrayDataset(
            x=self.x[idx], y=self.y[idx], ids=self.ids[idx], groups={k: v[np_idx] for k, v in self.groups.items()}
        )

    def to(self, device: torch.device | str) -> ArrayDataset:
        """Copy with ``x`` and ``y`` moved to ``device`` (ids and groups stay on the CPU)."""
        return ArrayDataset(self.x.to(device), self.y.to(device), self.ids, self.groups)

    def batch_positions(
        self, batch_size: int, shuffle: bool = False, generator: torch.Generator | None = None
    ) -> Iterator[torch.Tensor]:
        """Yields row positions of each mini-batch (on the data's device); the last one may be smaller."""
        n = len(self)
        order = torch.randperm(n, generator=generator) if shuffle else torch.arange(n)
        for start in range(0, n, batch_size):
            yield order[start : start + batch_size].to(self.x.device)

    def batches(
        self, batch_size: int, shuffle: bool = False, generator: torch.Generator | None = None
    ) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        """Yields ``(x, y)`` mini-batches; the last one may be smaller."""
        for idx in self.batch_positions(batch_size, shuffle, generator):
            yield self.x[idx], self.y[idx]

    def fingerprint(self) -> str:
        """Short sha256 over inputs, labels and ids: equal fingerprints mean identical data."""
        h = hashlib.sha256()
        for t in (self.x, self.y, self.ids):
            h.update(str(tuple(t.shape)).encode())
            h.update(t.detach().cpu().contiguous().numpy().tobytes())
        return h.hexdigest()[:16]


@dataclass(frozen=True)
class Split:
    """A dataset's deterministic train/test split plus what models need to know about it.

    Attributes:
        name: Registered dataset name.
        train: Training data (deletion requests name ids in here).
        test: Held-out data.
        spec: Input/output description for model builders.
        meta: Provenance: files read, whether their checksums were verified, split parameters.
        val: Validation rows carved out of the training part (``data.validation``): no model trains on them,
            and they are not the test part. ``None`` when not asked for.
    """

    name: str
    train: ArrayDataset
    test: ArrayDataset
    spec: DataSpec
    meta: Mapping[str, Any] = field(default_factory=dict)
    val: ArrayDataset | None = None

    def fingerprints(self) -> dict[str, str]:
        """Fingerprints of the train, test (and validation) parts, recorded in every artifact card."""
        out = {"train": self.train.fingerprint(), "test": self.test.fingerprint()}
        if self.val is not None:
            out["val"] = self.val.fingerprint()
        return out


def standardize(train: np.ndarray, test: np.ndarray, axis: tuple[int, ...]) -> tuple[np.ndarray, np.ndarray]:
    """Scales both parts by the training part's mean and std over ``axis`` (float32)."""
    mean = train.mean(axis=axis, keepdims=True, dtype=np.float64)
    std = train.std(axis=axis, keepdims=True, dtype=np.float64) + 1e-8
    return ((train - mean) / std).astype(np.float32), ((test - mean) / std).astype(np.float32)


def stratified_subset(labels: np.ndarray, size: int, seed: int) -> np.ndarray:
    """Sorted positions of a class-balanced random subset of ``size`` rows (deterministic in ``seed``)."""
    if size >= len(labels):
        return np.arange(len(labels))
    from sklearn.model_selection import train_test_split

    keep, _ = train_test_split(np.arange(len(labels)), train_size=size, stratify=labels, random_state=seed)
    return np.sort(keep)

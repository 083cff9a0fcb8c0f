"""Simulated deletion requests for readiness training, drawn from the declared revocable set.

Ready2Unlearn (arXiv 2505.10845) splits the training data into a *revocable* set — data likely to be asked
for later: users who opted into deletion, a sensitive source, designated classes — and a *stable* set, and
simulates requests on the revocable set only. When nobody can say in advance what will be revoked, the
pool is the whole training set. Each draw is one simulated request of the deployment's kind:

- ``class``: pick one class present in the pool; F = pool samples of that class;
- ``random``: F = uniformly random pool samples;
- ``group``: pick one value of the group column present in the pool; F = pool rows of that group.

R is drawn from every training row outside the simulated request (other classes / other groups / rows
not in F). The paper scores retention on the stable set only; we include the rest of the revocable pool
because a real request for one revocable class must not damage the other revocable classes either — with
stable-only R the prototype lost 4 points of test-retain accuracy on exactly those classes.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from ready2unlearn.data.base import ArrayDataset
from ready2unlearn.data.request import DeletionRequest
from ready2unlearn.engine.method import Batch
from ready2unlearn.errors import RequestError
from ready2unlearn.readiness.config import ReadyConfig


@dataclass(frozen=True)
class RevocableSet:
    """Row positions of the revocable pool and the stable rest of a training set.

    Attributes:
        spec: The request spec that declared the pool (``None`` = whole training set).
        pool: Sorted positions of revocable rows.
        stable: Sorted positions of stable rows (every row when the pool is the whole set).
    """

    spec: str | None
    pool: np.ndarray
    stable: np.ndarray

    @classmethod
    def resolve(cls, train: ArrayDataset, spec: str | None, num_classes: int) -> RevocableSet:
        """Resolves ``spec`` against ``train`` (``None`` = the whole training set is revocable).

        Raises:
            RequestError: If the spec does not fit the data (unknown class, ids outside the split...).
        """
        everything = np.arange(len(train))
        if spec is None:
            return cls(None, everything, everything)
        pool = DeletionRequest.parse(spec).forget_positions(train, num_classes)
        return cls(spec, pool, np.setdiff1d(everything, pool))

    @property
    def whole(self) -> bool:
        """True when the whole training set is the pool."""
        return self.spec is None

    def describe(self, train: ArrayDataset) -> dict[str, Any]:
        """Card entry: the spec, sizes and a fingerprint of the revocable ids."""
        ids = np.asarray(train.ids)[self.pool].astype(np.int64)
        out = {
            "spec": self.spec or "all",
            "size": len(self.pool),
            "stable_size": len(self.stable) if not self.whole else 0,
            "ids_sha256": hashlib.sha256(ids.tobytes()).hexdigest()[:16],
        }
        if train.y.dim() == 1:  # class labels (a language model's labels are token sequences)
            out["classes"] = sorted(int(c) for c in np.unique(train.labels[self.pool]))
        return out


class RequestSampler:
    """Draws simulated (forget, retain) batches of the configured kind from a revocable set.

    Args:
        train: The training set (its tensors may live on the training device).
        cfg: Readiness knobs (``kind``, ``revocable``, ``group_column``, batch sizes).
        num_classes: Number of labels.
        seed: Seeds the draws (see :meth:`reseed`).

    Raises:
        RequestError: If the revocable set does not fit the data or cannot produce a request of ``kind``.
    """

    def __init__(self, train: ArrayDataset, cfg: ReadyConfig, num_classes: int, seed: int = 0):
        self.train = train
        self.cfg = cfg
        self.revocable = RevocableSet.resolve(train, cfg.revocable, num_classes)
        self.rng = np.random.default_rng(seed)
        self.forget_size = cfg.resolved_forget_size
        self.retain_size = cfg.resolved_retain_size
        labels, pool = train.labels, self.revocable.pool
        self._units: dict[Any, np.ndarray] = {}
        self._unit_of_row: np.ndarray | None = None
        if cfg.kind == "class":
            self._unit_of_row = labels
        elif cfg.kind == "group":
            if cfg.group_column not in train.groups:
                have = ", ".join(sorted(train.groups)) or "none"
                raise RequestError(f"ready.group_column {cfg.group_column!r} is not a column of the data ({have})")
            self._unit_of_row = np.asarray(train.groups[cfg.group_column])
        if self._unit_of_row is not None:
            units = self._unit_of_row[pool]
            self._units = {u: pool[units == u] for u in np.unique(units)}
            if len(np.unique(self._unit_of_row)) < 2:
                raise RequestError(f"ready.kind={cfg.kind}: the data has a single {cfg.kind}; nothing would remain")
        if len(pool) == 0:
            raise RequestError("the revocable set is empty")

    def reseed(self, *key: int) -> None:
        """Restarts the draws from ``key``.

        Training reseeds with ``(seed, epoch)``, so a resumed run draws the same requests as an
        uninterrupted one.
        """
        self.rng = np.random.default_rng(list(key))

    def sample_positions(self) -> tuple[np.ndarray, np.ndarray]:
        """Positions of one simulated request's forget batch and retain batch."""
        n = len(self.train)
        if self._unit_of_row is None:  # random
            pool = self.revocable.pool
            forget = self.rng.choice(pool, size=min(self.forget_size, len(pool)), replace=False)
            outside = np.ones(n, dtype=bool)
            outside[forget] = False
        else:
            keys = list(self._units)
            unit = keys[self.rng.integers(len(keys))]
            rows = self._units[unit]
            forget = self.rng.choice(rows, size=min(self.forget_size, len(rows)), replace=False)
            outside = self._unit_of_row != unit
        # Rejection sampling: the request is a small part of the data, so a few draws find enough rows
        # outside it without materialising the complement every step.
        retain = np.empty(0, dtype=np.int64)
        for _ in range(20):
            cand = self.rng.integers(0, n, size=2 * self.retain_size)
            retain = np.unique(np.concatenate([retain, cand[outside[cand]]]))
            if len(retain) >= self.retain_size:
                break
        if len(retain) == 0:
            raise RequestError("nothing outside the simulated request: readiness needs data to retain")
        return forget, self.rng.permutation(retain)[: self.retain_size]

    def unit_rows(self, row: int) -> np.ndarray:
        """Pool positions of the class or group that row ``row`` belongs to (a whole simulated request).

        Raises:
            RequestError: For ``random`` requests, which have no units.
        """
        if self._unit_of_row is None:
            raise RequestError("random requests have no class or group units")
        return self._units[self._unit_of_row[row]]

    def sample(self) -> Batch:
        """One simulated request as a :class:`~ready2unlearn.engine.method.Batch` on the data's device."""
        forget, retain = self.sample_positions()
        x, y = self.train.x, self.train.y
        f = torch.as_tensor(forget, device=x.device)
        r = torch.as_tensor(retain, device=x.device)
        return Batch(forget_x=x[f], forget_y=y[f], retain_x=x[r], retain_y=y[r])

"""Pool flooding: the revocable rows are fitted down to the level of unseen data, and no further.

A random (sample, group) request is honoured once its rows' mean loss reaches the retrained model's, and the
retrained model scores those rows like rows it never saw. How many unlearning steps a request takes then
follows how far below that level training pushed its rows: on the digits MLP (5 seeds) GA needed 1.30x the
standard model's steps from a pool at 0.021 nats, 0.58x from 0.046 and 0.28x from 0.072, whatever produced the
level (``benchmarks/readiness/random_cap/``). No variant of the meta-learning term moved it usefully.

Flooding (Ishida, Yamane, Sakai, Niu, Sugiyama 2020, "Do We Need Zero Training Loss After Achieving Zero
Training Error?", ICML) trains on ``|L − b| + b`` instead of ``L``: descent while the loss is above the flood
level ``b``, ascent once below. :class:`PoolFlooding` floods only the revocable rows of each batch, at ``b`` =
the model's mean loss on held-out rows, re-measured every epoch (the ``ready.cap=heldout`` measurement): the pool
is learned as well as unseen rows are predicted and is not memorised beyond that. The stable rows train as
usual. It costs one forward pass over at most 256 held-out rows per epoch, and nothing per step.

Measured on digits (random requests of 206 rows, 5 seeds): GA 0.56 [0.45, 0.69]x the standard model's steps
at −0.1 points before unlearning but −0.9 after; down-weighting the pool by 0.1 gave 0.28x at −0.2 / −0.3
points. The batches are scored in train mode (dropout), so an eval-mode pool ends below the level (0.050 vs
0.086). It is a learning-time baseline of the readiness bench (``flood: true``), not a shipped default.

Use it through :func:`~ready2unlearn.engine.fit.fit`'s ``batch_loss`` hook::

    flood = PoolFlooding(train, "random:0.3@7", num_classes, heldout=validation_rows)
    fit(model, train, test, cfg, batch_loss=flood)
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
from torch import nn

from ready2unlearn.config import check
from ready2unlearn.data.base import ArrayDataset
from ready2unlearn.readiness.cap import CapResolver
from ready2unlearn.readiness.sampler import RevocableSet
from ready2unlearn.task import ClassificationTask, Task


class PoolFlooding:
    """A ``batch_loss`` for :func:`~ready2unlearn.engine.fit.fit` that floods the revocable rows' loss.

    The batch loss is ``(Σ_stable ℓ_i + k · (|mean_pool ℓ − b| + b)) / n`` for a batch of ``n`` rows of which
    ``k`` are revocable: the plain mean where no revocable row is in the batch, or before ``start_epoch``.

    Args:
        train: The training set (positions index it).
        revocable: The revocable set as a request spec (``random:0.3@7``, ``class:3,5``...); ``None`` = every row.
        num_classes: Number of labels.
        heldout: Rows the model does not train on, where the level is measured (needed for ``level="heldout"``).
        level: ``heldout`` (the model's mean loss on ``heldout``, measured at the first step of every epoch), or
            a fixed level in the task loss's units.
        start_epoch: Train plainly until this epoch. The level of an untrained model is the uniform guess, so
            flooding from epoch 0 would hold the pool there for the whole first epoch.
        task: How rows are scored (default: a classifier over ``num_classes``).
        seed: Chooses the held-out rows measured when there are more than 256.

    Raises:
        ConfigError: For ``level="heldout"`` without held-out rows, or a negative ``start_epoch``.
    """

    def __init__(self, train: ArrayDataset, revocable: str | None, num_classes: int, *,
                 heldout: ArrayDataset | None = None, level: float | str = "heldout", start_epoch: int = 1,
                 task: Task | None = None, seed: int = 0) -> None:  # fmt: skip
        check(start_epoch >= 0, f"start_epoch must be ≥ 0, got {start_epoch}")
        check(level == "heldout" or (not isinstance(level, str) and level > 0),
              f"the flood level must be heldout or a positive number, got {level!r}")  # fmt: skip
        self.revocable = RevocableSet.resolve(train, revocable, num_classes)
        self.in_pool = torch.zeros(len(train), dtype=torch.bool)
        self.in_pool[torch.as_tensor(self.revocable.pool, dtype=torch.long)] = True
        self.level = CapResolver(level, train, self.revocable.pool, task or ClassificationTask(num_classes),
                                 heldout, seed)  # fmt: skip
        self.start_epoch = start_epoch
        #: Per epoch: batches flooded, batches whose revocable rows were below the level (so they were ascended),
        #: and the mean revocable-row loss.
        self.epochs: dict[int, dict[str, float]] = {}

    def __call__(self, model: nn.Module, losses: torch.Tensor, positions: torch.Tensor, step: int,
                 epoch: int) -> torch.Tensor:  # fmt: skip
        """The batch loss of per-row ``losses`` (rows ``positions`` of the training set)."""
        if epoch < self.start_epoch:
            return losses.mean()
        level = self.level.update(model, step, epoch)
        mask = self.in_pool.to(positions.device)[positions]
        k = int(mask.sum())
        if k == 0 or level is None:
            return losses.mean()
        pool = losses[mask].mean()
        stats = self.epochs.setdefault(epoch, {"batches": 0, "below": 0, "pool_loss_sum": 0.0})
        value = pool.item()  # one device sync per step, for the card's statistics
        stats["batches"] += 1
        stats["below"] += int(value < level)
        stats["pool_loss_sum"] += value
        flooded = (pool - level).abs() + level
        return (losses[~mask].sum() + k * flooded) / len(losses)

    def state_dict(self) -> dict[str, Any]:
        """The level measurements and per-epoch statistics (JSON data), for a resumed run."""
        return {"level": self.level.state_dict(), "epochs": {str(e): dict(v) for e, v in self.epochs.items()}}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restores :meth:`state_dict`."""
        self.level.load_state_dict(state.get("level") or {})
        self.epochs = {int(e): dict(v) for e, v in (state.get("epochs") or {}).items()}

    def summary(self, train: ArrayDataset) -> dict[str, Any]:
        """Card entry: the revocable set, the level and its measurements, and per epoch how often the pool sat below."""
        per_epoch = [{"epoch": e, "batches": int(v["batches"]), "below_fraction": v["below"] / v["batches"],
                      "pool_loss": v["pool_loss_sum"] / v["batches"]}
                     for e, v in sorted(self.epochs.items()) if v["batches"]]  # fmt: skip
        return {"revocable": self.revocable.describe(train), "start_epoch": self.start_epoch,
                "level": self.level.summary() or {"value": self.level.value}, "per_epoch": per_epoch,
                "pool_rows": int(np.asarray(self.revocable.pool).size)}  # fmt: skip

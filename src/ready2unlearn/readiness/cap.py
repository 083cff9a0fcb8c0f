"""Caps measured on the model instead of given in nats: ``ready.cap=initial`` and ``ready.cap=heldout``.

A fixed cap fits one loss scale only. On the pretrained SmolLM2 + LoRA the group default of 1 nat was passed
on every readiness step (the forget answers start near 2.4 nats/token), so the efficiency term passed no
gradient at all; on the tabular BatchNorm net the random-request cap of 0.3 sat below the training loss, so
the dual λ decayed to zero. What a request must reach is known, though: the retrained model's loss on the
forget rows, which is the loss of rows it never saw. On TOFU (SmolLM2, 4 epochs, 2 seeds) the retrained model
scored 2.01 / 2.00 nats/token on the forget authors against 2.02 / 2.02 on the unseen holdout authors.

- ``heldout``: the model's mean loss on held-out rows (rows it does not train on: a validation split),
  measured again at the first step of every epoch, since the level of unseen data moves as the model trains.
  It needs those rows: ``heldout=`` from Python, ``data.validation=N`` (rows carved out of the training split)
  in ``r2u train`` and the readiness bench, ``tofu.heldout_authors`` in the TOFU bench. They should be drawn
  like the rows a request names: on TOFU (seed 0) ten retain authors no model trained on sat at 2.27 after
  fine-tuning, above the 2.0 target. Only a number per epoch leaves them. On random requests of the digits MLP
  and the tabular net it gave no speed-up (``benchmarks/readiness/random_cap/``).
- ``initial``: the revocable pool's mean loss under the weights training starts from, measured once before
  the first update: the level of unseen data for a *pretrained* model, with no extra rows. Its pool has not
  been fine-tuned on yet, but nothing else either, so it sits above the retrained level (2.72 vs 2.0
  nats/token on TOFU, seed 0). It means nothing where the output layer starts from random weights — a model trained
  from scratch, or a pretrained encoder under a new classification head: their starting loss is the uniform
  guess.

- ``auto``: ``heldout`` when held-out rows are given, else ``initial``; the card records which one ran. It is
  the default of group requests (language models), whose loss scale no fixed number fits.

Both are measured in eval mode on up to :data:`CAP_ROWS` rows.
"""

from __future__ import annotations

import dataclasses
import warnings
from typing import TYPE_CHECKING, Any

import numpy as np
import torch
from torch import nn

from ready2unlearn.data.base import ArrayDataset
from ready2unlearn.errors import ConfigError
from ready2unlearn.task import Task

if TYPE_CHECKING:  # config.py imports this module for MEASURED_CAPS
    from ready2unlearn.readiness.config import ReadyConfig

#: Rows a measured cap is averaged over (a seeded subset when there are more).
CAP_ROWS = 256
#: Rows per forward pass while measuring.
CAP_BATCH = 32
#: Said when ``ready.cap=auto`` has no held-out rows to measure on.
AUTO_WITHOUT_HELDOUT = (
    "ready.cap=auto found no held-out rows, so the cap is the revocable rows' loss under the starting weights "
    "(ready.cap=initial): the level of unseen data for a pretrained model, the uniform guess for one trained from "
    "scratch or under a new head. Pass rows the model does not train on (heldout=, ReadyTrainer's eval_dataset, "
    "data.validation=N) to measure it there"
)
#: The caps measured on the model, by ``ready.cap`` value.
MEASURED_CAPS = ("initial", "heldout", "auto")


def cap_mode(cap: float | str, heldout: ArrayDataset | None) -> str | None:
    """How ``cap`` is measured given the rows at hand: ``initial``/``heldout``, or ``None`` for a number.

    ``auto`` resolves to ``heldout`` when there are held-out rows, else to ``initial``.
    """
    if not isinstance(cap, str):
        return None
    if cap == "auto":
        return "heldout" if heldout is not None and len(heldout) > 0 else "initial"
    return cap


def mean_loss(model: nn.Module, data: ArrayDataset, rows: np.ndarray, task: Task, *, seed: int = 0) -> dict[str, Any]:
    """Mean per-row task loss of ``data[rows]`` (at most :data:`CAP_ROWS` of them, seeded), in eval mode.

    Returns:
        ``{"cap": mean loss, "rows": rows measured}``.
    """
    rows = np.asarray(rows)
    if len(rows) > CAP_ROWS:
        rows = np.sort(np.random.default_rng(seed).choice(rows, size=CAP_ROWS, replace=False))
    was = model.training
    model.eval()
    total = 0.0
    try:
        with torch.no_grad():
            for start in range(0, len(rows), CAP_BATCH):
                idx = torch.as_tensor(rows[start : start + CAP_BATCH], device=data.x.device)
                total += task.per_sample_loss(model, data.x[idx], data.y[idx]).sum().item()
    finally:
        model.train(was)
    return {"cap": total / len(rows), "rows": len(rows)}


def measured_cap(cap: float | str, model: nn.Module, heldout: ArrayDataset | None, task: Task, *,
                 seed: int = 0) -> float | str:  # fmt: skip
    """``cap`` as a number when it is one or measured on held-out rows given (their mean loss now); else the mode.

    A cap still a string on return (``initial``, or ``heldout`` without rows) is known only to a training run.
    """
    mode = cap_mode(cap, heldout)
    if mode == "heldout" and heldout is not None:
        return mean_loss(model, heldout, np.arange(len(heldout)), task, seed=seed)["cap"]
    return cap if mode is None else mode


def initial_cap(
    model: nn.Module, train: ArrayDataset, pool: np.ndarray, task: Task, *, step: int, seed: int = 0
) -> dict[str, Any]:
    """Mean per-row task loss of the revocable pool under the model's current (starting) weights.

    Args:
        model: The model at the first training step, before any update.
        train: The training set the pool indexes.
        pool: Positions of the revocable rows in ``train``.
        task: How the model is scored.
        step: The training step of the call; must be 0 (the weights must still be the starting ones).
        seed: Chooses the rows when the pool has more than :data:`CAP_ROWS`.

    Returns:
        ``{"cap": mean loss, "rows": rows measured}``.

    Raises:
        ConfigError: If ``step`` is not 0 (a run resumed without the measurement in its state).
    """
    if step != 0:
        raise ConfigError(f"ready.cap=initial is measured on the weights training starts from, but readiness first "
                          f"ran at step {step}; give ready.cap a number")  # fmt: skip
    return mean_loss(model, train, pool, task, seed=seed)


class CapResolver:
    """Turns ``ready.cap`` into the number each step uses: as given, or measured (``initial``, ``heldout``).

    Call :meth:`update` at every training step, before the cap is used; it measures when due and returns the
    current cap (``None`` only for ``heldout`` before its first measurement, which the first call makes).
    :meth:`applied` puts the current value into a ready config.

    Args:
        cap: ``ready.cap``: a number, ``initial``, ``heldout`` or ``auto`` (resolved by :func:`cap_mode`).
        train: The training set.
        pool: Positions of the revocable rows in ``train`` (``initial`` measures on them).
        task: How the model is scored.
        heldout: Rows the model does not train on (needed for ``heldout``).
        seed: Chooses the rows measured when there are more than :data:`CAP_ROWS`.

    Raises:
        ConfigError: For ``heldout`` without held-out rows.
    """

    def __init__(self, cap: float | str, train: ArrayDataset, pool: np.ndarray, task: Task,
                 heldout: ArrayDataset | None = None, seed: int = 0) -> None:  # fmt: skip
        self.requested = cap if isinstance(cap, str) else None
        self.mode = cap_mode(cap, heldout)
        if self.requested == "auto" and self.mode == "initial":
            warnings.warn(AUTO_WITHOUT_HELDOUT, stacklevel=3)
        if self.mode == "heldout" and (heldout is None or len(heldout) == 0):
            raise ConfigError("ready.cap=heldout is the model's loss on rows it does not train on: pass them as "
                              "heldout= (a validation split), or give ready.cap a number")  # fmt: skip
        self.value: float | None = None if self.mode else float(cap)
        self.train, self.pool, self.task, self.heldout, self.seed = train, pool, task, heldout, seed
        #: Every measurement made: ``{"epoch", "cap", "rows"}``.
        self.measurements: list[dict[str, Any]] = []

    def update(self, model: nn.Module, step: int, epoch: int) -> float | None:
        """The cap for this step, measuring first when due (``initial``: at step 0; ``heldout``: once per epoch)."""
        if self.mode == "initial" and self.value is None:
            self._record(epoch, initial_cap(model, self.train, self.pool, self.task, step=step, seed=self.seed))
        elif self.mode == "heldout" and (not self.measurements or self.measurements[-1]["epoch"] != epoch):
            assert self.heldout is not None
            self._record(epoch, mean_loss(model, self.heldout, np.arange(len(self.heldout)), self.task,
                                          seed=self.seed))  # fmt: skip
        return self.value

    def applied(self, cfg: ReadyConfig) -> ReadyConfig:
        """``cfg`` with ``cap`` set to the current value (``cfg`` itself while nothing is measured or changed)."""
        if self.value is None or self.value == cfg.cap:
            return cfg
        return dataclasses.replace(cfg, cap=self.value)

    def _record(self, epoch: int, measured: dict[str, Any]) -> None:
        self.value = float(measured["cap"])
        self.measurements.append({"epoch": epoch, **measured})

    def state_dict(self) -> dict[str, Any]:
        """The measurements so far (JSON data)."""
        return {"value": self.value, "measurements": list(self.measurements)}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restores :meth:`state_dict` (a resumed run does not measure ``initial`` again)."""
        if self.mode and state.get("measurements"):
            self.measurements = [dict(m) for m in state["measurements"]]
            self.value = float(state["value"])

    def summary(self) -> dict[str, Any] | None:
        """Card entry for a measured cap: how (and what was asked, for ``auto``), every measurement; else ``None``."""
        if not self.mode:
            return None
        out: dict[str, Any] = {"mode": self.mode, "measurements": self.measurements}
        if self.requested != self.mode:
            out["requested"] = self.requested
        return out

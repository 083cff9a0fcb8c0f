"""``ready.cap=initial``: the forget-term cap measured on the weights training starts from.

A fixed cap in nats fits one loss scale only. On the pretrained SmolLM2 + LoRA the group default of 1 nat was
passed on every readiness step (the forget answers start near 2.4 nats/token), so the efficiency term passed
no gradient at all. When a *pretrained* model is fine-tuned, its loss on the revocable rows before it has
seen them is the level a model that never saw them sits at: on TOFU the model retrained without the forget
authors scored 2.46 nats/token on them against 2.4 for the pretrained model (1-epoch smoke run). That is the
level a simulated request must reach to be honoured, so it is the cap.

It is measured once, on the first training step (before the first update), in eval mode, on up to
:data:`CAP_ROWS` rows of the revocable pool. It means nothing where the output layer starts from random
weights — a model trained from scratch, or a pretrained encoder under a new classification head: their
starting loss is the uniform guess, not the level of unseen data. Use a number there.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

from ready2unlearn.data.base import ArrayDataset
from ready2unlearn.errors import ConfigError
from ready2unlearn.task import Task

#: Pool rows the initial loss is averaged over (a seeded subset when the pool is larger).
CAP_ROWS = 256
#: Rows per forward pass while measuring.
CAP_BATCH = 32


def initial_cap(
    model: nn.Module, train: ArrayDataset, pool: np.ndarray, task: Task, *, step: int, seed: int = 0
) -> dict[str, float | int]:
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
    rows = np.asarray(pool)
    if len(rows) > CAP_ROWS:
        rows = np.sort(np.random.default_rng(seed).choice(rows, size=CAP_ROWS, replace=False))
    was = model.training
    model.eval()
    total = 0.0
    try:
        with torch.no_grad():
            for start in range(0, len(rows), CAP_BATCH):
                idx = torch.as_tensor(rows[start : start + CAP_BATCH], device=train.x.device)
                total += task.per_sample_loss(model, train.x[idx], train.y[idx]).sum().item()
    finally:
        model.train(was)
    return {"cap": total / len(rows), "rows": len(rows)}

"""Batched inference helpers used by training, unlearning and verification."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from ready2unlearn.data.base import ArrayDataset


@torch.no_grad()
def predict_logits(model: nn.Module, data: ArrayDataset, batch_size: int = 1024) -> torch.Tensor:
    """Logits ``[N, C]`` of ``model`` on ``data`` in eval mode (restores the previous mode), on the CPU."""
    was_training = model.training
    model.eval()
    device = next(model.parameters()).device
    out = [model(x.to(device)).float().cpu() for x, _ in data.batches(batch_size)]
    model.train(was_training)
    return torch.cat(out) if out else torch.empty(0, 0)


def accuracy_and_loss(model: nn.Module, data: ArrayDataset, batch_size: int = 1024) -> tuple[float, float]:
    """Top-1 accuracy and mean cross-entropy of ``model`` on ``data`` (``nan`` for an empty set)."""
    if len(data) == 0:
        return float("nan"), float("nan")
    logits = predict_logits(model, data, batch_size)
    y = data.y.cpu()
    return (logits.argmax(1) == y).float().mean().item(), F.cross_entropy(logits, y).item()

"""How a model is scored on a batch: the one place that knows "logits" and "task loss".

Methods never call ``model(x)`` directly; they go through a :class:`ClassificationTask`, whose
``params`` argument switches between an ordinary forward (``None``) and ``torch.func.functional_call``
with a parameter dict. That single switch is what lets readiness training run the *same* method loss
inside a differentiable inner loop. Language-model tasks plug in here later with the same interface.
"""

from __future__ import annotations

from collections.abc import Mapping

import torch
import torch.nn.functional as F
from torch import nn
from torch.func import functional_call

Params = Mapping[str, torch.Tensor]


def forward(model: nn.Module, x: torch.Tensor, params: Params | None = None) -> torch.Tensor:
    """``model(x)``, or the same forward with ``params`` substituted (buffers and missing keys from ``model``)."""
    if params is None:
        return model(x)
    return functional_call(model, dict(params), (x,), strict=False)


class ClassificationTask:
    """Cross-entropy classification over logits ``[B, C]``."""

    kind = "classification"

    def __init__(self, num_classes: int) -> None:
        self.num_classes = num_classes

    def logits(self, model: nn.Module, x: torch.Tensor, params: Params | None = None) -> torch.Tensor:
        """Logits ``[B, C]``."""
        return forward(model, x, params)

    def loss(self, model: nn.Module, x: torch.Tensor, y: torch.Tensor, params: Params | None = None) -> torch.Tensor:
        """Mean cross-entropy of the model on ``(x, y)``."""
        return F.cross_entropy(self.logits(model, x, params), y)

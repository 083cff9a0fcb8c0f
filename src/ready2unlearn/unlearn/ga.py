"""Gradient ascent (GA): maximise the task loss on the forget set.

Thudi et al. 2022, "Unrolling SGD: Understanding Factors Influencing Machine Unlearning"; the baseline of
every unlearning benchmark since. With forget batch :math:`B_f`:

    L_GA(θ) = −(1/|B_f|) Σ_{(x,y)∈B_f} ℓ(f_θ(x), y)

It forgets fast and damages the rest of the model just as fast, which is why the stop rule matters.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from ready2unlearn.config import check
from ready2unlearn.engine.method import Batch, MethodConfig, UnlearningMethod, register_method
from ready2unlearn.task import Params


@dataclass
class GAConfig(MethodConfig):
    """Gradient ascent. Defaults from the pilot sweep (``benchmarks/unlearn_pilot``)."""

    name: str = "ga"
    lr: float = 3e-4  # pilot sweep: benchmarks/unlearn_pilot


@register_method("ga", GAConfig, "gradient ascent on the forget set", "Thudi et al. 2022")
class GradientAscent(UnlearningMethod):
    """``loss = −CE(D_f)``."""

    def loss(
        self, model: nn.Module, batch: Batch, params: Params | None = None, step: int = 0
    ) -> tuple[torch.Tensor, dict[str, float]]:
        """Negated forget cross-entropy."""
        forget = self.task.loss(model, batch.forget_x, batch.forget_y, params)
        return -forget, {"forget_loss": forget.item()}


def check_weight(value: float, key: str) -> None:
    """Validation helper for non-negative loss weights."""
    check(value >= 0, f"method.{key} must be ≥ 0, got {value}")

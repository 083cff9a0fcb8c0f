"""Gradient difference: ascent on the forget set, descent on the retain set.

Liu et al. 2022, "Continual Learning and Private Unlearning" (the GradDiff baseline of TOFU, Maini et al.
2024). With forget batch :math:`B_f`, retain batch :math:`B_r`:

    L(θ) = −w_f · CE(θ; B_f) + w_r · CE(θ; B_r)
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from ready2unlearn.engine.method import Batch, MethodConfig, UnlearningMethod, register_method
from ready2unlearn.task import Params
from ready2unlearn.unlearn.ga import check_weight


@dataclass
class GradDiffConfig(MethodConfig):
    """Attributes: forget_weight (w_f), retain_weight (w_r)."""

    name: str = "grad_diff"
    lr: float = 3e-4  # pilot sweep: benchmarks/unlearn_pilot
    forget_weight: float = 1.0
    retain_weight: float = 1.0

    def __post_init__(self) -> None:
        super().__post_init__()
        check_weight(self.forget_weight, "forget_weight")
        check_weight(self.retain_weight, "retain_weight")


@register_method("grad_diff", GradDiffConfig, "ascent on D_f + descent on D_r", "Liu et al. 2022")
class GradDiff(UnlearningMethod):
    """``loss = −w_f·CE(D_f) + w_r·CE(D_r)``."""

    uses_retain = True

    def loss(
        self, model: nn.Module, batch: Batch, params: Params | None = None, step: int = 0
    ) -> tuple[torch.Tensor, dict[str, float]]:
        """Weighted difference of retain and forget cross-entropy."""
        cfg: GradDiffConfig = self.config  # type: ignore[assignment]
        forget = self.task.loss(model, batch.forget_x, batch.forget_y, params)
        retain = self.task.loss(model, batch.retain_x, batch.retain_y, params)
        loss = -cfg.forget_weight * forget + cfg.retain_weight * retain
        return loss, {"forget_loss": forget.item(), "retain_loss": retain.item()}

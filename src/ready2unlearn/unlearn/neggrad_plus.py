"""NegGrad+: a convex mix of descent on the retain set and ascent on the forget set.

Kurmanji, Triantafillou, Hayes, Triantafillou 2023, "Towards Unbounded Machine Unlearning" (NeurIPS), the
NegGrad+ baseline. With forget batch :math:`B_f`, retain batch :math:`B_r` and mixing weight α ∈ (0, 1):

    L(θ) = α · CE(θ; B_r) − (1 − α) · CE(θ; B_f)

It is GradDiff with the two weights tied to sum to one; α close to 1 keeps the ascent a small push
against a strong retain anchor, which is what makes it more stable than plain gradient ascent.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from ready2unlearn.config import check
from ready2unlearn.engine.method import Batch, MethodConfig, UnlearningMethod, register_method
from ready2unlearn.task import Params


@dataclass
class NegGradPlusConfig(MethodConfig):
    """Attributes: alpha (α, the retain share of the loss; 1 − α goes to the forget ascent)."""

    name: str = "neggrad_plus"
    lr: float = 1e-2  # pilot sweep: benchmarks/unlearn_pilot
    alpha: float = 0.95

    def __post_init__(self) -> None:
        super().__post_init__()
        check(0 < self.alpha < 1, f"method.alpha must be in (0, 1), got {self.alpha}")


@register_method("neggrad_plus", NegGradPlusConfig, "α·descent on D_r − (1−α)·ascent on D_f", "Kurmanji et al. 2023")
class NegGradPlus(UnlearningMethod):
    """``loss = α·CE(D_r) − (1−α)·CE(D_f)``."""

    uses_retain = True

    def loss(
        self, model: nn.Module, batch: Batch, params: Params | None = None, step: int = 0
    ) -> tuple[torch.Tensor, dict[str, float]]:
        """Convex combination of retain descent and forget ascent."""
        cfg: NegGradPlusConfig = self.config  # type: ignore[assignment]
        forget = self.task.loss(model, batch.forget_x, batch.forget_y, params)
        retain = self.task.loss(model, batch.retain_x, batch.retain_y, params)
        loss = cfg.alpha * retain - (1 - cfg.alpha) * forget
        return loss, {"forget_loss": forget.item(), "retain_loss": retain.item()}

"""Gradient ascent with a KL anchor to the original model on the retain set.

Maini et al. 2024, "TOFU: A Task of Fictitious Unlearning for LLMs" (the KL baseline). With the frozen
pre-unlearning model :math:`θ_0`:

    L(θ) = −CE(θ; B_f) + w_kl · (1/|B_r|) Σ_{x∈B_r} KL(p_{θ_0}(·|x) ‖ p_θ(·|x))
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from ready2unlearn.data.request import RequestViews
from ready2unlearn.engine.method import Batch, Context, MethodConfig, UnlearningMethod, register_method
from ready2unlearn.task import Params
from ready2unlearn.unlearn.ga import check_weight


def kl_to_reference(ref_logits: torch.Tensor, logits: torch.Tensor, temperature: float = 1.0) -> torch.Tensor:
    """Batch-mean ``KL(softmax(ref/T) ‖ softmax(logits/T))``."""
    return F.kl_div(
        F.log_softmax(logits / temperature, -1), F.log_softmax(ref_logits / temperature, -1),
        reduction="batchmean", log_target=True,
    )  # fmt: skip


@dataclass
class GAKLConfig(MethodConfig):
    """Attributes: kl_weight (w_kl)."""

    name: str = "ga_kl"
    lr: float = 3e-4  # pilot sweep: benchmarks/unlearn_pilot
    kl_weight: float = 1.0

    def __post_init__(self) -> None:
        super().__post_init__()
        check_weight(self.kl_weight, "kl_weight")


@register_method("ga_kl", GAKLConfig, "ascent on D_f + KL to the original model on D_r", "Maini et al. 2024")
class GAKL(UnlearningMethod):
    """``loss = −CE(D_f) + w_kl·KL(p_orig ‖ p_θ)`` on D_r."""

    uses_retain = True

    def prepare(self, model: nn.Module, views: RequestViews, ctx: Context) -> None:
        """Snapshots the original model as the KL reference."""
        self.snapshot_reference(model)

    def loss(
        self, model: nn.Module, batch: Batch, params: Params | None = None, step: int = 0
    ) -> tuple[torch.Tensor, dict[str, float]]:
        """Negated forget cross-entropy plus the retain-set KL anchor."""
        cfg: GAKLConfig = self.config  # type: ignore[assignment]
        forget = self.task.loss(model, batch.forget_x, batch.forget_y, params)
        kl = kl_to_reference(self.reference_logits(batch.retain_x), self.task.logits(model, batch.retain_x, params))
        return -forget + cfg.kl_weight * kl, {"forget_loss": forget.item(), "retain_kl": kl.item()}

"""Negative Preference Optimization (NPO).

Zhang, Lin, Bai, Mei 2024, "Negative Preference Optimization: From Catastrophic Collapse to Effective
Unlearning" (arXiv 2404.05868). DPO with only a negative (dispreferred) response; for a classifier the
"response" is the true label y of a forget sample, π its softmax probability and π_ref the frozen
pre-unlearning model's:

    L_NPO(θ) = (2/β) · E_{B_f} [ log(1 + (π_θ(y|x) / π_ref(y|x))^β) ]
             = (2/β) · E_{B_f} [ softplus(β · (log π_θ(y|x) − log π_ref(y|x))) ]
               + w_r · CE(θ; B_r)                      (optional retain term, "NPO+RT")

As β → 0 the gradient tends to GA's; for β > 0 each sample's ascent weight 2·σ(β·log-ratio) decays as the
sample is forgotten, which is what keeps NPO from collapsing the model.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from ready2unlearn.config import check
from ready2unlearn.data.request import RequestViews
from ready2unlearn.engine.method import Batch, Context, MethodConfig, UnlearningMethod, register_method
from ready2unlearn.task import Params, Task
from ready2unlearn.unlearn.ga import check_weight


@dataclass
class NPOConfig(MethodConfig):
    """Attributes: beta (inverse temperature β), retain_weight (w_r; 0 = plain NPO)."""

    name: str = "npo"
    lr: float = 3e-4  # pilot sweep: benchmarks/unlearn_pilot
    beta: float = 0.1
    retain_weight: float = 0.0

    def __post_init__(self) -> None:
        super().__post_init__()
        check(self.beta > 0, f"method.beta must be positive, got {self.beta}")
        check_weight(self.retain_weight, "retain_weight")


@register_method("npo", NPOConfig, "negative preference optimisation vs. the original model", "Zhang et al. 2024")
class NPO(UnlearningMethod):
    """``loss = (2/β)·softplus(β·(log π_θ − log π_ref))`` on D_f (+ ``w_r·CE(D_r)``)."""

    def __init__(self, config: MethodConfig, task: Task) -> None:
        super().__init__(config, task)
        self.uses_retain = self.config.retain_weight > 0  # type: ignore[misc,attr-defined]

    def prepare(self, model: nn.Module, views: RequestViews, ctx: Context) -> None:
        """Snapshots the original model as π_ref."""
        self.snapshot_reference(model)

    def loss(
        self, model: nn.Module, batch: Batch, params: Params | None = None, step: int = 0
    ) -> tuple[torch.Tensor, dict[str, float]]:
        """The NPO loss on the forget batch, plus the optional retain cross-entropy."""
        cfg: NPOConfig = self.config  # type: ignore[assignment]
        logp = self.task.log_prob(model, batch.forget_x, batch.forget_y, params)
        log_ratio = logp - self.reference_log_prob(batch.forget_x, batch.forget_y)
        loss = (2.0 / cfg.beta) * F.softplus(cfg.beta * log_ratio).mean()
        metrics = {"forget_loss": -logp.mean().item(), "npo": loss.item()}
        return self.add_retain_ce(model, batch, params, loss, metrics, cfg.retain_weight)

"""SimNPO: reference-free NPO with a length-normalised reward and a margin.

Fan, Liu, Lin, Jia, Zhang, Mei, Liu 2024, "Simplicity Prevails: Rethinking Negative Preference
Optimization for LLM Unlearning" (arXiv 2410.07163). No reference model; with |y| the response length
(1 for a class label) and margin γ:

    L_SimNPO(θ) = −(2/β) · E_{B_f} [ log σ( −(β/|y|) · log π_θ(y|x) − γ ) ]
                = (2/β) · E_{B_f} [ softplus( (β/|y|) · log π_θ(y|x) + γ ) ]
                  + w_r · CE(θ; B_r)                    (optional retain term)
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from ready2unlearn.config import check
from ready2unlearn.engine.method import Batch, MethodConfig, UnlearningMethod, register_method
from ready2unlearn.task import Params, Task
from ready2unlearn.unlearn.ga import check_weight


@dataclass
class SimNPOConfig(MethodConfig):
    """Attributes: beta (β), gamma (margin γ), retain_weight (w_r)."""

    name: str = "simnpo"
    lr: float = 3e-3  # pilot sweep: benchmarks/unlearn_pilot
    beta: float = 2.5
    gamma: float = 0.0
    retain_weight: float = 0.0

    def __post_init__(self) -> None:
        super().__post_init__()
        check(self.beta > 0, f"method.beta must be positive, got {self.beta}")
        check_weight(self.retain_weight, "retain_weight")


@register_method("simnpo", SimNPOConfig, "reference-free NPO (length-normalised, margin γ)", "Fan et al. 2024")
class SimNPO(UnlearningMethod):
    """``loss = (2/β)·softplus(β·log π_θ(y|x) + γ)`` on D_f (+ ``w_r·CE(D_r)``)."""

    def __init__(self, config: MethodConfig, task: Task) -> None:
        super().__init__(config, task)
        self.uses_retain = self.config.retain_weight > 0  # type: ignore[misc,attr-defined]

    def loss(
        self, model: nn.Module, batch: Batch, params: Params | None = None, step: int = 0
    ) -> tuple[torch.Tensor, dict[str, float]]:
        """The SimNPO loss on the forget batch, plus the optional retain cross-entropy."""
        cfg: SimNPOConfig = self.config  # type: ignore[assignment]
        # Length-normalised log π(y|x): |y| = 1 for a class label, the answer length for a sequence.
        logp = self.task.log_prob(model, batch.forget_x, batch.forget_y, params, normalize=True)
        loss = (2.0 / cfg.beta) * F.softplus(cfg.beta * logp + cfg.gamma).mean()
        metrics = {"forget_loss": -logp.mean().item(), "simnpo": loss.item()}
        return self.add_retain_ce(model, batch, params, loss, metrics, cfg.retain_weight)

"""ℓ1-sparse unlearning: fine-tune on the retain set with a decaying ℓ1 penalty.

Jia, Liu, Ram, Yao, Liu, Liu, Sharma, Liu 2023, "Model Sparsity Can Simplify Machine Unlearning"
(NeurIPS). Sparsity narrows the gap between approximate unlearning and retraining, and a penalty that is
strong early and then fades lets fine-tuning first prune what the forget set relied on and then recover
accuracy. With retain batch :math:`B_r`, step t, penalty γ and decay horizon T:

    L_t(θ) = CE(θ; B_r) + γ_t · ‖θ‖₁,    γ_t = γ · max(0, 1 − t/T)

‖θ‖₁ runs over the trainable parameters. The paper found the linearly decaying schedule best among
constant, growing and decaying ones; past T the method is plain fine-tuning.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from ready2unlearn.config import check
from ready2unlearn.engine.method import Batch, MethodConfig, UnlearningMethod, register_method
from ready2unlearn.task import Params


def l1_norm(model: nn.Module, params: Params | None = None) -> torch.Tensor:
    """``‖θ‖₁`` over ``params``' floating-point values, or over ``model``'s trainable parameters if ``None``."""
    if params is not None:
        tensors = [t for t in params.values() if torch.is_floating_point(t)]
    else:
        tensors = [p for p in model.parameters() if p.requires_grad]
    return torch.stack([t.abs().sum() for t in tensors]).sum()


@dataclass
class L1SparseConfig(MethodConfig):
    """Attributes: gamma (γ, the initial ℓ1 weight), decay_steps (T, steps until γ_t reaches 0).

    ``decay_steps: null`` (the default) uses the run's step budget, so the penalty fades out exactly as
    the run ends, whether the budget comes from ``stop.max_steps`` or ``stop.epochs``.
    """

    name: str = "l1_sparse"
    lr: float = 3e-2  # pilot sweep: benchmarks/unlearn_pilot
    momentum: float = 0.9
    gamma: float = 5e-4
    decay_steps: int | None = None

    def __post_init__(self) -> None:
        super().__post_init__()
        check(self.gamma >= 0, f"method.gamma must be ≥ 0, got {self.gamma}")
        check(self.decay_steps is None or self.decay_steps > 0, f"method.decay_steps must be positive or null, "
              f"got {self.decay_steps}")  # fmt: skip


@register_method("l1_sparse", L1SparseConfig, "fine-tune on D_r with a decaying ℓ1 penalty", "Jia et al. 2023")
class L1Sparse(UnlearningMethod):
    """``loss = CE(D_r) + γ_t·‖θ‖₁`` with ``γ_t = γ·max(0, 1 − t/T)``."""

    uses_forget = False
    uses_retain = True

    def gamma_at(self, step: int) -> float:
        """The ℓ1 weight γ_t at ``step`` (linear decay from γ at step 0 to 0 at ``decay_steps``)."""
        cfg: L1SparseConfig = self.config  # type: ignore[assignment]
        horizon = cfg.decay_steps or self.budget or 100  # budget is set by the engine before the loop
        return cfg.gamma * max(0.0, 1.0 - step / horizon)

    def loss(
        self, model: nn.Module, batch: Batch, params: Params | None = None, step: int = 0
    ) -> tuple[torch.Tensor, dict[str, float]]:
        """Retain cross-entropy plus the scheduled ℓ1 penalty."""
        retain = self.task.loss(model, batch.retain_x, batch.retain_y, params)
        gamma = self.gamma_at(step)
        if gamma > 0:
            l1 = l1_norm(model, params)
            loss = retain + gamma * l1
        else:
            # Past the horizon the penalty is exactly zero; keep the norm as a metric without a backward pass.
            with torch.no_grad():
                l1 = l1_norm(model, params)
            loss = retain
        return loss, {"retain_loss": retain.item(), "l1_norm": l1.item(), "l1_gamma": gamma}

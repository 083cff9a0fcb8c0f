"""SalUn: random labelling restricted to the weights most salient for the forget set.

Fan, Liu, Zhang, Wei, Wong, Liu 2024, "SalUn: Empowering Machine Unlearning via Gradient-based Weight
Saliency in Both Image Classification and Generation" (ICLR). Before unlearning, the gradient of the
forget loss over the whole forget set at the original weights θ_o scores every weight; only the top
``mask_ratio`` of them (one global threshold γ across all parameter tensors) may change:

    m = 1( |∇_θ ℓ_f(θ; D_f)|_{θ=θ_o} ≥ γ ),        θ_u = m ⊙ (θ_o + Δθ) + (1 − m) ⊙ θ_o

Δθ is learnt with the random-label objective (see :mod:`ready2unlearn.unlearn.random_label`), with
y' drawn uniformly from the labels other than y and retain weight α:

    L(θ_u) = E_{(x,y)∈D_f} ℓ(f_{θ_u}(x), y') + α · E_{(x,y)∈D_r} ℓ(f_{θ_u}(x), y)

The mask is enforced twice. ``after_backward`` zeroes the gradients of masked-out entries, so with
``weight_decay = 0`` their SGD-momentum / Adam state also stays zero and the optimiser never moves them.
Weight decay enters *inside* the optimiser step (as ``λθ`` added to the gradient, or decoupled in AdamW),
after the mask; ``after_step`` therefore copies the original values back, which keeps masked-out weights
bit-identical to θ_o whatever the optimiser settings.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from ready2unlearn.config import check
from ready2unlearn.data.base import ArrayDataset
from ready2unlearn.data.request import RequestViews
from ready2unlearn.engine.method import Context, MethodConfig, register_method
from ready2unlearn.task import ClassificationTask
from ready2unlearn.unlearn.random_label import RandomLabel, RandomLabelConfig


def forget_saliency(
    model: nn.Module, forget: ArrayDataset, task: ClassificationTask, batch_size: int, device: torch.device
) -> dict[str, torch.Tensor]:
    """``|∇_θ CE(θ; D_f)|`` per trainable parameter, the gradient of the loss averaged over the whole set.

    The pass runs in eval mode (so dropout is off and batch-norm statistics are neither used per batch
    nor updated) and restores the previous mode afterwards. Gradients come from ``torch.autograd.grad``,
    so the parameters' ``.grad`` fields are left untouched.

    Args:
        model: The original model θ_o.
        forget: The forget set.
        task: Scores the model (its ``loss`` is the forget loss).
        batch_size: Samples per forward pass; the result does not depend on it beyond float rounding.
        device: Where the batches are moved.

    Returns:
        Saliency tensors keyed by parameter name, shaped like the parameters.
    """
    named = [(n, p) for n, p in model.named_parameters() if p.requires_grad]
    params = [p for _, p in named]
    total = [torch.zeros_like(p) for p in params]
    n = len(forget)
    was_training = model.training
    model.eval()
    try:
        for x, y in forget.batches(batch_size):
            # Weighting each batch mean by its share of the set makes the sum the full-set mean's gradient.
            loss = task.loss(model, x.to(device), y.to(device)) * (len(y) / n)
            grads = torch.autograd.grad(loss, params, allow_unused=True)
            for acc, g in zip(total, grads, strict=True):
                if g is not None:
                    acc.add_(g)
    finally:
        model.train(was_training)
    return {name: g.abs() for (name, _), g in zip(named, total, strict=True)}


def top_fraction_masks(saliency: dict[str, torch.Tensor], ratio: float) -> dict[str, torch.Tensor]:
    """Boolean masks selecting the ``ratio`` most salient entries across all tensors jointly.

    Exactly ``round(ratio · N)`` entries (at least one) are kept, N being the total entry count: ties at
    the threshold are broken by ``torch.topk`` rather than all kept, which matters when many gradients
    are exactly zero.
    """
    flat = torch.cat([s.flatten() for s in saliency.values()])
    k = max(1, round(ratio * flat.numel()))
    keep = torch.zeros(flat.numel(), dtype=torch.bool, device=flat.device)
    keep[torch.topk(flat, k, sorted=False).indices] = True
    masks, offset = {}, 0
    for name, s in saliency.items():
        masks[name] = keep[offset : offset + s.numel()].view_as(s).clone()
        offset += s.numel()
    return masks


@dataclass
class SalUnConfig(RandomLabelConfig):
    """Attributes: mask_ratio (fraction of all trainable weights that may change), retain_weight (α).

    0.5 is the paper's default for classification (the threshold γ is then the median saliency).
    """

    name: str = "salun"
    lr: float = 1e-3  # pilot sweep: benchmarks/unlearn_pilot
    mask_ratio: float = 0.5

    def __post_init__(self) -> None:
        super().__post_init__()
        check(0 < self.mask_ratio <= 1, f"method.mask_ratio must be in (0, 1], got {self.mask_ratio}")


@register_method("salun", SalUnConfig, "random labels on forget-salient weights + CE on D_r", "Fan et al. 2024")
class SalUn(RandomLabel):
    """Random-label unlearning (``CE(f(x_f), y') + α·CE(D_r)``) through a saliency mask on the weights.

    Attributes:
        masks: After :meth:`prepare`, a boolean tensor per trainable parameter name; ``True`` = may change.
    """

    def __init__(self, config: MethodConfig, task: ClassificationTask) -> None:
        super().__init__(config, task)
        self.masks: dict[str, torch.Tensor] = {}
        self._original: dict[str, torch.Tensor] = {}

    def prepare(self, model: nn.Module, views: RequestViews, ctx: Context) -> None:
        """Seeds the relabelling, computes the saliency mask and keeps θ_o to restore masked-out entries."""
        super().prepare(model, views, ctx)
        cfg: SalUnConfig = self.config  # type: ignore[assignment]
        saliency = forget_saliency(model, views.forget, self.task, cfg.batch_size, ctx.device)
        self.masks = top_fraction_masks(saliency, cfg.mask_ratio)
        self._original = {n: p.detach().clone() for n, p in model.named_parameters() if n in self.masks}

    def after_backward(self, model: nn.Module) -> None:
        """Zeroes the gradients of masked-out entries."""
        for name, p in model.named_parameters():
            mask = self.masks.get(name)
            if mask is not None and p.grad is not None:
                p.grad.masked_fill_(~mask, 0.0)

    @torch.no_grad()
    def after_step(self, model: nn.Module) -> None:
        """Copies θ_o back into masked-out entries (undoing weight decay, which bypasses the gradient mask)."""
        for name, p in model.named_parameters():
            mask = self.masks.get(name)
            if mask is not None:
                p.copy_(torch.where(mask, p, self._original[name]))

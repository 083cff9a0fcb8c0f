"""Fine-tuning (FT): keep training on the retain set only and let the forget set fade.

Warnecke, Pirch, Wressnegger, Rieck 2023, "Machine Unlearning of Features and Labels" (NDSS), and the
fine-tuning baseline of Golatkar, Achille, Soatto 2020 ("Eternal Sunshine of the Spotless Net") and of
SalUn (Fan et al. 2024). With retain batch :math:`B_r`:

    L_FT(θ) = (1/|B_r|) Σ_{(x,y)∈B_r} ℓ(f_θ(x), y)

The forget set is never seen: forgetting comes only from catastrophic forgetting under further descent,
so FT is gentle on utility and slow (often incomplete) at forgetting — the lower bound of the field.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from ready2unlearn.engine.method import Batch, MethodConfig, UnlearningMethod, register_method
from ready2unlearn.task import Params


@dataclass
class FinetuneConfig(MethodConfig):
    """Fine-tuning on D_r. SGD with momentum at lr 0.01, the usual FT setting of the SalUn benchmarks."""

    name: str = "finetune"
    lr: float = 3e-2  # pilot sweep: benchmarks/unlearn_pilot
    momentum: float = 0.9


@register_method("finetune", FinetuneConfig, "fine-tune on the retain set only", "Warnecke et al. 2023")
class Finetune(UnlearningMethod):
    """``loss = CE(D_r)``."""

    uses_forget = False
    uses_retain = True

    def loss(
        self, model: nn.Module, batch: Batch, params: Params | None = None, step: int = 0
    ) -> tuple[torch.Tensor, dict[str, float]]:
        """Retain cross-entropy."""
        retain = self.task.loss(model, batch.retain_x, batch.retain_y, params)
        return retain, {"retain_loss": retain.item()}

"""Random labelling (RL): train the forget set towards wrong labels while fine-tuning on the retain set.

The RL baseline of Golatkar, Achille, Soatto 2020, "Eternal Sunshine of the Spotless Net: Selective
Forgetting in Deep Networks" as run in SalUn (Fan et al. 2024); relabelling itself goes back to Graves,
Nagisetty, Ganesh 2021, "Amnesiac Machine Learning". Every forget sample gets a label y' drawn uniformly
from the C − 1 classes other than its own, afresh at each step; with forget batch :math:`B_f`, retain
batch :math:`B_r` and retain weight w_r:

    L_RL(θ) = (1/|B_f|) Σ_{(x,y)∈B_f} ℓ(f_θ(x), y'),   y' ~ U({0..C−1} ∖ {y})
              + w_r · CE(θ; B_r)

Unlike gradient ascent the forget term is bounded below, so it cannot diverge; it pushes the forget set
towards the *other* classes, which is also its weakness on class requests (the "wrong" confident
predictions look nothing like a retrained model's).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from ready2unlearn.data.request import RequestViews
from ready2unlearn.engine.method import Batch, Context, MethodConfig, UnlearningMethod, register_method
from ready2unlearn.task import ClassificationTask, Params
from ready2unlearn.unlearn.ga import check_weight


def random_other_labels(y: torch.Tensor, num_classes: int, generator: torch.Generator) -> torch.Tensor:
    """A label per sample, uniform over the ``num_classes − 1`` classes other than ``y``.

    Adding a shift drawn uniformly from ``1..C−1`` modulo ``C`` hits every other class exactly once and
    never ``y`` itself, so no rejection loop is needed.

    Args:
        y: True labels ``[B]`` (integers in ``0..num_classes−1``).
        num_classes: Number of classes ``C`` (at least 2).
        generator: Source of randomness; the draw happens on its device and moves to ``y``'s.

    Returns:
        Labels ``[B]`` on ``y``'s device, each different from the corresponding true label.

    Raises:
        ValueError: If ``num_classes < 2`` (there is no other label to draw).
    """
    if num_classes < 2:
        raise ValueError(f"random relabelling needs at least 2 classes, got {num_classes}")
    shift = torch.randint(1, num_classes, tuple(y.shape), generator=generator, device=generator.device)
    return (y + shift.to(y.device)) % num_classes


@dataclass
class RandomLabelConfig(MethodConfig):
    """Attributes: retain_weight (w_r; 0 = relabel the forget set only)."""

    name: str = "random_label"
    lr: float = 1e-3  # pilot sweep: benchmarks/unlearn_pilot
    momentum: float = 0.9
    retain_weight: float = 1.0

    def __post_init__(self) -> None:
        super().__post_init__()
        check_weight(self.retain_weight, "retain_weight")


@register_method("random_label", RandomLabelConfig, "random wrong labels on D_f + CE on D_r", "Golatkar et al. 2020")
class RandomLabel(UnlearningMethod):
    """``loss = CE(f(x_f), y') + w_r·CE(D_r)`` with fresh random labels ``y' ≠ y`` each step."""

    classifier_only = True

    def __init__(self, config: MethodConfig, task: ClassificationTask) -> None:
        super().__init__(config, task)
        self.uses_retain = self.config.retain_weight > 0  # type: ignore[misc,attr-defined]
        self._seed: int | None = None

    def prepare(self, model: nn.Module, views: RequestViews, ctx: Context) -> None:
        """Draws the seed of the relabelling stream from the run's generator."""
        self._seed = int(torch.randint(2**31, (1,), generator=ctx.generator))

    def label_generator(self, step: int) -> torch.Generator:
        """The generator of step ``step``'s random labels.

        Keyed by ``(seed, step)`` rather than advanced call by call, so that evaluating the loss twice at
        one step (a functional re-run, a resumed run) sees the same labels while every step draws anew.
        """
        if self._seed is None:
            raise RuntimeError("prepare() must run before loss(): no relabelling seed")
        # The CPU generator keeps only the low 32 bits of a seed, so (seed, step) must be folded into 32
        # bits: an odd multiplier makes this a bijection in step for a fixed seed, and in seed for a fixed step.
        return torch.Generator().manual_seed((self._seed + step * 0x9E3779B1) % 2**32)

    def loss(
        self, model: nn.Module, batch: Batch, params: Params | None = None, step: int = 0
    ) -> tuple[torch.Tensor, dict[str, float]]:
        """Cross-entropy to random wrong labels on the forget batch, plus the weighted retain cross-entropy."""
        cfg: RandomLabelConfig = self.config  # type: ignore[assignment]
        logits = self.task.logits(model, batch.forget_x, params)
        y_rand = random_other_labels(batch.forget_y, self.task.num_classes, self.label_generator(step))
        loss = F.cross_entropy(logits, y_rand)
        metrics = {"forget_loss": F.cross_entropy(logits, batch.forget_y).item(), "relabel_loss": loss.item()}
        return self.add_retain_ce(model, batch, params, loss, metrics, cfg.retain_weight)

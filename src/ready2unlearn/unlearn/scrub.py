"""SCRUB: teacher–student unlearning that alternates max-steps on the forget set and min-steps on the retain set.

Kurmanji, Triantafillou, Hayes, Triantafillou 2023, "Towards Unbounded Machine Unlearning" (NeurIPS). The
*student* is the model being unlearned; the *teacher* is a frozen snapshot of it taken before unlearning.
With the temperature-``T`` distance between their predictive distributions

    d(x) = T² · KL(p_teacher(·|x; T) ‖ p_student(·|x; T)),

the student "disobeys" the teacher on the forget set and "obeys" it on the retain set:

    max-step:  minimise  −(1/|B_f|) Σ_{x∈B_f} d(x)                                  (push away on D_f)
    min-step:  minimise   α · (1/|B_r|) Σ_{x∈B_r} d(x)  +  γ · CE(θ; B_r)            (stay close on D_r)

The paper alternates *epochs*: during the first ``msteps`` epochs each epoch runs a max pass over D_f and then a
min pass over D_r; afterwards only min passes run, which repairs retain performance the max-steps damaged.
Our engine is step-based, so the schedule is expressed per step (``step`` counted from 0): while
``step < max_phase_steps``, every ``max_every``-th step (``step % max_every == 0``) is a max-step on the forget
batch and the others are min-steps on the retain batch; from ``max_phase_steps`` on, every step is a min-step.

At step 0 the student *is* the teacher, so d and its gradient vanish there: a deterministic model (no dropout)
only leaves the teacher once a min-step's cross-entropy has moved it, after which the max-steps take hold. From
there d on D_f grows geometrically and −d is unbounded below, so a long max phase or a large ``lr`` drives the
forget logits to huge values: keep the max phase short (the paper's few ``msteps``) and let the min-only tail
repair the retain set.

The ``T²`` factor is the usual distillation convention (Hinton et al. 2015): it keeps gradient magnitudes
roughly independent of ``T``, so ``kl_weight`` means the same thing at any temperature.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from ready2unlearn.config import check
from ready2unlearn.data.request import RequestViews
from ready2unlearn.engine.method import Batch, Context, MethodConfig, UnlearningMethod, register_method
from ready2unlearn.task import Params
from ready2unlearn.unlearn.ga import check_weight
from ready2unlearn.unlearn.ga_kl import kl_to_reference


def distill_kl(teacher_logits: torch.Tensor, student_logits: torch.Tensor, temperature: float) -> torch.Tensor:
    """Batch-mean ``T² · KL(p_teacher ‖ p_student)`` at temperature ``T`` (Hinton-scaled distillation distance)."""
    return temperature**2 * kl_to_reference(teacher_logits, student_logits, temperature)


@dataclass
class SCRUBConfig(MethodConfig):
    """SCRUB settings.

    Attributes:
        kl_weight: α, weight of the teacher KL on the retain batch in a min-step.
        ce_weight: γ, weight of the retain cross-entropy in a min-step.
        temperature: Distillation temperature ``T`` of the KL distance (the paper's code uses 4).
        max_phase_steps: Steps (from 0) during which max-steps are interleaved; 0 = only min-steps.
        max_every: In the max phase, every ``max_every``-th step is a max-step (2 = alternate max/min).
    """

    name: str = "scrub"
    lr: float = 3e-3  # pilot sweep: benchmarks/unlearn_pilot
    kl_weight: float = 1.0
    ce_weight: float = 1.0
    temperature: float = 4.0
    max_phase_steps: int = 50
    max_every: int = 2

    def __post_init__(self) -> None:
        super().__post_init__()
        check_weight(self.kl_weight, "kl_weight")
        check_weight(self.ce_weight, "ce_weight")
        check(self.temperature > 0, f"method.temperature must be positive, got {self.temperature}")
        check(self.max_phase_steps >= 0, f"method.max_phase_steps must be ≥ 0, got {self.max_phase_steps}")
        check(self.max_every >= 1, f"method.max_every must be ≥ 1, got {self.max_every}")


@register_method(
    "scrub", SCRUBConfig, "teacher–student: max KL on D_f, min KL + CE on D_r, alternating", "Kurmanji et al. 2023"
)
class SCRUB(UnlearningMethod):
    """Max-steps ``−d(B_f)`` interleaved with min-steps ``α·d(B_r) + γ·CE(B_r)``; see the module docstring."""

    uses_retain = True
    classifier_only = True

    def prepare(self, model: nn.Module, views: RequestViews, ctx: Context) -> None:
        """Snapshots the original model as the frozen teacher."""
        self.snapshot_reference(model)

    def is_max_step(self, step: int) -> bool:
        """Whether ``step`` (counted from 0) is a max-step on the forget batch."""
        cfg: SCRUBConfig = self.config  # type: ignore[assignment]
        return step < cfg.max_phase_steps and step % cfg.max_every == 0

    def loss(
        self, model: nn.Module, batch: Batch, params: Params | None = None, step: int = 0
    ) -> tuple[torch.Tensor, dict[str, float]]:
        """The max-step or min-step objective for ``step``; ``metrics["phase_max"]`` says which (1.0 = max)."""
        cfg: SCRUBConfig = self.config  # type: ignore[assignment]
        if self.is_max_step(step):
            kl = distill_kl(
                self.reference_logits(batch.forget_x), self.task.logits(model, batch.forget_x, params), cfg.temperature
            )
            # Maximising d on D_f = minimising −d; the engine always minimises.
            return -kl, {"phase_max": 1.0, "forget_kl": kl.item()}
        logits = self.task.logits(model, batch.retain_x, params)
        kl = distill_kl(self.reference_logits(batch.retain_x), logits, cfg.temperature)
        ce = F.cross_entropy(logits, batch.retain_y)  # the task loss, reusing the logits (one forward)
        loss = cfg.kl_weight * kl + cfg.ce_weight * ce
        return loss, {"phase_max": 0.0, "retain_kl": kl.item(), "retain_loss": ce.item()}

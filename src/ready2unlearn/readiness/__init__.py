"""Ready2Unlearn readiness training (Duan, Yang, Abbasi, Tam 2025, arXiv 2505.10845; DESIGN §5).

Train a model so that a later gradient-ascent-family unlearning run reaches forgetting in fewer steps,
keeps more of the model's capability, and resists relearning. The pieces:

- :class:`ReadyConfig`: every knob (method, request kind, revocable set, λ/λ1/λ2/λ3, α, k, cap...);
- :class:`RequestSampler`: simulated requests from the declared revocable set (or the whole data);
- :func:`simulate_unlearning`: the differentiable inner loop over a parameter dict (``torch.func``);
- :func:`readiness_loss` / :class:`ReadinessObjective`: L_ready and the per-step term training adds.

Train with ``r2u train --ready`` or ``fit(..., regularizer=ReadinessObjective(...))``.
"""

from ready2unlearn.readiness.config import KIND_DEFAULTS, READY_METHODS, ReadyConfig
from ready2unlearn.readiness.inner import CurrentModelReference, simulate_unlearning, trainable_params
from ready2unlearn.readiness.loss import readiness_loss
from ready2unlearn.readiness.objective import ReadinessObjective
from ready2unlearn.readiness.sampler import RequestSampler, RevocableSet

__all__ = [
    "KIND_DEFAULTS",
    "READY_METHODS",
    "CurrentModelReference",
    "ReadinessObjective",
    "ReadyConfig",
    "RequestSampler",
    "RevocableSet",
    "readiness_loss",
    "simulate_unlearning",
    "trainable_params",
]

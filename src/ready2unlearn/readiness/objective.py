"""The readiness term L_ready and the per-step objective readiness training adds to the task loss.

Ready2Unlearn (Duan, Yang, Abbasi, Tam 2025, arXiv 2505.10845), in the form of DESIGN §5:

    L(θ) = L_task(θ; B) + λ · L_ready(θ)
    L_ready(θ) = λ2 · CE(θ'_k; R)                       retention after the simulated unlearning
               − λ1 · min(CE(θ'_k; F), c)               efficiency: forgetting reached within k steps
               − λ3 · min(CE(θ''; F), c)                resistance: still forgotten after relearning

θ'_k comes from :func:`~ready2unlearn.readiness.inner.simulate_unlearning`; θ'' is one simulated
relearning step (descent on ``relearn_size`` forget samples) from θ'_k. Capping the forget terms at c
matters: past the cap there is no gradient, so readiness stops pushing once a simulated request is
honoured instead of making the model ever more fragile.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from ready2unlearn.config import to_dict
from ready2unlearn.data.base import ArrayDataset
from ready2unlearn.readiness.config import ReadyConfig
from ready2unlearn.readiness.inner import (
    CurrentModelReference,
    buffer_copies,
    sgd_step,
    simulate_unlearning,
    trainable_params,
)
from ready2unlearn.readiness.sampler import RequestSampler
from ready2unlearn.unlearn.base import Batch, UnlearningMethod, build_method
from ready2unlearn.unlearn.task import ClassificationTask, Task


def readiness_loss(
    method: UnlearningMethod, model: nn.Module, batch: Batch, cfg: ReadyConfig
) -> tuple[torch.Tensor, dict[str, float]]:
    """L_ready for one simulated request, differentiable with respect to the model's trainable parameters.

    Args:
        method: The deployment unlearning method (built for ``cfg.method``).
        model: The model being trained (its parameters are θ; nothing is modified).
        batch: The simulated request: forget batch F and retain batch R (both always present).
        cfg: Readiness knobs.

    Returns:
        ``(L_ready, parts)`` where ``parts`` holds the forget/retain losses before and after.
    """
    cfg = cfg.resolved()
    task = method.task
    method.reference = CurrentModelReference(model)  # π_ref / the KL anchor = the model as it is now
    theta = trainable_params(model)
    buffers = buffer_copies(model)
    theta_k = simulate_unlearning(method, model, batch, steps=cfg.inner_steps, alpha=cfg.alpha, params=theta,
                                  buffers=buffers, first_order=cfg.first_order)  # fmt: skip

    def ce(params: dict[str, torch.Tensor], x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        return task.loss(model, x, y, {**buffers, **params})

    cap = cfg.cap
    fx, fy = batch.forget_x, batch.forget_y
    assert fx is not None and fy is not None and batch.retain_x is not None and batch.retain_y is not None
    total = torch.zeros((), device=fx.device)
    parts: dict[str, float] = {}
    if cfg.retention > 0:
        retain_after = ce(theta_k, batch.retain_x, batch.retain_y)
        total = total + cfg.retention * retain_after
        parts["retain_after"] = retain_after.item()
    forget_after = ce(theta_k, fx, fy)
    parts["forget_after"] = forget_after.item()
    # Past the cap the forget term passes no gradient: how often that happens says whether readiness still
    # shapes the model or has gone quiet (on language models one simulated step already passes a cap of 1).
    parts["cap_saturated"] = float(parts["forget_after"] >= cap)  # type: ignore[operator]
    if cfg.efficiency > 0:
        score = forget_after.clamp(max=cap)
        if cfg.forget_term == "gain":
            score = score - ce(theta, fx, fy)
        total = total - cfg.efficiency * score
    if cfg.resistance > 0:
        m = min(cfg.relearn_size, len(fy))
        relearned = sgd_step(ce(theta_k, fx[:m], fy[:m]), theta_k, cfg.relearn_alpha or cfg.alpha,
                             create_graph=not cfg.first_order)  # fmt: skip
        forget_relearned = ce(relearned, fx, fy)
        total = total - cfg.resistance * forget_relearned.clamp(max=cap)
        parts["forget_relearned"] = forget_relearned.item()
    parts["ready_loss"] = total.item()
    return total, parts


class ReadinessObjective:
    """The readiness term of one training run: draws requests and returns ``λ · L_ready`` when due.

    Called by the training loop after the task loss, once per step, as ``objective(model, step, epoch)``;
    returns ``(None, {})`` on steps where readiness is off (before ``start_epoch``, or between
    ``meta_every`` steps).

    Args:
        cfg: Readiness knobs.
        train: The training set (on the training device).
        num_classes: Number of labels (0 for a language model: class requests do not apply).
        seed: Seeds the request draws (reseeded with ``(seed, epoch)`` at every epoch).
        task: How the model is scored; default a :class:`ClassificationTask` over ``num_classes``. Pass a
            :class:`~ready2unlearn.unlearn.task.CausalLMTask` for a language model.
    """

    def __init__(
        self, cfg: ReadyConfig, train: ArrayDataset, num_classes: int, seed: int = 0, task: Task | None = None
    ):
        self.cfg = cfg = cfg.resolved()
        self.seed = seed
        self.method = build_method(cfg.method, task or ClassificationTask(num_classes))
        self.sampler = RequestSampler(train, cfg, num_classes, seed)
        self._epoch = -1
        self.calls = 0
        self._sums: dict[str, float] = {}

    def __call__(self, model: nn.Module, step: int, epoch: int) -> tuple[torch.Tensor | None, dict[str, float]]:
        """``(λ · L_ready, parts)`` for this step, or ``(None, {})`` when readiness is off for it."""
        if epoch < self.cfg.start_epoch or step % self.cfg.meta_every != 0 or self.cfg.lam == 0:  # type: ignore[operator]
            return None, {}
        if epoch != self._epoch:
            self._epoch = epoch
            self.sampler.reseed(self.seed, epoch)
        loss, parts = readiness_loss(self.method, model, self.sampler.sample(), self.cfg)
        self.calls += 1
        for k, v in parts.items():
            self._sums[k] = self._sums.get(k, 0.0) + v
        # Scaled by meta_every so λ keeps its meaning: the average readiness pressure per step is the same
        # whether the term runs every step or every N-th (the prototype lost nearly all of its effect at
        # meta_every=4 without this).
        return self.cfg.lam * self.cfg.meta_every * loss, parts  # type: ignore[operator]

    def summary(self, train: ArrayDataset) -> dict[str, Any]:
        """Card entry: the revocable set, how often the term ran, the mean of each part and cap saturation.

        ``cap_saturation`` is the fraction of readiness steps whose forget loss after the simulated unlearning
        was already at or above the cap (so the efficiency term passed no gradient).
        """
        means = {k: v / self.calls for k, v in self._sums.items()} if self.calls else {}
        return {
            "revocable": self.sampler.revocable.describe(train),
            "meta_steps": self.calls,
            "mean_parts": means,
            "cap_saturation": means.get("cap_saturated", 0.0),
            "resolved": to_dict(self.cfg),
            "forget_size": self.cfg.resolved_forget_size,
            "retain_size": self.cfg.resolved_retain_size,
        }

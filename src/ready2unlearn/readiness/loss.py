"""The readiness term L_ready of one simulated request (DESIGN §5), differentiable in the model's parameters.

Ready2Unlearn (Duan, Yang, Abbasi, Tam 2025, arXiv 2505.10845):

    L_ready(θ) = λ2 · CE(θ'_k; R)                       retention after the simulated unlearning
               − λ1 · min(CE(θ'_k; F), c)               efficiency: forgetting reached within k steps
               − λ3 · min(CE(θ''; F), c)                resistance: still forgotten after relearning

θ'_k comes from :func:`~ready2unlearn.readiness.inner.simulate_unlearning`; θ'' is where ``relearn_steps``
simulated relearning steps (descent on ``relearn_size`` forget samples, SGD or the attack's Adam) lead from
θ'_k, scored on the other forget samples. Capping the forget terms at c matters: past the cap there is no
gradient, so readiness stops pushing once a simulated request is honoured instead of making the model ever
more fragile. The per-step objective that adds it to training is :mod:`~ready2unlearn.readiness.objective`.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import torch
from torch import nn

from ready2unlearn.engine.method import Batch, UnlearningMethod
from ready2unlearn.errors import ConfigError
from ready2unlearn.readiness.config import ReadyConfig
from ready2unlearn.readiness.inner import (
    CurrentModelReference,
    buffer_copies,
    simulate_steps,
    simulate_unlearning,
    trainable_params,
)


def readiness_loss(
    method: UnlearningMethod,
    model: nn.Module,
    batch: Batch,
    cfg: ReadyConfig,
    *,
    forget_weight: float = 1.0,
    retention_weight: float | None = None,
) -> tuple[torch.Tensor, dict[str, float]]:
    """L_ready for one simulated request, differentiable with respect to the model's trainable parameters.

    Args:
        method: The deployment unlearning method (built for ``cfg.method``).
        model: The model being trained (its parameters are θ; nothing is modified).
        batch: The simulated request: forget batch F and retain batch R (both always present).
        cfg: Readiness knobs (``alpha`` must be a number here, not ``auto``).
        forget_weight: Multiplies the forget terms (efficiency and resistance): the dual λ.
        retention_weight: Weight of the retain term; ``None`` = ``cfg.retention``.

    Returns:
        ``(L_ready, parts)`` where ``parts`` holds the forget/retain losses before and after.
    """
    cfg = cfg.resolved()
    if not isinstance(cfg.alpha, (int, float)):
        raise ConfigError("readiness_loss needs a numeric ready.alpha (alpha=auto is resolved by ReadinessObjective)")
    retention_weight = cfg.retention if retention_weight is None else retention_weight
    task = method.task
    method.reference = CurrentModelReference(model)  # π_ref / the KL anchor = the model as it is now
    theta = trainable_params(model)
    buffers = buffer_copies(model)
    with _unlearning_mode(method, model):  # as the deployed unlearner runs (batch norm frozen by default)
        optimizer = cfg.method.optimizer if cfg.inner_optimizer == "method" else "sgd"
        theta_k = simulate_unlearning(method, model, batch, steps=cfg.inner_steps, alpha=cfg.alpha, params=theta,
                                      buffers=buffers, first_order=cfg.first_order, optimizer=optimizer)  # fmt: skip

    def ce(params: dict[str, torch.Tensor], x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        # Scored as the stop rule and the metrics see the model (eval mode: running BatchNorm statistics, no
        # dropout); the inner steps above ran in the mode the deployed unlearner trains in.
        with _mode(model, train=cfg.score_mode == "train"):
            return task.loss(model, x, y, {**buffers, **params})

    def retain_ce(params: dict[str, torch.Tensor], x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        if cfg.score_mode != "mixed":
            return ce(params, x, y)
        # A retain batch draws from every class, so its own statistics estimate the population's; normalising
        # by them lets the gradient see the normalisation, as the task loss does. Through running statistics
        # (constants to the gradient) the term fought the task loss: CIFAR-10 CNN 50.8% vs 62.1% standard.
        # Copies, so the running-statistics update of this pass cannot reach the forget terms' scoring.
        with _batch_stats_mode(model):
            return task.loss(model, x, y, {**{k: v.clone() for k, v in buffers.items()}, **params})

    if not isinstance(cfg.cap, (int, float)):
        raise ConfigError(
            "readiness_loss needs a numeric ready.cap (initial / heldout are measured by ReadinessObjective)"
        )
    cap = cfg.cap
    fx, fy = batch.forget_x, batch.forget_y
    assert fx is not None and fy is not None and batch.retain_x is not None and batch.retain_y is not None
    total = torch.zeros((), device=fx.device)
    parts: dict[str, float] = {}
    if cfg.retention > 0:
        retain_after = retain_ce(theta_k, batch.retain_x, batch.retain_y)
        total = total + retention_weight * retain_after
        parts["retain_after"] = retain_after.item()
    forget_after = ce(theta_k, fx, fy)
    parts["forget_after"] = forget_after.item()
    # Past the cap the forget term passes no gradient: how often that happens says whether readiness still
    # shapes the model or has gone quiet (on language models one simulated step already passes a cap of 1).
    parts["cap_saturated"] = float(parts["forget_after"] >= cap)  # type: ignore[operator]
    if cfg.efficiency > 0:
        score = forget_after.clamp(max=cap)
        if cfg.forget_term == "gain":
            forget_before = ce(theta, fx, fy)
            parts["forget_before"] = forget_before.item()
            score = score - forget_before
        total = total - forget_weight * cfg.efficiency * score
    if cfg.resistance > 0 and len(fy) >= 2:
        # The simulated attack mirrors the real one: fine-tune on a few forget samples for several steps,
        # then score the *other* forget samples (scoring the relearned ones would only measure memorisation).
        m = min(cfg.relearn_size, len(fy) - 1)

        def attack_loss(params: dict[str, torch.Tensor], _: int) -> torch.Tensor:
            with _mode(model, train=True):
                return task.loss(model, fx[:m], fy[:m], {**buffers, **params})

        relearned = simulate_steps(attack_loss, theta_k, steps=cfg.relearn_steps,
                                   alpha=cfg.relearn_alpha or cfg.alpha,  # type: ignore[arg-type]
                                   first_order=bool(cfg.first_order), optimizer=cfg.relearn_optimizer)  # fmt: skip
        forget_relearned = ce(relearned, fx[m:], fy[m:])
        total = total - forget_weight * cfg.resistance * forget_relearned.clamp(max=cap)
        parts["forget_relearned"] = forget_relearned.item()
    parts["ready_loss"] = total.item()
    return total, parts


@contextlib.contextmanager
def _modes_restored(model: nn.Module) -> Iterator[None]:
    """Restores every module's train/eval mode after the block, whatever the block set."""
    was = {m: m.training for m in model.modules()}
    try:
        yield
    finally:
        for m, training in was.items():
            m.train(training)


@contextlib.contextmanager
def _unlearning_mode(method: UnlearningMethod, model: nn.Module) -> Iterator[None]:
    """Puts ``model`` in the deployed unlearner's mode for the block."""
    with _modes_restored(model):
        method.train_mode(model)
        yield


@contextlib.contextmanager
def _batch_stats_mode(model: nn.Module) -> Iterator[None]:
    """Eval mode (no dropout) except normalisation layers, which use the batch's statistics, for the block."""
    with _modes_restored(model):
        model.eval()
        for m in model.modules():
            if isinstance(m, nn.modules.batchnorm._NormBase):
                m.train(True)
        yield


@contextlib.contextmanager
def _mode(model: nn.Module, *, train: bool) -> Iterator[None]:
    """Puts ``model`` in train or eval mode for the block and restores its modules' modes after."""
    with _modes_restored(model):
        model.train(train)
        yield

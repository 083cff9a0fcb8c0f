"""The differentiable inner loop: a future unlearning run, simulated as a pure function of the parameters.

``simulate_unlearning`` takes a parameter dict θ and returns θ'_k after k steps

    θ'_{j+1} = θ'_j − α ∇_θ L_U(θ'_j; F, R)

of the *registered* unlearning method's own loss (``method.loss(model, batch, params=θ'_j)``), written
over ``torch.func.functional_call`` like the functorch MAML example. Second-order by default — the inner
gradients stay in the graph (``create_graph=True``) so the meta-gradient sees how θ shapes the unlearning
trajectory; ``first_order=True`` detaches them (MAML's first-order approximation: dθ'_k/dθ = I).

Only trainable parameters enter the loop (frozen ones and buffers come from the module), so a LoRA model
runs it over its adapters alone. Buffers are passed as clones: a BatchNorm layer in training mode updates
its running statistics in place, and a simulated request must not leak into the model's real statistics.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping

import torch
from torch import nn

from ready2unlearn.engine.method import Batch, UnlearningMethod

Params = dict[str, torch.Tensor]


def trainable_params(model: nn.Module) -> Params:
    """The model's parameters that require grad, by name (tied weights appear once)."""
    return {name: p for name, p in model.named_parameters() if p.requires_grad}


def buffer_copies(model: nn.Module) -> Params:
    """Clones of the model's buffers, for functional calls that must not update the real ones."""
    return {name: b.detach().clone() for name, b in model.named_buffers()}


#: Adam's defaults in ``torch.optim.Adam`` (what the deployed unlearner uses with ``optimizer: adam``).
ADAM_BETAS, ADAM_EPS = (0.9, 0.999), 1e-8


def simulate_steps(
    loss_fn: Callable[[Params, int], torch.Tensor],
    params: Mapping[str, torch.Tensor],
    *,
    steps: int,
    alpha: float,
    first_order: bool = False,
    optimizer: str = "sgd",
) -> Params:
    """``steps`` descent steps on ``loss_fn(θ, j)`` from ``params``, differentiable with respect to them.

    The loop both simulations share: the unlearning run (:func:`simulate_unlearning`, on the method's own loss,
    which ascends the forget set) and the relearning attack of the resistance term (plain task loss on a few
    forget samples).

    Args:
        loss_fn: The loss at parameters θ (trainable ones; buffers are the caller's business) and step ``j``.
        params: Starting parameters θ.
        steps: Number of steps ≥ 1.
        alpha: Step size (the learning rate of the optimiser simulated).
        first_order: Detach the gradients (θ_k depends on θ only through the identity).
        optimizer: ``sgd`` (``θ − α·g``) or ``adam``: the steps ``torch.optim.Adam`` would take from fresh
            moments (its first step is ``θ − α·g/(|g| + ε)``, i.e. α per coordinate whatever the gradient's
            scale).

    Returns:
        The parameter dict after ``steps`` steps.
    """
    if optimizer not in ("sgd", "adam"):
        raise ValueError(f"unknown inner optimizer {optimizer!r}; use sgd or adam")
    theta: Params = dict(params)
    m: Params = {}
    v: Params = {}
    (b1, b2), eps = ADAM_BETAS, ADAM_EPS
    for j in range(steps):
        if first_order:
            # Each step starts from a leaf copy so the gradient is taken at θ'_j but not through it; the
            # update itself stays differentiable (θ'_{j+1} = θ'_j − α·d with the direction d constant).
            leaves = {n: t.detach().requires_grad_(True) for n, t in theta.items()}
            grads = torch.autograd.grad(loss_fn(leaves, j), list(leaves.values()), allow_unused=True)
        else:
            grads = torch.autograd.grad(loss_fn(theta, j), list(theta.values()), create_graph=True,
                                        allow_unused=True)  # fmt: skip
        if optimizer == "sgd":
            theta = {n: t if g is None else t - alpha * g for (n, t), g in zip(theta.items(), grads, strict=True)}
            continue
        new: Params = {}
        for (n, t), g in zip(theta.items(), grads, strict=True):
            if g is None:
                new[n] = t
                continue
            m[n] = b1 * m[n] + (1 - b1) * g if n in m else (1 - b1) * g
            v[n] = b2 * v[n] + (1 - b2) * g * g if n in v else (1 - b2) * g * g
            m_hat, v_hat = m[n] / (1 - b1 ** (j + 1)), v[n] / (1 - b2 ** (j + 1))
            # √v̂ with a finite derivative where v̂ = 0 (a coordinate with no gradient yet, e.g. the embedding
            # row of a token not in the batch): the plain sqrt would send ∞ · 0 = NaN into the meta-gradient.
            positive = v_hat > 0
            root = torch.where(positive, torch.where(positive, v_hat, 1.0).sqrt(), 0.0)
            new[n] = t - alpha * m_hat / (root + eps)
        theta = new
    return theta


def simulate_unlearning(
    method: UnlearningMethod,
    model: nn.Module,
    batch: Batch,
    *,
    steps: int,
    alpha: float,
    params: Mapping[str, torch.Tensor] | None = None,
    buffers: Mapping[str, torch.Tensor] | None = None,
    first_order: bool = False,
    optimizer: str = "sgd",
) -> Params:
    """Runs ``steps`` steps of ``method``'s loss from ``params`` and returns θ'_k.

    Args:
        method: A built gradient-ascent-family method (its ``loss`` accepts ``params``).
        model: The module whose forward is used (its own parameters are not modified).
        batch: The simulated request's forget (and, if the method uses it, retain) batch.
        steps: Number of inner steps k ≥ 1.
        alpha: Inner step size α.
        params: Starting parameters θ; default: the model's trainable parameters (so the result is
            differentiable with respect to them).
        buffers: Buffers to use (default: fresh clones of the model's buffers).
        first_order: Detach inner gradients (θ'_k depends on θ only through the identity).
        optimizer: ``sgd`` or ``adam`` (:func:`simulate_steps`). Matching the deployed unlearner's optimiser
            keeps α in its units: a measured ``lr × steps`` of Adam is a per-coordinate distance, which an SGD
            step of that size would not cover where gradients are small (language models).

    Returns:
        The trainable-parameter dict after ``steps`` steps.
    """
    state_buffers = dict(buffers) if buffers is not None else buffer_copies(model)

    def loss(theta: Params, j: int) -> torch.Tensor:
        return method.loss(model, batch, params={**state_buffers, **theta}, step=j)[0]

    return simulate_steps(loss, params if params is not None else trainable_params(model), steps=steps, alpha=alpha,
                          first_order=first_order, optimizer=optimizer)  # fmt: skip


class CurrentModelReference(nn.Module):
    """The live model, seen as a frozen reference: an eval-mode, no-grad forward of its current weights.

    NPO's π_ref and GA+KL's anchor are "the model before unlearning"; inside readiness training that is
    the current θ, so nothing needs copying — only dropout off and no gradient.
    """

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        object.__setattr__(self, "_live", model)  # not a submodule: it owns no parameters of its own

    @torch.no_grad()
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Logits of the live model in eval mode."""
        live: nn.Module = self._live  # type: ignore[assignment]
        was_training = live.training
        live.eval()
        try:
            return live(x)
        finally:
            live.train(was_training)

"""Selective Synaptic Dampening (SSD): shrink the parameters that matter far more to D_f than to D.

Foster, Schoepf, Brintrup 2024, "Fast Machine Unlearning Without Retraining Through Selective Synaptic
Dampening" (AAAI). A one-shot, retraining-free method. With the diagonal of the Fisher information as
parameter importance,

    []_D  = E_{(x,y)∈D}  [ (∂ℓ(f_θ(x), y) / ∂θ)² ]        over the full training data D = D_f ∪ D_r,
    []_Df = E_{(x,y)∈D_f}[ (∂ℓ(f_θ(x), y) / ∂θ)² ]        over the forget set,

every parameter entry i that is specialised to the forget set is dampened:

    θ_i ← min(λ · []_D,i / []_Df,i, 1) · θ_i     if []_Df,i > α · []_D,i,     else θ_i unchanged.

α (selection weighting) sets how specialised an entry must be to be touched; λ (dampening constant) how hard it
is shrunk. The factor is in [0, 1], so no |θ_i| ever grows.

Approximation (as in common practice): the expectation is taken over mini-batches of size ``batch_size``, each
contributing the square of its *batch-mean* gradient (weighted by the batch's size), rather than over per-sample
squared gradients. Both importances use the same batch size, so their ratio — the only thing SSD looks at — is
compared like with like. ``D`` batches are drawn in a random order mixing D_f and D_r (a shuffled training
loader); for speed, ``train_subset`` scores ``[]_D`` on a random sample of D that keeps its D_f : D_r
proportion (``train_subset`` retain samples plus as many forget samples as that proportion asks); ``[]_Df`` always
uses all of D_f. The passes run in eval mode (no dropout, fixed
batch-norm statistics); each module's mode is restored afterwards. Only parameters with ``requires_grad`` are
scored and dampened.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from ready2unlearn.config import check
from ready2unlearn.data.base import ArrayDataset
from ready2unlearn.data.request import RequestViews
from ready2unlearn.engine.method import Context, MethodConfig, UnlearningMethod, register_method
from ready2unlearn.task import ClassificationTask


def _mixed_batches(
    parts: list[ArrayDataset], batch_size: int, generator: torch.Generator | None
) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
    """Mini-batches over the concatenation of ``parts``, shuffled when ``generator`` is given, without copying it."""
    sizes = [len(p) for p in parts]
    n = sum(sizes)
    order = torch.randperm(n, generator=generator) if generator is not None else torch.arange(n)
    offsets = torch.tensor([0, *sizes]).cumsum(0)
    for start in range(0, n, batch_size):
        idx = order[start : start + batch_size]
        xs, ys = [], []
        for k, part in enumerate(parts):
            local = idx[(idx >= offsets[k]) & (idx < offsets[k + 1])] - offsets[k]
            if len(local):
                local = local.to(part.x.device)
                xs.append(part.x[local])
                ys.append(part.y[local])
        yield torch.cat(xs), torch.cat(ys)


def diagonal_importance(
    model: nn.Module,
    task: ClassificationTask,
    batches: Iterator[tuple[torch.Tensor, torch.Tensor]],
    device: torch.device,
) -> tuple[dict[str, torch.Tensor], int]:
    """Batch-level diagonal Fisher: size-weighted mean over batches of the squared batch-mean loss gradient.

    Args:
        model: The model scored (its ``.grad`` fields are not touched).
        task: Supplies the loss.
        batches: ``(x, y)`` mini-batches.
        device: Where the forward passes run.

    Returns:
        Importance per trainable parameter name (same shapes), and the number of samples seen.
    """
    params = {name: p for name, p in model.named_parameters() if p.requires_grad}
    importance = {name: torch.zeros_like(p) for name, p in params.items()}
    seen = 0
    for x, y in batches:
        x, y = x.to(device), y.to(device)
        grads = torch.autograd.grad(task.loss(model, x, y), list(params.values()), allow_unused=True)
        for name, g in zip(params, grads, strict=True):
            if g is not None:
                importance[name].add_(g.detach().pow(2), alpha=len(y))
        seen += len(y)
    if seen:
        for v in importance.values():
            v.div_(seen)
    return importance, seen


@torch.no_grad()
def dampen(
    params: dict[str, torch.Tensor],
    imp_train: dict[str, torch.Tensor],
    imp_forget: dict[str, torch.Tensor],
    alpha: float,
    lam: float,
) -> int:
    """Applies the SSD update in place; returns how many entries were selected (``[]_Df > α·[]_D``).

    Args:
        params: Parameters to dampen, by name.
        imp_train: ``[]_D`` for each name in ``params``.
        imp_forget: ``[]_Df`` for each name in ``params``.
        alpha: Selection weighting α.
        lam: Dampening constant λ.
    """
    selected_total = 0
    for name, p in params.items():
        imp_d, imp_f = imp_train[name], imp_forget[name]
        selected = imp_f > alpha * imp_d
        # Selected entries have imp_f > 0 (α·[]_D ≥ 0), so the division is safe where it is used; the clamp only
        # keeps the unused branch of torch.where finite.
        factor = (lam * imp_d / imp_f.clamp_min(torch.finfo(imp_f.dtype).tiny)).clamp(max=1.0)
        p.mul_(torch.where(selected, factor, torch.ones_like(factor)))
        selected_total += int(selected.sum())
    return selected_total


@dataclass
class SSDConfig(MethodConfig):
    """SSD settings.

    The optimiser fields (``lr``, ``optimizer``, ``momentum``, ``weight_decay``, ``retain_batch_size``) are unused:
    SSD is a one-shot edit. ``batch_size`` is the batch size of both importance passes.

    Attributes:
        alpha: Selection weighting α: entries with ``[]_Df > α·[]_D`` are dampened (the paper uses 10; our
            default of 30 comes from the pilot sweep).
        lam: Dampening constant λ: selected entries are scaled by ``min(λ·[]_D/[]_Df, 1)`` (the paper's 1).
        train_subset: Score ``[]_D`` on this many random D_r samples plus a random D_f sample of the same
            proportion as in D (so D's composition is kept); ``null`` = all of D.
    """

    name: str = "ssd"
    batch_size: int = 64
    alpha: float = 30.0  # pilot sweep (benchmarks/unlearn_pilot); the paper's 10 over-dampened here
    lam: float = 1.0
    train_subset: int | None = None

    def __post_init__(self) -> None:
        super().__post_init__()
        check(self.alpha > 0, f"method.alpha must be positive, got {self.alpha}")
        check(self.lam >= 0, f"method.lam must be ≥ 0, got {self.lam}")
        check(
            self.train_subset is None or self.train_subset > 0,
            f"method.train_subset must be a positive integer or null, got {self.train_subset}",
        )


@register_method(
    "ssd", SSDConfig, "one-shot dampening of parameters far more important to D_f than D", "Foster et al. 2024"
)
class SSD(UnlearningMethod):
    """One-shot: scale each entry with ``[]_Df > α·[]_D`` by ``min(λ·[]_D/[]_Df, 1)``."""

    uses_retain = True
    iterative = False
    classifier_only = True

    def apply(self, model: nn.Module, views: RequestViews, ctx: Context) -> dict[str, Any]:
        """Scores both importances and dampens ``model`` in place.

        Returns:
            ``dampened`` (entries selected), ``dampened_fraction`` (of all trainable entries), ``parameters``,
            ``importance_samples`` (size of the D sample scored), ``grad_evals`` (samples through both gradient
            passes, the engine's cost count) and ``seconds``.
        """
        cfg: SSDConfig = self.config  # type: ignore[assignment]
        start = time.perf_counter()
        train_forget, retain = views.forget, views.retain  # the D_f and D_r parts of the D sample
        if cfg.train_subset is not None and cfg.train_subset < len(retain):
            # Subsample D_f in the same proportion: keeping all of D_f would inflate its share of D and with it
            # []_D on forget-specific entries, so far fewer would pass the α test than on the full data.
            n_forget = max(1, round(len(train_forget) * cfg.train_subset / len(retain)))
            pick = torch.randperm(len(train_forget), generator=ctx.generator)[:n_forget]
            train_forget = train_forget.subset(pick.numpy())
            retain = retain.subset(torch.randperm(len(retain), generator=ctx.generator)[: cfg.train_subset].numpy())
        device = next((p.device for p in model.parameters()), ctx.device)
        modes = {m: m.training for m in model.modules()}
        model.eval()
        try:
            imp_train, seen = diagonal_importance(
                model, self.task, _mixed_batches([train_forget, retain], cfg.batch_size, ctx.generator), device
            )
            imp_forget, seen_forget = diagonal_importance(
                model, self.task, views.forget.batches(cfg.batch_size), device
            )
        finally:
            for m, training in modes.items():
                m.training = training
        params = {name: p for name, p in model.named_parameters() if p.requires_grad}
        selected = dampen(params, imp_train, imp_forget, cfg.alpha, cfg.lam)
        total = sum(p.numel() for p in params.values())
        return {
            "dampened": selected,
            "dampened_fraction": selected / max(total, 1),
            "parameters": total,
            "importance_samples": seen,
            "grad_evals": seen + seen_forget,
            "seconds": time.perf_counter() - start,
        }

"""The unlearning loop every request goes through: :func:`unlearn_model`.

One loop draws forget/retain batches, asks the registered method (:mod:`ready2unlearn.engine.method`) for
its loss, steps the optimiser, and checks the stop rule (:mod:`ready2unlearn.engine.stop`) and divergence
every ``eval_every`` steps. Evaluation time is kept out of the reported unlearning time, so time ratios
compare the methods, not the bookkeeping. Recipes (``r2u unlearn``, the benchmarks, the ledger), the Python
API and the readiness calibration all run requests through it; it imports no method and no recipe.
"""

from __future__ import annotations

import copy
import math
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn

from ready2unlearn.data.base import ArrayDataset
from ready2unlearn.data.request import RequestViews
from ready2unlearn.engine.method import Batch, Context, UnlearningMethod
from ready2unlearn.engine.unlearn_config import UnlearnConfig
from ready2unlearn.progress import progress_bar
from ready2unlearn.task import accuracy_and_loss


@dataclass
class UnlearnResult:
    """What an unlearning run did and where it ended.

    Attributes:
        steps: Optimiser steps taken (for ``retrain``: its training steps).
        grad_evals: Per-sample gradient evaluations (samples in every backward pass).
        seconds: Wall-clock of the unlearning updates alone (evaluation for the stop rule excluded).
        eval_seconds: Wall-clock spent evaluating the stop rule.
        stop_reason: ``target reached``, ``budget exhausted``, ``applied`` or ``diverged: ...``.
        reached: Whether the stop target was met (``None`` for rules without a target).
        target: The numeric stop target, if any.
        restored: A divergence check restored the last good state.
        curve: Per evaluation: step, forget accuracy / loss, retain accuracy (the unlearning curve).
        method_stats: Whatever a non-iterative method reported.
    """

    steps: int
    grad_evals: int
    seconds: float
    eval_seconds: float
    stop_reason: str
    reached: bool | None
    target: float | None
    restored: bool = False
    curve: list[dict[str, float]] = field(default_factory=list)
    method_stats: dict[str, Any] = field(default_factory=dict)


def _cycle(data: ArrayDataset, batch_size: int, gen: torch.Generator) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
    """Endless shuffled mini-batches (reshuffled every pass)."""
    while True:
        yield from data.batches(batch_size, shuffle=True, generator=gen)


def build_unlearn_optimizer(model: nn.Module, method: UnlearningMethod) -> torch.optim.Optimizer:
    """SGD or Adam over the trainable parameters, from the method config."""
    cfg = method.config
    params = [p for p in model.parameters() if p.requires_grad]
    if cfg.optimizer == "adam":
        return torch.optim.Adam(params, lr=cfg.lr, weight_decay=cfg.weight_decay)
    return torch.optim.SGD(params, lr=cfg.lr, momentum=cfg.momentum, weight_decay=cfg.weight_decay)


def _params_finite(model: nn.Module) -> bool:
    return all(torch.isfinite(p).all() for p in model.parameters())


def unlearn_model(
    model: nn.Module,
    views: RequestViews,
    method: UnlearningMethod,
    cfg: UnlearnConfig,
    ctx: Context,
    *,
    reference_value: float | None = None,
    show_progress: bool = False,
) -> UnlearnResult:
    """Runs ``method`` on ``model`` (in place) until the stop rule, the budget or divergence ends it.

    Args:
        model: Any classifier module (only parameters with ``requires_grad`` are updated).
        views: The request's forget / retain / test views.
        method: A built method (``build_method``).
        cfg: Method, stop rule and seed.
        ctx: Task, RNG, device, and (for ``retrain``) the original training config.
        reference_value: The retrained model's forget accuracy (or loss), for ``target: reference``.
        show_progress: Show a progress bar.

    Returns:
        An :class:`UnlearnResult`; the model holds the final (or last good) state.
    """
    # Dropout and any stochastic method draw from the global RNG: seed it from the config, in a forked
    # RNG state so the caller's random stream is left as it was.
    with torch.random.fork_rng(devices=[ctx.device] if ctx.device.type == "cuda" else []):
        torch.manual_seed(cfg.seed)
        return _unlearn_loop(model, views, method, cfg, ctx, reference_value, show_progress)


def _unlearn_loop(
    model: nn.Module,
    views: RequestViews,
    method: UnlearningMethod,
    cfg: UnlearnConfig,
    ctx: Context,
    reference_value: float | None,
    show_progress: bool,
) -> UnlearnResult:
    stop = cfg.stop
    target = stop.resolve_target(ctx.task.num_classes, reference_value)
    device = ctx.device
    forget = views.forget.to(device)
    retain = views.retain.to(device)
    eval_pos = torch.randperm(len(retain), generator=ctx.generator)[: stop.retain_eval_size].sort().values
    retain_eval = retain.subset(eval_pos.numpy())
    forget_eval = forget
    if stop.forget_eval_size is not None and len(forget) > stop.forget_eval_size:
        # Drawn after the retain subset, so a run without it consumes the generator exactly as before.
        pos = torch.randperm(len(forget), generator=ctx.generator)[: stop.forget_eval_size].sort().values
        forget_eval = forget.subset(pos.numpy())

    curve: list[dict[str, float]] = []
    eval_seconds = 0.0

    def evaluate(step: int) -> dict[str, float]:
        nonlocal eval_seconds
        t = time.perf_counter()
        fa, fl = ctx.task.accuracy_and_loss(model, forget_eval)
        ra, _ = ctx.task.accuracy_and_loss(model, retain_eval)
        eval_seconds += time.perf_counter() - t
        row = {"step": step, "forget_acc": fa, "forget_loss": fl, "retain_acc": ra}
        curve.append(row)
        return row

    def result(steps: int, grad_evals: int, seconds: float, reason: str, restored: bool = False,
               stats: dict[str, Any] | None = None) -> UnlearnResult:  # fmt: skip
        last = curve[-1]
        reached = None if target is None else stop.reached(target, last["forget_acc"], last["forget_loss"])
        return UnlearnResult(steps, grad_evals, seconds, eval_seconds, reason, reached, target, restored, curve,
                             stats or {})  # fmt: skip

    bs = method.config.batch_size
    budget = stop.max_steps
    if stop.epochs is not None:
        budget = max(1, math.ceil(stop.epochs * method.primary_size(views) / bs))
    method.budget = budget
    method.prepare(model, views, ctx)
    start = evaluate(0)
    if not method.iterative:
        t0 = time.perf_counter()
        stats = method.apply(model, views, ctx)
        seconds = time.perf_counter() - t0
        evaluate(int(stats.get("steps", 0)))
        return result(int(stats.get("steps", 0)), int(stats.get("grad_evals", 0)), seconds, "applied", stats=stats)
    if stop.reached(target, start["forget_acc"], start["forget_loss"]):
        return result(0, 0, 0.0, "target reached")

    optimizer = build_unlearn_optimizer(model, method)
    forget_batches = _cycle(forget, bs, ctx.generator) if method.uses_forget else None
    retain_bs = method.config.retain_batch_size or bs
    retain_batches = _cycle(retain, retain_bs, ctx.generator) if method.uses_retain else None
    good_state = copy.deepcopy(model.state_dict())
    steps = grad_evals = 0
    seconds = 0.0
    reason = "budget exhausted"
    restored = False
    method.train_mode(model)
    with progress_bar(show_progress) as bar:
        task = bar.add_task(f"unlearn ({method.config.name})", total=budget)
        for step in range(budget):
            t0 = time.perf_counter()
            batch = Batch()
            if forget_batches is not None:
                batch.forget_x, batch.forget_y = next(forget_batches)
            if retain_batches is not None:
                batch.retain_x, batch.retain_y = next(retain_batches)
            loss, _ = method.loss(model, batch, step=step)
            if not torch.isfinite(loss):
                model.load_state_dict(good_state)
                reason, restored = f"diverged: non-finite loss at step {step + 1}", True
                break
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            method.after_backward(model)
            optimizer.step()
            method.after_step(model)
            seconds += time.perf_counter() - t0
            steps += 1
            grad_evals += batch.size()
            bar.update(task, advance=1)
            if steps % stop.eval_every and steps != budget:
                continue
            row = evaluate(steps)
            method.train_mode(model)
            if not _params_finite(model) or not math.isfinite(row["forget_loss"]):
                model.load_state_dict(good_state)
                reason, restored = f"diverged: non-finite parameters or outputs at step {steps}", True
                break
            if stop.retain_floor is not None and row["retain_acc"] < stop.retain_floor:
                model.load_state_dict(good_state)
                reason, restored = (f"diverged: retain accuracy {row['retain_acc']:.3f} below the floor "
                                    f"{stop.retain_floor} at step {steps}", True)  # fmt: skip
                break
            good_state = copy.deepcopy(model.state_dict())
            if stop.reached(target, row["forget_acc"], row["forget_loss"]):
                reason = "target reached"
                break
    if restored:
        evaluate(steps)
    model.eval()
    return result(steps, grad_evals, seconds, reason, restored)


def reference_value(reference: nn.Module | None, views: RequestViews, rule: str) -> float | None:
    """The retrained model's value that a ``reference`` stop target compares against.

    Its forget accuracy, or its forget loss for the ``forget_loss`` rule; ``None`` without a reference model.
    """
    if reference is None:
        return None
    return accuracy_and_loss(reference, views.forget)[1 if rule == "forget_loss" else 0]


def view_metrics(model: nn.Module, views: RequestViews, test: ArrayDataset) -> dict[str, float]:
    """UA / RA / TA-style accuracies and losses of ``model`` on a request's views (NaN for empty views)."""
    out: dict[str, float] = {}
    for name, data in (("forget", views.forget), ("retain", views.retain), ("test", test),
                       ("test_retain", views.test_retain), ("test_forget", views.test_forget)):  # fmt: skip
        if len(data):
            out[f"{name}_accuracy"], out[f"{name}_loss"] = accuracy_and_loss(model, data)
    return out

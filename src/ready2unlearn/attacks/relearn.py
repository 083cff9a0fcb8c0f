"""Relearning attack: does a little fine-tuning bring the forgotten data back?

Siddiqui, Weller, Krueger, Triantafillou et al. 2025, "From Dormant to Deleted: Tamper-Resistant
Unlearning Through Weight-Space Regularization": approximate unlearning often hides knowledge rather than
removing it, and fine-tuning on a handful of forget samples — or on retain data alone — restores
accuracy on the *other* forget samples. The attack fine-tunes a copy of the model on a relearn set for a
fixed step budget and records forget accuracy on the held-out part of D_f (the forget samples the
attacker did not train on) against the step. The same attack on the retrained model is the floor: a
model resists relearning when it recovers no more than a model that never saw D_f.

Relearn sets:
    ``forget-K``            K forget samples (``forget-10``), or a share of D_f (``forget-5%``)
    ``retain+forget-K``     the same K forget samples mixed with ``retain_size`` retain samples
    ``retain-only``         ``retain_size`` retain samples and no forget sample at all
"""

from __future__ import annotations

import copy
import re
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np
import torch
from torch import nn

from ready2unlearn.config import check
from ready2unlearn.data.base import ArrayDataset
from ready2unlearn.data.request import RequestViews
from ready2unlearn.errors import ConfigError
from ready2unlearn.task import ClassificationTask, Task

_SET = re.compile(r"^(retain\+)?forget-(\d+)(%?)$")


@dataclass
class RelearnConfig:
    """Settings of the relearning attack.

    Attributes:
        sets: Relearn sets to try (see the module docstring).
        steps: Fine-tuning steps per set (fixed budget).
        lr: Learning rate.
        optimizer: ``adam`` or ``sgd`` (momentum 0.9).
        batch_size: Mini-batch size (smaller relearn sets are used whole).
        retain_size: Retain samples in ``retain+forget-K`` and ``retain-only`` sets.
        eval_every: Record held-out forget accuracy every this many steps.
        seed: Seeds which samples form the relearn sets and the batch order.
    """

    sets: list[str] = field(default_factory=lambda: ["forget-10", "forget-5%", "retain+forget-10", "retain-only"])
    steps: int = 50
    lr: float = 1e-3
    optimizer: Literal["adam", "sgd"] = "adam"
    batch_size: int = 32
    retain_size: int = 100
    eval_every: int = 5
    seed: int = 0

    def __post_init__(self) -> None:
        check(len(self.sets) > 0, "relearn.sets must not be empty")
        for s in self.sets:
            check(s == "retain-only" or _SET.match(s) is not None,
                  f"relearn set {s!r} must be forget-K, forget-P%, retain+forget-K or retain-only")  # fmt: skip
        check(self.steps > 0 and self.lr > 0 and self.batch_size > 0 and self.eval_every > 0,
              "relearn.steps, lr, batch_size and eval_every must be positive")  # fmt: skip
        check(self.retain_size > 0, "relearn.retain_size must be positive")


def forget_count(spec: str, n_forget: int) -> int:
    """Forget samples the relearn set ``spec`` takes from a forget set of ``n_forget`` (0 for ``retain-only``).

    Raises:
        ConfigError: On a malformed ``spec``.
    """
    if spec == "retain-only":
        return 0
    m = _SET.match(spec)
    if m is None:
        raise ConfigError(f"relearn set {spec!r} must be forget-K, forget-P% or retain+forget-K")
    k = int(m.group(2))
    return max(1, round(n_forget * k / 100)) if m.group(3) else k


def build_relearn_set(
    spec: str, views: RequestViews, cfg: RelearnConfig
) -> tuple[ArrayDataset, ArrayDataset, dict[str, int]]:
    """The relearn set for ``spec`` and the held-out forget samples the attack is scored on.

    Raises:
        ConfigError: If the forget set is too small to leave a held-out part.
    """
    rng = np.random.default_rng(cfg.seed)
    n_f = len(views.forget)
    retain_pos = rng.choice(len(views.retain), size=min(cfg.retain_size, len(views.retain)), replace=False)
    if spec == "retain-only":
        return views.retain.subset(np.sort(retain_pos)), views.forget, {"forget": 0, "retain": len(retain_pos)}
    k = forget_count(spec, n_f)
    if k >= n_f:
        raise ConfigError(f"relearn set {spec!r} takes {k} of {n_f} forget samples and leaves none to score on")
    order = rng.permutation(n_f)
    learn_f, held = views.forget.subset(np.sort(order[:k])), views.forget.subset(np.sort(order[k:]))
    if spec.startswith("retain+"):
        r = views.retain.subset(np.sort(retain_pos))
        mixed = ArrayDataset(torch.cat([learn_f.x, r.x]), torch.cat([learn_f.y, r.y]), torch.cat([learn_f.ids, r.ids]))
        return mixed, held, {"forget": k, "retain": len(r)}
    return learn_f, held, {"forget": k, "retain": 0}


def _point(task: Task, model: nn.Module, held: ArrayDataset, step: int) -> dict[str, float]:
    acc, loss = task.accuracy_and_loss(model, held)
    return {"step": step, "forget_acc": acc, "forget_loss": loss}


def relearn_attack(
    model: nn.Module, views: RequestViews, cfg: RelearnConfig | None = None, task: Task | None = None
) -> dict[str, Any]:
    """Runs every relearn set of ``cfg`` on a copy of ``model``; the model itself is not changed.

    Args:
        model: The unlearned model.
        views: The request's views (forget samples are split into relearn and held-out parts).
        cfg: Attack settings.
        task: How the model is trained and scored; default a classifier. With a
            :class:`~ready2unlearn.task.CausalLMTask` the attacker fine-tunes on a few forget QA pairs
            and ``forget_acc`` is next-token accuracy on the held-out pairs' answers.

    Returns:
        ``{set: {"curve": [{"step", "forget_acc", "forget_loss"}...], "final_forget_acc", "max_forget_acc",
        "sizes"}}``; the curve is measured on the forget samples not in the relearn set.
    """
    cfg = cfg or RelearnConfig()
    task = task or ClassificationTask(0)
    # Dropout draws from the global RNG: seed it in a forked state so the attack is repeatable and the
    # caller's random stream is left alone.
    with torch.random.fork_rng():
        torch.manual_seed(cfg.seed)
        return _attack(model, views, cfg, task)


def _attack(model: nn.Module, views: RequestViews, cfg: RelearnConfig, task: Task) -> dict[str, Any]:
    device = next(model.parameters()).device
    out: dict[str, Any] = {}
    for spec in cfg.sets:
        learn, held, sizes = build_relearn_set(spec, views, cfg)
        attacked = copy.deepcopy(model).train()
        params = [p for p in attacked.parameters() if p.requires_grad]
        opt = (torch.optim.Adam(params, lr=cfg.lr) if cfg.optimizer == "adam"
               else torch.optim.SGD(params, lr=cfg.lr, momentum=0.9))  # fmt: skip
        gen = torch.Generator().manual_seed(cfg.seed)
        learn = learn.to(device)
        curve = [_point(task, attacked, held, 0)]
        batches = iter(())
        for step in range(1, cfg.steps + 1):
            try:
                x, y = next(batches)
            except StopIteration:
                batches = learn.batches(cfg.batch_size, shuffle=True, generator=gen)
                x, y = next(batches)
            loss = task.loss(attacked, x, y)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            if step % cfg.eval_every == 0 or step == cfg.steps:
                curve.append(_point(task, attacked, held, step))
                attacked.train()
        accs = [c["forget_acc"] for c in curve]
        out[spec] = {"curve": curve, "final_forget_acc": accs[-1], "max_forget_acc": max(accs), "sizes": sizes}
    return out

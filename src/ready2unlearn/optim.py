"""Optimiser and learning-rate schedule configuration."""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Literal

import torch

from ready2unlearn.config import check


@dataclass
class OptimConfig:
    """Optimiser and per-step learning-rate schedule.

    Attributes:
        name: ``adam``, ``adamw`` or ``sgd``.
        lr: Peak learning rate.
        weight_decay: L2 (``adam``, ``sgd``) or decoupled (``adamw``) weight decay.
        momentum: SGD momentum.
        nesterov: SGD Nesterov momentum.
        schedule: ``constant``, ``cosine`` (to ``min_lr_ratio``·lr) or ``step`` (×``gamma`` every
            ``step_epochs`` epochs).
        warmup_steps: Linear warm-up steps from 0 to ``lr``.
        min_lr_ratio: Final LR as a fraction of ``lr`` for the cosine schedule.
        step_epochs: Epochs between decays for the step schedule.
        gamma: Decay factor for the step schedule.
    """

    name: Literal["adam", "adamw", "sgd"] = "adam"
    lr: float = 1e-3
    weight_decay: float = 0.0
    momentum: float = 0.9
    nesterov: bool = False
    schedule: Literal["constant", "cosine", "step"] = "cosine"
    warmup_steps: int = 0
    min_lr_ratio: float = 0.0
    step_epochs: int = 10
    gamma: float = 0.1

    def __post_init__(self) -> None:
        check(self.lr > 0, f"optim.lr must be positive, got {self.lr}")
        check(self.weight_decay >= 0, f"optim.weight_decay must be ≥ 0, got {self.weight_decay}")
        check(0 <= self.momentum < 1, f"optim.momentum must be in [0, 1), got {self.momentum}")
        check(self.warmup_steps >= 0, "optim.warmup_steps must be ≥ 0")
        check(0 <= self.min_lr_ratio <= 1, "optim.min_lr_ratio must be in [0, 1]")
        check(self.step_epochs > 0 and 0 < self.gamma <= 1, "optim.step_epochs must be > 0, optim.gamma in (0, 1]")


def build_optimizer(params: Iterable[torch.nn.Parameter], cfg: OptimConfig) -> torch.optim.Optimizer:
    """The configured ``torch.optim`` optimiser over ``params``."""
    params = [p for p in params if p.requires_grad]
    if cfg.name == "sgd":
        return torch.optim.SGD(params, cfg.lr, cfg.momentum, weight_decay=cfg.weight_decay, nesterov=cfg.nesterov)
    if cfg.name == "adamw":
        return torch.optim.AdamW(params, cfg.lr, weight_decay=cfg.weight_decay)
    return torch.optim.Adam(params, cfg.lr, weight_decay=cfg.weight_decay)


def build_scheduler(
    opt: torch.optim.Optimizer, cfg: OptimConfig, total_steps: int, steps_per_epoch: int
) -> torch.optim.lr_scheduler.LambdaLR:
    """A per-step ``LambdaLR`` implementing warm-up followed by the configured decay."""

    def factor(step: int) -> float:
        if step < cfg.warmup_steps:
            return (step + 1) / cfg.warmup_steps
        if cfg.schedule == "cosine":
            t = min(1.0, (step - cfg.warmup_steps) / max(1, total_steps - cfg.warmup_steps))
            return cfg.min_lr_ratio + (1 - cfg.min_lr_ratio) * 0.5 * (1 + math.cos(math.pi * t))
        if cfg.schedule == "step":
            return cfg.gamma ** (step // (cfg.step_epochs * steps_per_epoch))
        return 1.0

    return torch.optim.lr_scheduler.LambdaLR(opt, factor)

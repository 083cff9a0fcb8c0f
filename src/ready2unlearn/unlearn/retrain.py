"""Retrain from scratch on the retain set: the exact answer every approximate method is judged against.

Re-initialises the model exactly as the original training run did (same architecture builder and seed)
and runs the training loop with the original run's settings on D_r only. With the default settings the
result is bit-identical to ``r2u train`` on the same data minus the forget set, which is what makes it the
gold standard.
"""

from __future__ import annotations

import copy
import time
from dataclasses import dataclass
from typing import Any

from torch import nn

from ready2unlearn.config import check
from ready2unlearn.data.request import RequestViews
from ready2unlearn.engine.fit import FitConfig, fit
from ready2unlearn.engine.method import Context, MethodConfig, UnlearningMethod, register_method
from ready2unlearn.errors import ConfigError
from ready2unlearn.runtime import seed_everything


@dataclass
class RetrainConfig(MethodConfig):
    """Attributes: epochs / seed — ``null`` keeps the original training run's values (the exact gold standard).

    The shared ``lr``/``optimizer`` fields are unused: the original training config decides.
    """

    name: str = "retrain"
    epochs: int | None = None
    seed: int | None = None

    def __post_init__(self) -> None:
        super().__post_init__()
        check(self.epochs is None or self.epochs > 0, "method.epochs must be positive or null")


@register_method("retrain", RetrainConfig, "retrain from scratch on D_r with the original recipe (gold standard)",
                 "exact unlearning")  # fmt: skip
class Retrain(UnlearningMethod):
    """Fresh initialisation + the original training loop on the retain set."""

    uses_forget = False
    uses_retain = True
    iterative = False

    def apply(self, model: nn.Module, views: RequestViews, ctx: Context) -> dict[str, Any]:
        """Re-initialises ``model`` in place and trains it on ``views.retain``."""
        if ctx.train_config is None:
            raise ConfigError("retrain needs the original training config (train with `r2u train` or pass one)")
        cfg: RetrainConfig = self.config  # type: ignore[assignment]
        # Only the loop settings matter here; data, model and readiness keys of the recorded config are the
        # caller's (the model factory already knows the architecture).
        train_cfg = FitConfig.from_train_config(ctx.train_config)
        if cfg.epochs is not None:
            train_cfg.epochs = cfg.epochs
        if cfg.seed is not None:
            train_cfg.seed = cfg.seed
        seed_everything(train_cfg.seed)  # the same RNG state the original run initialised the model from
        if ctx.model_factory is not None:
            fresh = ctx.model_factory()
        else:  # a user module: re-initialise a copy with every submodule's own initialiser
            fresh = copy.deepcopy(model)
            for m in fresh.modules():
                if hasattr(m, "reset_parameters"):
                    m.reset_parameters()
        # Frozen parameters (a pretrained backbone under adapters) are not what training learned from the
        # data, so "from scratch" keeps them; trainable parameters and buffers start afresh.
        frozen = {n for n, p in model.named_parameters() if not p.requires_grad}
        model.load_state_dict({k: v for k, v in fresh.state_dict().items() if k not in frozen}, strict=False)
        t0 = time.perf_counter()
        result = fit(model, views.retain, None, train_cfg, show_progress=False)
        steps_per_epoch = -(-len(views.retain) // train_cfg.batch_size)
        return {
            "epochs": train_cfg.epochs,
            "seed": train_cfg.seed,
            "train_seconds": time.perf_counter() - t0,
            "train_accuracy": result.metrics["train_accuracy"],
            "steps": train_cfg.epochs * steps_per_epoch,
            "grad_evals": train_cfg.epochs * len(views.retain),
        }

"""The learning-time baselines of the language benchmark: NEFTune, down-weighting and DP-SGD.

The Ready2Unlearn paper compares readiness on language models with three ways of training a model that are
meant to make later forgetting easier or safer. Each is trained here on the same data, with the same
fine-tuning settings and seed as the standard model, then served the same unlearning requests:

- ``neftune``: noisy input embeddings while fine-tuning (Jain et al. 2023, arXiv 2310.05914), through
  Transformers' own hook;
- ``downweight``: the loss of the revocable authors' QA pairs times ``w < 1``, so the model leans on them less;
- ``dp``: DP-SGD through Opacus (Abadi et al. 2016), every sample's influence bounded by clipping and noise.

In TOFU the revocable authors are the forget split's: the paper's setting, in which the data that may be
revoked is known at training time (as for readiness's revocable set).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from ready2unlearn.config import check, to_dict
from ready2unlearn.data.base import ArrayDataset
from ready2unlearn.engine.fit import FitSettings
from ready2unlearn.readiness.baselines import DPConfig, fit_downweighted, fit_dp_sgd, fit_neftune
from ready2unlearn.task import Task

BASELINES = ("neftune", "downweight", "dp")


@dataclass
class LMBaselines:
    """Which baselines to train (each off when ``null``).

    Attributes:
        neftune: NEFTune's noise scale α (the NEFTune paper uses 5-15).
        downweight: Loss weight of the revocable authors' rows, in [0, 1).
        dp: DP-SGD noise and clipping (Opacus).
    """

    neftune: float | None = None
    downweight: float | None = None
    dp: DPConfig | None = None

    def __post_init__(self) -> None:
        check(self.neftune is None or self.neftune > 0, f"baselines.neftune must be positive, got {self.neftune}")
        check(self.downweight is None or 0 <= self.downweight < 1,
              f"baselines.downweight must be in [0, 1), got {self.downweight}")  # fmt: skip

    @property
    def names(self) -> list[str]:
        """The baselines switched on, in a fixed order."""
        return [n for n in BASELINES if getattr(self, n) is not None]


def train_baseline(name: str, model: nn.Module, train: ArrayDataset, revocable: torch.Tensor, cfg: FitSettings,
                   baselines: LMBaselines, task: Task) -> dict[str, Any]:  # fmt: skip
    """Trains ``model`` in place as baseline ``name``; returns what the model card records about it.

    Args:
        name: ``neftune``, ``downweight`` or ``dp``.
        model: The untrained (or freshly LoRA-wrapped) model.
        train: The training rows.
        revocable: Positions in ``train`` of the revocable rows (down-weighted).
        cfg: Fine-tuning settings, seed included.
        baselines: Their settings.
        task: The causal-LM task.

    Raises:
        ValueError: For a baseline that is not switched on.
    """
    if name not in baselines.names:
        raise ValueError(f"baseline {name!r} is not configured (configured: {baselines.names or 'none'})")
    if name == "neftune":
        result = fit_neftune(model, train, None, cfg, baselines.neftune, task)  # type: ignore[arg-type]
        return {"result": result, "settings": {"alpha": baselines.neftune}}
    if name == "downweight":
        result = fit_downweighted(model, train, None, cfg, revocable, baselines.downweight, task)  # type: ignore[arg-type]
        return {"result": result, "settings": {"weight": baselines.downweight, "rows": len(revocable)}}
    result, epsilon = fit_dp_sgd(model, train, None, cfg, baselines.dp, task)  # type: ignore[arg-type]
    return {"result": result, "settings": {**to_dict(baselines.dp), "epsilon": epsilon}}  # type: ignore[arg-type]

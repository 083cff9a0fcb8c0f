"""``ready2unlearn.plan``: ``r2u plan`` on your own model and data."""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch
from torch import nn

from ready2unlearn.api.inputs import as_array_dataset, count_classes
from ready2unlearn.api.retraining import ModelSource, fresh_model_factory
from ready2unlearn.config import from_dict
from ready2unlearn.data.base import DataSpec, Split
from ready2unlearn.recipes.plan import PlanData, PlanRunner
from ready2unlearn.recipes.plan_config import PlanConfig
from ready2unlearn.recipes.train import TrainConfig


def plan(
    model: ModelSource,
    train: Any,
    test: Any,
    out_dir: str | Path,
    *,
    train_config: TrainConfig | None = None,
    seeds: Sequence[int] = (0, 1),
    show_progress: bool = False,
    **options: Any,
) -> dict[str, Any]:
    """Measures every strategy on your model and data, as ``r2u plan`` does on a preset, and recommends one.

    Args:
        model: A zero-argument factory of a freshly initialised classifier, or a module whose parameters
            ``reset_parameters()`` re-initialises (as for :func:`ready2unlearn.retrain`).
        train: Training data (``ArrayDataset`` or ``datasets.Dataset``).
        test: Test data.
        out_dir: Where models, streams, ``results.json`` and the report go (re-running resumes).
        train_config: Epochs, batch size, optimiser of every model (default ``TrainConfig()``); its
            ``data``/``model`` sections are not used.
        seeds: Seeds; each serves its own request stream.
        show_progress: Progress bars.
        **options: Any other :class:`~ready2unlearn.recipes.plan_config.PlanConfig` field (``requests``,
            ``serve``, ``request_size``, ``methods``, ``sisa``, ``utility_floor``...), as plain data.

    Returns:
        The results (``results["summary"]["recommendation"]`` is the recommendation).

    Raises:
        ConfigError: On an unknown or ill-typed option, or a model that cannot be re-initialised.
    """
    cfg = from_dict(PlanConfig, {**options, "seeds": list(seeds)})
    train_ds, test_ds = as_array_dataset(train), as_array_dataset(test, "test")
    x = train_ds.x
    kind = "text" if not torch.is_floating_point(x) else "image" if x.dim() == 4 else "tabular"
    spec = DataSpec(kind, tuple(x.shape[1:]), count_classes(train_ds, test_ds))
    split = Split("custom", train_ds, test_ds, spec)
    factory = fresh_model_factory(model)
    base = train_config or TrainConfig()

    def data(seed: int) -> PlanData:
        return PlanData(split, dataclasses.replace(base, seed=seed), factory, _name(model))

    return PlanRunner(cfg, out_dir, "custom", show_progress, data=data).run()


def _name(model: ModelSource) -> str:
    return type(model).__name__ if isinstance(model, nn.Module) else getattr(model, "__name__", "custom")

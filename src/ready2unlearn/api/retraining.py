"""``ready2unlearn.retrain``: the gold standard, a fresh model trained on the retain set only."""

from __future__ import annotations

import copy
import dataclasses
from collections.abc import Callable
from typing import Any

import torch
from torch import nn

from ready2unlearn.api.inputs import RequestLike, model_device, resolve_views
from ready2unlearn.api.unlearning import unlearn_config
from ready2unlearn.config import to_dict
from ready2unlearn.engine.method import Context, build_method
from ready2unlearn.engine.unlearn import unlearn_model
from ready2unlearn.errors import ConfigError
from ready2unlearn.recipes.train import TrainConfig
from ready2unlearn.task import ClassificationTask

#: What :func:`retrain` builds its fresh model from: a zero-argument factory, or a module to re-initialise.
ModelSource = nn.Module | Callable[[], nn.Module]


def retrain(
    model: ModelSource,
    train: Any,
    request: RequestLike,
    train_config: TrainConfig | None = None,
    seed: int | None = None,
    *,
    show_progress: bool = False,
) -> nn.Module:
    """Trains a fresh copy of the architecture on the training data minus what ``request`` names.

    This is the ``retrain`` unlearning method of ``r2u unlearn`` (the exact answer every approximate method is
    judged against), returning a new model; the one passed in is left as it was.

    Args:
        model: A zero-argument factory returning a freshly initialised model, or a module: then a deep copy is
            re-initialised by calling ``reset_parameters()`` on every submodule that has one (a module whose
            trainable parameters are not all covered that way is refused: pass a factory). Frozen parameters
            (a pretrained backbone under adapters) are kept, as in ``r2u unlearn --method retrain``.
        train: The full training data (``ArrayDataset`` or ``datasets.Dataset``).
        request: What to leave out (a ``DeletionRequest``, ``"class:3"``, or sample ids).
        train_config: Epochs, batch size, optimiser (default ``TrainConfig()``: 20 epochs of Adam); its
            ``data``/``model`` sections are not used.
        seed: Training seed, which also seeds the re-initialisation (default: ``train_config.seed``).
        show_progress: Show a progress bar.

    Returns:
        The retrained model, on the same device as the model (or factory output) given.

    Raises:
        ConfigError: If ``model`` is neither a module nor a factory of one, or cannot be re-initialised.
        DataError: On unusable data.
        RequestError: If the request does not fit ``train``.
    """
    cfg = train_config or TrainConfig()
    if seed is not None:
        cfg = dataclasses.replace(cfg, seed=seed)
    if isinstance(model, nn.Module):
        _check_resettable(model)
        fresh, factory = copy.deepcopy(model), None  # the retrain method re-initialises the copy itself
    elif callable(model):
        fresh, factory = _call_factory(model), model
    else:
        raise ConfigError(f"model must be an nn.Module or a zero-argument factory, got {type(model).__name__}")
    device = model_device(fresh)
    views, _, num_classes = resolve_views(train, None, request)
    task = ClassificationTask(num_classes)
    ucfg = unlearn_config("retrain", seed=cfg.seed)
    ctx = Context(task, torch.Generator().manual_seed(cfg.seed), device, train_config=to_dict(cfg),
                  model_factory=factory)  # fmt: skip
    unlearn_model(fresh, views, build_method(ucfg.method, task), ucfg, ctx, show_progress=show_progress)
    return fresh


def fresh_model_factory(model: ModelSource) -> Callable[[], nn.Module]:
    """A zero-argument builder of freshly initialised models from a factory, or from a module to re-initialise.

    A module is deep-copied once; each call copies it again and re-initialises every submodule with its own
    ``reset_parameters()``, keeping frozen parameters (a pretrained backbone under adapters), as the
    ``retrain`` method does.

    Raises:
        ConfigError: If ``model`` is neither, or a module ``reset_parameters()`` would not fully re-initialise.
    """
    if isinstance(model, nn.Module):
        _check_resettable(model)
        template = copy.deepcopy(model)
        frozen = {n for n, p in template.named_parameters() if not p.requires_grad}

        def build() -> nn.Module:
            fresh = copy.deepcopy(template)
            for m in fresh.modules():
                if hasattr(m, "reset_parameters"):
                    m.reset_parameters()
            fresh.load_state_dict({k: v for k, v in template.state_dict().items() if k in frozen}, strict=False)
            return fresh

        return build
    if callable(model):
        return lambda: _call_factory(model)
    raise ConfigError(f"model must be an nn.Module or a zero-argument factory, got {type(model).__name__}")


def _call_factory(factory: Callable[[], nn.Module]) -> nn.Module:
    out = factory()
    if not isinstance(out, nn.Module):
        raise ConfigError(f"the model factory must return an nn.Module, got {type(out).__name__}")
    return out


def _check_resettable(model: nn.Module) -> None:
    """Refuses a module whose trainable parameters ``reset_parameters()`` would not all re-initialise.

    A parameter owned by a custom module without that method would keep its trained value, and the "fresh"
    model would still carry what it learned from the forget set.

    Raises:
        ConfigError: Naming the first such parameter.
    """
    covered = {id(p) for m in model.modules() if hasattr(m, "reset_parameters") for p in m.parameters(recurse=False)}
    for name, p in model.named_parameters():
        if p.requires_grad and id(p) not in covered:
            raise ConfigError(f"parameter {name!r} belongs to a module without reset_parameters(), so retraining "
                              "cannot re-initialise it: pass a zero-argument factory that builds a fresh "
                              "model")  # fmt: skip

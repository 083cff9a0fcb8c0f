"""``ready2unlearn.unlearn``: serve one deletion request on any classifier, in one call.

The same engine as ``r2u unlearn`` (:func:`~ready2unlearn.engine.unlearn.unlearn_model`) with the same
defaults (each method's shipped preset), so a result here and on the command line agree. The pieces it
assembles — :class:`UnlearnConfig`, a :class:`Context`, :func:`build_method`, the request's views — stay public
for those who need more control.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from ready2unlearn.api.inputs import RequestLike, model_device, resolve_views
from ready2unlearn.config import from_dict, to_dict
from ready2unlearn.engine.method import Context, build_method
from ready2unlearn.engine.stop import StopConfig
from ready2unlearn.engine.unlearn import UnlearnResult, reference_value, unlearn_model
from ready2unlearn.engine.unlearn_config import UnlearnConfig, load_unlearn_config
from ready2unlearn.errors import ConfigError
from ready2unlearn.recipes.train import TrainConfig
from ready2unlearn.task import ClassificationTask


def unlearn_config(
    method: str = "ga",
    stop: StopConfig | str | None = None,
    *,
    lr: float | None = None,
    budget: int | None = None,
    seed: int = 0,
    **method_kwargs: Any,
) -> UnlearnConfig:
    """Resolves an :class:`UnlearnConfig` the way ``r2u unlearn`` does: the method's preset, then the arguments.

    Args:
        method: Registered method name (``r2u ls methods``).
        stop: A :class:`StopConfig`, or its command-line form (``steps:100``, ``forget_acc:0.01``,
            ``forget_acc:chance``, ``forget_loss:reference``); ``None`` keeps the preset's rule. A string
            changes only the rule and target (and ``steps:N`` the budget), like ``--stop``.
        lr: Learning rate (default: the preset's, picked by the pilot sweep).
        budget: Step budget, ``stop.max_steps`` (default: the preset's or the ``StopConfig``'s).
        seed: Seeds batch order, dropout and any sampling of the method.
        **method_kwargs: The method's own settings (``beta=0.1`` for ``npo``...), type-checked.

    Raises:
        ConfigError: On an unknown method (with a "did you mean"), stop rule or setting.
    """
    base, _ = load_unlearn_config(method=method)
    data = to_dict(base)
    data["method"].update(method_kwargs)
    if lr is not None:
        data["method"]["lr"] = lr
    if isinstance(stop, StopConfig):
        data["stop"] = to_dict(stop)
    elif isinstance(stop, str):
        parsed = StopConfig.parse(stop)  # validates the rule and target: one-line ConfigError
        data["stop"].update(rule=parsed.rule, target=parsed.target)
        if parsed.rule == "steps" and ":" in stop:
            data["stop"]["max_steps"] = parsed.max_steps
    elif stop is not None:
        raise ConfigError(f"stop must be a StopConfig or a rule like 'forget_acc:0.01', got {type(stop).__name__}")
    if budget is not None:
        data["stop"]["max_steps"] = budget
    data["seed"] = seed
    return from_dict(UnlearnConfig, data)


def unlearn(
    model: nn.Module,
    train: Any,
    request: RequestLike,
    method: str = "ga",
    stop: StopConfig | str | None = None,
    reference: nn.Module | None = None,
    *,
    test: Any = None,
    lr: float | None = None,
    budget: int | None = None,
    seed: int = 0,
    train_config: TrainConfig | None = None,
    show_progress: bool = False,
    **method_kwargs: Any,
) -> UnlearnResult:
    """Makes ``model`` forget what ``request`` names. The model is changed **in place**.

    Args:
        model: Any classifier ``nn.Module`` mapping a batch of inputs to logits ``[B, C]``; it stays on its
            device. Only parameters with ``requires_grad`` change.
        train: The data the model was trained on: an :class:`~ready2unlearn.data.ArrayDataset` or a Hugging
            Face ``datasets.Dataset`` (see :func:`~ready2unlearn.api.from_hf_dataset` for its columns).
        request: A :class:`~ready2unlearn.data.DeletionRequest`, its spec (``"class:3"``, ``"samples:1,2"``,
            ``"random:0.01"``, ``"group:user=7"``) or an iterable of sample ids.
        method: Registered unlearning method (``ga``, ``npo``, ``scrub``...; ``r2u ls methods``).
        stop: Stop rule (see :func:`unlearn_config`); default the method preset's.
        reference: A model retrained without the forget set, needed by ``reference`` targets (its forget
            accuracy, or loss for ``forget_loss``, becomes the target).
        test: Held-out data. Unlearning never reads it; it is accepted so that one set of arguments serves
            both this function and :func:`~ready2unlearn.api.evaluate`.
        lr: Learning rate (default: the preset's).
        budget: Step budget (default: the preset's).
        seed: Seeds batch order, dropout and the method's sampling: the same seed gives the same weights.
        train_config: The original training recipe; only ``method="retrain"`` needs it.
        show_progress: Show a progress bar.
        **method_kwargs: The method's own settings.

    Returns:
        The :class:`~ready2unlearn.engine.unlearn.UnlearnResult`: steps, stop reason, whether the target was
        reached, the unlearning curve.

    Raises:
        ConfigError: On an unknown method or setting, a bad stop rule, or a ``reference`` target without a
            reference model.
        DataError: On unusable data.
        RequestError: If the request does not fit ``train`` (unknown class, ids not in it...).
    """
    device = model_device(model)
    cfg = unlearn_config(method, stop, lr=lr, budget=budget, seed=seed, **method_kwargs)
    if cfg.method.name == "retrain" and train_config is None:
        raise ConfigError("method 'retrain' needs train_config=TrainConfig(...), the recipe the model was trained "
                          "with; or call ready2unlearn.retrain(...)")  # fmt: skip
    views, _, num_classes = resolve_views(train, test, request)
    task = ClassificationTask(num_classes)
    # A generator of its own (not the global RNG) orders the batches, so the call never reseeds the caller's
    # random state; the engine forks the global RNG for dropout.
    ctx = Context(task, torch.Generator().manual_seed(seed), device,
                  train_config=to_dict(train_config) if train_config is not None else None)  # fmt: skip
    return unlearn_model(model, views, build_method(cfg.method, task), cfg, ctx,
                         reference_value=reference_value(reference, views, cfg.stop.rule),
                         show_progress=show_progress)  # fmt: skip

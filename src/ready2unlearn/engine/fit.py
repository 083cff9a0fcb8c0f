"""The training loop every model goes through: :func:`fit`, on any ``nn.Module`` and any ``ArrayDataset``.

The loop is deliberately plain (nanochat style): shuffle, forward, task loss, backward, step, and once per
epoch an evaluation and a crash-safe state save. It knows nothing about where its settings come from or what
is trained for: the recipes (``r2u train``, the benchmarks), the retrain method, SISA and the readiness
baselines all call it. Anything added to the task loss — the Ready2Unlearn objective, a negative-training
term — comes in through the ``regularizer`` hook, built by the caller; so this layer never imports readiness.

Two guards keep a bad run from producing a bad artifact: a non-finite loss (checked before the step that
would spread it into the weights) or non-finite weights at the end of an epoch stop training with
:class:`TrainingDiverged`; and a resumed run continues only the run it was saved by — the state records the
resolved config, and any difference but a longer ``epochs`` (with ``allow_extend``) is refused.
"""

from __future__ import annotations

import json
import math
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any, Protocol

import torch
from torch import nn

from ready2unlearn import resume
from ready2unlearn.config import check, from_dict, to_dict
from ready2unlearn.data.augment import crop_flip
from ready2unlearn.data.base import ArrayDataset
from ready2unlearn.errors import ConfigError
from ready2unlearn.optim import OptimConfig, build_optimizer, build_scheduler
from ready2unlearn.progress import progress_bar
from ready2unlearn.runtime import seed_everything
from ready2unlearn.task import ClassificationTask, Task

#: Config keys a resumed run may change: where it runs and where the (fingerprint-checked) files are.
RESUME_MAY_CHANGE = ("device", "data.data_dir")

#: ``regularizer(model, step, epoch) -> (extra loss or None, parts)``: added to the task loss by :func:`fit`.
Regularizer = Callable[[nn.Module, int, int], tuple["torch.Tensor | None", dict[str, float]]]
#: ``batch_loss(model, per_sample_losses, positions, step, epoch) -> loss``: turns a batch's per-row task losses
#: (rows ``positions`` of the training set) into the loss :func:`fit` minimises, in place of their mean.
BatchLoss = Callable[[nn.Module, "torch.Tensor", "torch.Tensor", int, int], "torch.Tensor"]


class FitSettings(Protocol):
    """The settings :func:`fit` reads: the loop's share of a training config.

    :class:`~ready2unlearn.recipes.train.TrainConfig` (the full recipe config: data, model, readiness...) and
    :class:`FitConfig` both provide them. The whole config object is what a resumable run records, so a
    recipe passes its own config and resuming checks every key of it.
    """

    optim: OptimConfig
    epochs: int
    batch_size: int
    seed: int
    augment: bool
    grad_clip: float | None
    accelerate: bool


@dataclass
class FitConfig:
    """Just the loop settings, for callers that train without a recipe config (the ``retrain`` method).

    Field names, meanings and defaults are those of :class:`~ready2unlearn.recipes.train.TrainConfig` (a
    test keeps them equal), so :meth:`from_train_config` reads them off a checkpoint card's recorded config.

    Attributes:
        optim: Optimiser and LR schedule.
        epochs: Passes over the training set.
        batch_size: Mini-batch size.
        seed: Seeds initialisation, shuffling, dropout and augmentation.
        augment: Random crop + horizontal flip on images.
        grad_clip: Clip the global gradient norm to this value; ``null`` = no clipping.
        device: ``auto``, ``cpu``, ``cuda``, ``cuda:N`` or ``mps`` (for callers that place the model).
        accelerate: Run the loop through Hugging Face Accelerate (extra ``hf``).
    """

    optim: OptimConfig = field(default_factory=OptimConfig)
    epochs: int = 20
    batch_size: int = 128
    seed: int = 0
    augment: bool = False
    grad_clip: float | None = None
    device: str = "auto"
    accelerate: bool = False

    def __post_init__(self) -> None:
        check(self.epochs > 0, f"epochs must be positive, got {self.epochs}")
        check(self.batch_size > 0, f"batch_size must be positive, got {self.batch_size}")
        check(self.grad_clip is None or self.grad_clip > 0, "grad_clip must be positive or null")

    @classmethod
    def of(cls, cfg: FitSettings, **changes: Any) -> FitConfig:
        """The loop settings of ``cfg`` (any :class:`FitSettings`, e.g. a ``TrainConfig``), with ``changes``."""
        values = {f.name: getattr(cfg, f.name) for f in fields(cls) if hasattr(cfg, f.name)}
        return cls(**{**values, **changes})

    @classmethod
    def from_train_config(cls, data: Mapping[str, Any]) -> FitConfig:
        """The loop settings of a recorded training config (``to_dict(TrainConfig)``); other keys are ignored."""
        names = {f.name for f in fields(cls)}
        return from_dict(cls, {k: v for k, v in data.items() if k in names})


class TrainingDiverged(ConfigError):
    """The loss or the weights became non-finite (NaN/inf): the run stops before writing anything."""


@dataclass
class FitResult:
    """What :func:`fit` returns: per-epoch history, final metrics and wall-clock seconds."""

    history: list[dict[str, float]]
    metrics: dict[str, float]
    seconds: float


def fit(
    model: nn.Module,
    train: ArrayDataset,
    test: ArrayDataset | None,
    cfg: FitSettings,
    *,
    state_dir: str | Path | None = None,
    resume_from_state: bool = False,
    allow_extend: bool = False,
    show_progress: bool = True,
    on_epoch: Callable[[dict[str, float]], None] | None = None,
    regularizer: Regularizer | None = None,
    sample_weight: torch.Tensor | None = None,
    task: Task | None = None,
    until_epoch: int | None = None,
    batch_loss: BatchLoss | None = None,
) -> FitResult:
    """Trains ``model`` in place on ``train`` with the task loss (cross-entropy for a classifier).

    Args:
        model: Module mapping a batch of inputs to logits ``[B, C]``.
        train: Training data.
        test: Evaluated after every epoch when given.
        cfg: Epochs, batch size, optimiser, seed... (:class:`FitSettings`; a recipe's ``TrainConfig`` is one,
            and its other keys are only recorded for resuming).
        state_dir: Where to save crash-safe state after each epoch (``None`` = don't). The state records
            ``to_dict(cfg)``.
        resume_from_state: Continue from the state in ``state_dir`` if one exists; it must have been saved
            with the same config (``device`` and ``data.data_dir`` aside).
        allow_extend: When resuming, also accept a larger ``epochs`` (the LR schedule is stretched to the
            new length from where it stands).
        show_progress: Show a progress bar.
        on_epoch: Called with each epoch's metrics row.
        regularizer: Extra loss added to every step's task loss, called as ``regularizer(model, step, epoch)``
            and returning ``(loss or None, parts)`` — the hook readiness training plugs into.
        sample_weight: Per-row loss weights aligned with ``train`` (e.g. down-weighting a revocable set);
            the batch loss is the weighted mean.
        task: How batches are scored; default a :class:`ClassificationTask`. A
            :class:`~ready2unlearn.task.CausalLMTask` trains a language model on its label tokens
            (then the metrics' "accuracy" is next-token accuracy). Only parameters with ``requires_grad``
            are optimised, so a LoRA-wrapped model trains its adapters alone.
        until_epoch: Stop when this many epochs are done, with the LR schedule still spanning
            ``cfg.epochs``: the model as the whole run has it at that point (e.g. where a ready run with
            ``start_epoch`` = ``until_epoch`` measures ``alpha=auto``). ``None`` = train all epochs.
        batch_loss: Shapes each batch's per-row task losses into its loss instead of the mean (e.g.
            :class:`~ready2unlearn.readiness.flooding.PoolFlooding`); its ``state_dict`` is saved and restored
            like a regularizer's. Not together with ``sample_weight``.

    Returns:
        A :class:`FitResult`; ``metrics`` holds ``train_accuracy``, ``train_loss`` and, with ``test``,
        ``test_accuracy`` and ``test_loss``.

    Raises:
        TrainingDiverged: If a loss or, at the end of an epoch, a weight is NaN or infinite. The model keeps
            the weights of the last finite step; no state is saved for the epoch that diverged.
        ConfigError: If the state to resume from was saved with another config.
        DataError: If the state to resume from is corrupt.
        ValueError: If ``until_epoch`` is outside ``[0, cfg.epochs]``, ``sample_weight`` does not fit, or both
            ``sample_weight`` and ``batch_loss`` are given.
    """
    if until_epoch is not None and not 0 <= until_epoch <= cfg.epochs:
        raise ValueError(f"until_epoch must be between 0 and epochs ({cfg.epochs}), got {until_epoch}")
    gen = seed_everything(cfg.seed)
    accel = _accelerator() if cfg.accelerate else None
    if accel is not None:
        model.to(accel.device)
    device = next(model.parameters()).device
    train_dev = train.to(device)
    if sample_weight is not None and len(sample_weight) != len(train):
        raise ValueError(f"sample_weight has {len(sample_weight)} entries for {len(train)} training rows")
    if sample_weight is not None and batch_loss is not None:
        raise ValueError("give sample_weight or batch_loss, not both (a batch_loss can weight rows itself)")
    weights = None if sample_weight is None else sample_weight.to(device=device, dtype=torch.float32)
    task = task or ClassificationTask(0)
    optimizer = build_optimizer([p for p in model.parameters() if p.requires_grad], cfg.optim)
    steps_per_epoch = -(-len(train) // cfg.batch_size)
    scheduler = build_scheduler(optimizer, cfg.optim, cfg.epochs * steps_per_epoch, steps_per_epoch)
    # The module the task loss runs through: DDP-wrapped under Accelerate. ``model`` stays the plain module
    # (the regulariser and evaluation use it; it shares its parameters with the wrapper).
    net, rank, world = model, 0, 1
    if accel is not None:
        net, optimizer = accel.prepare(model, optimizer)
        rank, world = accel.process_index, accel.num_processes
    is_main = rank == 0

    start_epoch, history, elapsed = 0, [], 0.0
    config = to_dict(cfg)
    if resume_from_state and state_dir is not None and resume.has_state(state_dir):
        check_resume(state_dir, config, allow_extend)
        start_epoch, extra = resume.load_state(state_dir, model, optimizer, scheduler, gen)
        history, elapsed = extra.get("history", []), float(extra.get("seconds", 0.0))
        if regularizer is not None and hasattr(regularizer, "load_state_dict") and "regularizer" in extra:
            # Readiness carries state across epochs (the measured α, the dual λ): a resumed run continues it.
            regularizer.load_state_dict(extra["regularizer"])
        if batch_loss is not None and hasattr(batch_loss, "load_state_dict") and "batch_loss" in extra:
            batch_loss.load_state_dict(extra["batch_loss"])  # e.g. the flood level measured this epoch

    step = start_epoch * steps_per_epoch
    t0 = time.perf_counter()
    with progress_bar(show_progress) as bar:
        last = cfg.epochs if until_epoch is None else until_epoch
        bar_id = bar.add_task("train", total=last * steps_per_epoch, completed=start_epoch * steps_per_epoch)
        for epoch in range(start_epoch, last):
            model.train()
            total_loss, seen = 0.0, 0
            for batch_no, idx in enumerate(train_dev.batch_positions(cfg.batch_size, shuffle=True, generator=gen)):
                idx = idx[rank::world]  # every process draws the same permutation and takes its share
                x, y = train_dev.x[idx], train_dev.y[idx]
                if cfg.augment and x.dim() == 4:
                    x = crop_flip(x, gen)
                if batch_loss is not None:
                    loss = batch_loss(model, task.per_sample_loss(net, x, y), idx, step, epoch)
                elif weights is None:
                    loss = task.loss(net, x, y)
                else:
                    w = weights[idx]
                    loss = (task.per_sample_loss(net, x, y) * w).sum() / w.sum().clamp_min(1e-12)
                task_loss = loss
                if regularizer is not None:
                    extra, _ = regularizer(model, step, epoch)
                    if extra is not None:
                        loss = loss + extra
                step += 1
                # Checked before backward/step, so the model keeps the last finite weights. (Under Accelerate
                # each process checks its own share; a NaN there is a NaN in the averaged update too.)
                value = loss.item()
                if not math.isfinite(value):
                    raise TrainingDiverged(f"training diverged at epoch {epoch + 1} step {batch_no + 1}: loss is "
                                           f"{value}; lower optim.lr (now {cfg.optim.lr:g})")  # fmt: skip
                optimizer.zero_grad(set_to_none=True)
                if accel is not None:
                    accel.backward(loss)
                else:
                    loss.backward()
                if cfg.grad_clip is not None:
                    nn.utils.clip_grad_norm_(model.parameters(), cfg.grad_clip)
                optimizer.step()
                scheduler.step()
                total_loss += task_loss.item() * len(y)
                seen += len(y)
                bar.update(bar_id, advance=1, description=f"epoch {epoch + 1}/{cfg.epochs} loss {task_loss.item():.3f}")
            if not all(torch.isfinite(p).all() for p in model.parameters()):
                raise TrainingDiverged(f"training diverged in epoch {epoch + 1}: the weights are no longer finite; "
                                       f"lower optim.lr (now {cfg.optim.lr:g})")  # fmt: skip
            row = {"epoch": epoch + 1, "train_loss_running": total_loss / seen, "lr": scheduler.get_last_lr()[0]}
            if test is not None:
                row["test_accuracy"], row["test_loss"] = task.accuracy_and_loss(model, test)
            history.append(row)
            if state_dir is not None and is_main:
                seconds = elapsed + time.perf_counter() - t0
                state = {"history": history, "seconds": seconds, "config": config}
                if regularizer is not None and hasattr(regularizer, "state_dict"):
                    state["regularizer"] = regularizer.state_dict()
                if batch_loss is not None and hasattr(batch_loss, "state_dict"):
                    state["batch_loss"] = batch_loss.state_dict()
                resume.save_state(state_dir, epoch + 1, model, optimizer, scheduler, gen, state)
            if on_epoch is not None:
                on_epoch(row)
    seconds = elapsed + time.perf_counter() - t0

    return FitResult(history, final_metrics(model, train, test, task), seconds)


def check_resume(state_dir: str | Path, config: dict[str, Any], allow_extend: bool = False) -> None:
    """Refuses to resume a saved state into a run whose config differs from the one that saved it.

    Weights, optimiser moments and the LR schedule come from the saved run, so any other config would
    give a model whose card describes settings it was not trained with (or, for another architecture, a
    state that does not even load). Only ``device``/``data.data_dir`` may change, and with ``allow_extend``
    a larger ``epochs``.

    Args:
        state_dir: The ``.resume`` folder.
        config: ``to_dict`` of the config the run would continue with.
        allow_extend: Accept a larger ``epochs``.

    Raises:
        ConfigError: Listing every differing key as ``key: saved → now``.
        DataError: If the state is corrupt or does not record its config.
    """
    saved = resume.read_meta(state_dir)["extra"].get("config")
    if not isinstance(saved, dict):
        raise ConfigError(f"cannot resume: the saved state in {state_dir} does not record its config (written by an "
                          "older version); rerun with --overwrite instead of --resume to start over")  # fmt: skip
    changes = [(k, a, b) for k, a, b in config_changes(saved, config) if k not in RESUME_MAY_CHANGE]
    grows = any(k == "epochs" and isinstance(a, int) and isinstance(b, int) and b > a for k, a, b in changes)
    if allow_extend and grows:
        changes = [c for c in changes if c[0] != "epochs"]
    if not changes:
        return
    listed = "; ".join(f"{k}: {_show(a)} → {_show(b)}" for k, a, b in changes)
    hint = ", or pass --allow-extend to train more epochs" if grows and not allow_extend else ""
    shrinks = allow_extend and any(k == "epochs" for k, _, _ in changes)
    shrink = " (--allow-extend only lets epochs grow)" if shrinks else ""
    raise ConfigError(f"cannot resume: the config changed ({listed}){shrink}; rerun with --overwrite instead of "
                      f"--resume to start over{hint}")  # fmt: skip


_ABSENT = object()


def config_changes(old: dict[str, Any], new: dict[str, Any], prefix: str = "") -> list[tuple[str, Any, Any]]:
    """``(dotted key, old value, new value)`` for every leaf that differs, sorted by key."""
    out = []
    for key in sorted(set(old) | set(new)):
        a, b = old.get(key, _ABSENT), new.get(key, _ABSENT)
        if isinstance(a, dict) and isinstance(b, dict):
            out += config_changes(a, b, f"{prefix}{key}.")
        elif a != b:
            out.append((f"{prefix}{key}", a, b))
    return out


def _show(value: Any) -> str:
    if value is _ABSENT:
        return "(absent)"
    if isinstance(value, str):
        return value
    return json.dumps(value)


def _accelerator() -> Any:
    """An ``accelerate.Accelerator`` (the process group set up by ``accelerate launch``, if any)."""
    try:
        from accelerate import Accelerator
    except ImportError:
        raise ConfigError('accelerate=true needs Hugging Face Accelerate: pip install "ready2unlearn[hf]"') from None
    return Accelerator()


def final_metrics(
    model: nn.Module, train: ArrayDataset, test: ArrayDataset | None, task: Task | None = None
) -> dict[str, float]:
    """``train_accuracy``/``train_loss`` and, with ``test``, ``test_accuracy``/``test_loss`` of a trained model."""
    task = task or ClassificationTask(0)
    metrics: dict[str, float] = {}
    metrics["train_accuracy"], metrics["train_loss"] = task.accuracy_and_loss(model, train)
    if test is not None:
        metrics["test_accuracy"], metrics["test_loss"] = task.accuracy_and_loss(model, test)
    return metrics

"""Standard training recipe: dataset + model config → trained checkpoint with its card.

Launch: ``r2u train --config fashion-cnn --out runs/fashion`` (or ``--dataset digits --model mlp``).

The loop is deliberately plain (nanochat style): shuffle, forward, cross-entropy, backward, step, and
once per epoch an evaluation and a crash-safe state save. :func:`fit` works on any ``nn.Module`` and any
:class:`~ready2unlearn.data.ArrayDataset`; :func:`run` adds data loading, model building and the artifact.

Two guards keep a bad run from producing a bad artifact: a non-finite loss (checked before the step that
would spread it into the weights) or non-finite weights at the end of an epoch stop training with
:class:`TrainingDiverged`; and ``--resume`` continues only the run it was saved by — the state records the
resolved config, and any difference but a longer ``epochs`` (with ``allow_extend``) is refused.
"""

from __future__ import annotations

import json
import math
import shutil
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn

from ready2unlearn import resume
from ready2unlearn.artifacts import (
    CARD,
    RESUME_DIR,
    clear_run_files,
    now_iso,
    prepare_out_dir,
    remove_created,
    save_checkpoint,
    versions,
)
from ready2unlearn.config import (
    OMIT_UNSET,
    apply_overrides,
    check,
    from_dict,
    list_presets,
    load_yaml,
    resolve_preset,
    to_dict,
)
from ready2unlearn.data.augment import crop_flip
from ready2unlearn.data.base import ArrayDataset
from ready2unlearn.data.registry import DataConfig, load_split
from ready2unlearn.data.sisa import SisaConfig
from ready2unlearn.errors import ConfigError, R2UError
from ready2unlearn.models.registry import ModelConfig, build_model, count_parameters
from ready2unlearn.optim import OptimConfig, build_optimizer, build_scheduler
from ready2unlearn.progress import progress_bar
from ready2unlearn.readiness.config import ReadyConfig
from ready2unlearn.runtime import resolve_device, seed_everything
from ready2unlearn.task import ClassificationTask, Task

#: Config keys a resumed run may change: where it runs and where the (fingerprint-checked) files are.
RESUME_MAY_CHANGE = ("device", "data.data_dir")

#: ``regularizer(model, step, epoch) -> (extra loss or None, parts)``: added to the task loss by :func:`fit`.
Regularizer = Callable[[nn.Module, int, int], tuple["torch.Tensor | None", dict[str, float]]]


@dataclass
class TrainConfig:
    """Everything that determines a standard training run.

    Attributes:
        data: Dataset and split.
        model: Registered model and its hyper-parameters.
        optim: Optimiser and LR schedule.
        epochs: Passes over the training set.
        batch_size: Mini-batch size.
        seed: Seeds initialisation, shuffling, dropout and augmentation.
        augment: Random crop + horizontal flip on images (CIFAR-style; off for digits).
        grad_clip: Clip the global gradient norm to this value; ``null`` = no clipping.
        device: ``auto``, ``cpu``, ``cuda``, ``cuda:N`` or ``mps``.
        ready: Ready2Unlearn readiness training (``null`` = standard training); see
            :class:`~ready2unlearn.readiness.ReadyConfig`.
        accelerate: Run the loop through Hugging Face Accelerate (extra ``hf``). Started with
            ``accelerate launch``, every process takes its share of each batch and gradients are averaged
            across processes (DDP on GPUs or machines); ``batch_size`` stays the global batch. On one
            process it is the plain loop.
        sisa: Train a SISA ensemble (Bourtoule et al. 2021) instead of one model: ``shards`` constituents,
            each fed its shard in ``slices`` checkpointed slices, so a deletion retrains only the shards that
            held the deleted rows, from their last clean slice (``r2u unlearn --method sisa``, exact).
    """

    data: DataConfig = field(default_factory=DataConfig)
    model: ModelConfig = field(default_factory=lambda: _default_model())
    optim: OptimConfig = field(default_factory=OptimConfig)
    epochs: int = 20
    batch_size: int = 128
    seed: int = 0
    augment: bool = False
    grad_clip: float | None = None
    device: str = "auto"
    ready: ReadyConfig | None = None
    accelerate: bool = False
    sisa: SisaConfig | None = field(default=None, metadata=OMIT_UNSET)

    def __post_init__(self) -> None:
        if self.ready is not None:
            self.ready = self.ready.for_epochs(self.epochs)
        check(self.ready is None or self.ready.start_epoch < self.epochs,
              "ready.start_epoch must be smaller than epochs, or readiness would never run")  # fmt: skip
        check(self.epochs > 0, f"epochs must be positive, got {self.epochs}")
        check(self.batch_size > 0, f"batch_size must be positive, got {self.batch_size}")
        check(self.grad_clip is None or self.grad_clip > 0, "grad_clip must be positive or null")
        check(self.sisa is None or (self.ready is None and not self.accelerate),
              "sisa training cannot be combined with ready or accelerate (SISA makes deletions exact; it trains "
              "its constituents one after another)")  # fmt: skip


def _default_model() -> ModelConfig:
    from ready2unlearn.models.vision import MLPConfig

    return MLPConfig()


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
    cfg: TrainConfig,
    *,
    state_dir: str | Path | None = None,
    resume_from_state: bool = False,
    allow_extend: bool = False,
    show_progress: bool = True,
    on_epoch: Callable[[dict[str, float]], None] | None = None,
    regularizer: Regularizer | None = None,
    sample_weight: torch.Tensor | None = None,
    task: Task | None = None,
) -> FitResult:
    """Trains ``model`` in place on ``train`` with the task loss (cross-entropy for a classifier).

    Args:
        model: Module mapping a batch of inputs to logits ``[B, C]``.
        train: Training data.
        test: Evaluated after every epoch when given.
        cfg: Epochs, batch size, optimiser, seed... (``cfg.data``/``cfg.model`` are not used here).
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

    Returns:
        A :class:`FitResult`; ``metrics`` holds ``train_accuracy``, ``train_loss`` and, with ``test``,
        ``test_accuracy`` and ``test_loss``.

    Raises:
        TrainingDiverged: If a loss or, at the end of an epoch, a weight is NaN or infinite. The model keeps
            the weights of the last finite step; no state is saved for the epoch that diverged.
        ConfigError: If the state to resume from was saved with another config.
        DataError: If the state to resume from is corrupt.
    """
    gen = seed_everything(cfg.seed)
    accel = _accelerator() if cfg.accelerate else None
    if accel is not None:
        model.to(accel.device)
    device = next(model.parameters()).device
    train_dev = train.to(device)
    if sample_weight is not None and len(sample_weight) != len(train):
        raise ValueError(f"sample_weight has {len(sample_weight)} entries for {len(train)} training rows")
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

    step = start_epoch * steps_per_epoch
    t0 = time.perf_counter()
    with progress_bar(show_progress) as bar:
        bar_id = bar.add_task("train", total=cfg.epochs * steps_per_epoch, completed=start_epoch * steps_per_epoch)
        for epoch in range(start_epoch, cfg.epochs):
            model.train()
            total_loss, seen = 0.0, 0
            for batch_no, idx in enumerate(train_dev.batch_positions(cfg.batch_size, shuffle=True, generator=gen)):
                idx = idx[rank::world]  # every process draws the same permutation and takes its share
                x, y = train_dev.x[idx], train_dev.y[idx]
                if cfg.augment and x.dim() == 4:
                    x = crop_flip(x, gen)
                if weights is None:
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


def run(
    cfg: TrainConfig,
    out_dir: str | Path,
    *,
    resume_run: bool = False,
    allow_extend: bool = False,
    overwrite: bool = False,
    show_progress: bool = True,
    on_epoch: Callable[[dict[str, float]], None] | None = None,
    producer: str = "r2u train",
    extra_card: dict[str, Any] | None = None,
    notice: Callable[[str], None] | None = None,
) -> dict[str, Any]:
    """Loads data, builds the model, trains, and writes ``model.safetensors`` + ``card.json``.

    ``out_dir`` is checked before anything is loaded: it must be writable and empty (or missing), unless
    ``resume_run`` continues the run in it or ``overwrite`` replaces the run in it. A run that fails with
    a user-facing error (divergence, a bad state to resume) removes what it created, so it leaves
    nothing; a crash or Ctrl-C keeps ``out_dir/.resume`` for ``resume_run``.

    Args:
        cfg: Resolved training config.
        out_dir: Output directory; crash-safe state lives in ``out_dir/.resume`` until the run ends.
        resume_run: Continue an interrupted run from its saved state (starts from scratch, and says so
            through ``notice``, when there is none).
        allow_extend: With ``resume_run``, accept a larger ``epochs`` than the saved run's.
        overwrite: Replace the earlier run's files in ``out_dir`` once this run has succeeded (other files
            are left alone).
        show_progress: Show a progress bar.
        on_epoch: Per-epoch callback (the CLI prints a metrics line).
        producer: Recorded in the card (which command made the checkpoint).
        extra_card: Additional card fields (e.g. the preset name).
        notice: Receives one-line remarks for the user (the CLI prints them on stderr).

    Returns:
        The card that was written.

    Raises:
        ConfigError: On an unusable ``out_dir``, a config that differs from the state's, or divergence.
        DataError: On missing data files or a corrupt resume state.
    """
    if cfg.sisa is not None:
        raise ConfigError("a sisa config trains an ensemble: use ready2unlearn.recipes.sisa.train (r2u train "
                          "--sisa.shards S does)")  # fmt: skip
    out = Path(out_dir)
    state_dir = out / RESUME_DIR
    if allow_extend and not resume_run:
        raise ConfigError("--allow-extend only applies with --resume (it lets a resumed run train more epochs)")
    created = prepare_out_dir(out, overwrite=overwrite, resume=resume_run)
    resuming = resume_run and resume.has_state(state_dir)
    if resume_run and not resuming and (out / CARD).is_file():
        raise ConfigError(f"{out} already holds a finished checkpoint: nothing to resume "
                          "(pass --overwrite instead of --resume to train it again)")  # fmt: skip
    if resuming:
        check_resume(state_dir, to_dict(cfg), allow_extend)  # before any data is loaded
    elif resume_run and notice is not None:
        notice(f"no saved state in {state_dir}: starting from scratch")
    try:
        card = _train_and_save(cfg, out, state_dir, resuming, allow_extend, overwrite, show_progress, on_epoch,
                               producer, extra_card)  # fmt: skip
    except R2UError:
        # A user-facing failure (divergence, data, a corrupt state) leaves the folder as it found it. A
        # resumed run's state stays: it is the last good epoch, and it was there before this run.
        if created is not None:
            remove_created(out, created)
        elif not resuming:
            shutil.rmtree(state_dir, ignore_errors=True)
        raise
    shutil.rmtree(state_dir, ignore_errors=True)
    return card


def _train_and_save(
    cfg: TrainConfig,
    out: Path,
    state_dir: Path,
    resuming: bool,
    allow_extend: bool,
    overwrite: bool,
    show_progress: bool,
    on_epoch: Callable[[dict[str, float]], None] | None,
    producer: str,
    extra_card: dict[str, Any] | None,
) -> dict[str, Any]:
    split = load_split(cfg.data)
    device = resolve_device(cfg.device)
    seed_everything(cfg.seed)  # model initialisation is part of what the seed fixes
    model = build_model(cfg.model, split.spec).to(device)
    objective = None
    if cfg.ready is not None:
        from ready2unlearn.readiness.objective import ReadinessObjective

        objective = ReadinessObjective(cfg.ready, split.train.to(device), split.spec.num_classes, cfg.seed)
    if not resuming:
        shutil.rmtree(state_dir, ignore_errors=True)  # a replaced (--overwrite) run's state must not live on
    result = fit(model, split.train, split.test, cfg, state_dir=state_dir, resume_from_state=resuming,
                 allow_extend=allow_extend, show_progress=show_progress, on_epoch=on_epoch,
                 regularizer=objective)  # fmt: skip
    if objective is not None:
        extra_card = {**(extra_card or {}), "readiness": objective.summary(split.train)}
    card = {
        "kind": "ready2unlearn.checkpoint",
        "schema": 1,
        "created": now_iso(),
        "producer": producer,
        "config": to_dict(cfg),
        "seed": cfg.seed,
        "model": {"name": cfg.model.name, "parameters": count_parameters(model)},
        "data": {
            "name": split.name,
            "spec": split.spec.to_dict(),
            "fingerprints": split.fingerprints(),
            "meta": dict(split.meta),
        },
        "metrics": result.metrics,
        "history": result.history,
        "timing": {"train_seconds": result.seconds, "device": str(device)},
        "versions": versions(),
        "lineage": {"parent": None, "requests": []},
        **(extra_card or {}),
    }
    if overwrite:
        clear_run_files(out, keep=(RESUME_DIR,))  # the state stays until the new card is written
    return save_checkpoint(model, out, card)


def load_config(
    preset: str | None = None,
    overrides: list[str] | tuple[str, ...] = (),
    dataset: str | None = None,
    model: str | None = None,
    ready: bool = False,
) -> tuple[TrainConfig, str | None]:
    """Resolves a :class:`TrainConfig` from a preset, shortcut flags and ``key.sub=value`` overrides.

    Precedence, lowest first: the preset (``preset``, else the shipped ``<dataset>-<model>`` preset when
    one exists, else the dataclass defaults), then ``dataset``/``model`` shortcuts, then ``overrides``.

    Args:
        preset: Shipped preset name or a YAML path.
        overrides: ``key.sub=value`` strings; unknown keys and ill-typed values are rejected.
        dataset: Shortcut for ``data.name=...``.
        model: Shortcut for ``model.name=...`` (drops the preset's model-specific keys when it changes).
        ready: Turn on readiness training with the default knobs (kept if the preset already sets some).

    Returns:
        ``(config, preset path or None)``.

    Raises:
        ConfigError: On an unknown preset, key, value or name.
    """
    if preset is None and (dataset or model):
        candidate = f"{dataset or 'digits'}-{model or 'mlp'}"
        preset = candidate if candidate in list_presets("train") else None
    data: dict[str, Any] = {}
    path = None
    if preset is not None:
        path = resolve_preset("train", preset)
        data = load_yaml(path)
    shortcut = []
    if dataset:
        shortcut.append(f"data.name={json.dumps(dataset)}")  # quoted: a path such as csv:1:2 stays a string
    if model and (data.get("model") or {}).get("name") != model:
        data["model"] = {"name": model}  # another model's hyper-parameters would not apply
    if ready and data.get("ready") is None:
        data["ready"] = {}
    data = apply_overrides(data, shortcut + list(overrides))
    return from_dict(TrainConfig, data), (str(path) if path else None)

"""Standard training recipe: dataset + model config → trained checkpoint with its card.

Launch: ``r2u train --config fashion-cnn --out runs/fashion`` (or ``--dataset digits --model mlp``).

:func:`run` loads the data, builds the model, builds the readiness objective when ``ready`` is set, hands
them to the training loop (:func:`ready2unlearn.engine.fit.fit`, which works on any ``nn.Module``) and
writes the artifact. ``--resume`` continues only the run it was saved by: the state records the resolved
config, and any difference but a longer ``epochs`` (with ``allow_extend``) is refused.
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ready2unlearn import resume
from ready2unlearn.artifacts import (
    CARD,
    RESUME_DIR,
    clear_run_files,
    prepare_out_dir,
    remove_created,
    save_checkpoint,
)
from ready2unlearn.card import ModelCard, data_section
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
from ready2unlearn.data.registry import DataConfig, load_split
from ready2unlearn.data.sisa import SisaConfig
from ready2unlearn.engine.fit import check_resume, fit
from ready2unlearn.errors import ConfigError, R2UError
from ready2unlearn.models.registry import ModelConfig, build_model, count_parameters
from ready2unlearn.models.vision import MLPConfig
from ready2unlearn.optim import OptimConfig
from ready2unlearn.readiness.baselines import DownweightConfig, row_weights
from ready2unlearn.readiness.config import ReadyConfig
from ready2unlearn.readiness.objective import ReadinessObjective
from ready2unlearn.runtime import resolve_device, seed_everything


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
        downweight: Multiply the loss of the revocable rows by a weight < 1 (``null`` = off): what prepares a
            model for random requests best in the readiness benchmark (see
            :class:`~ready2unlearn.readiness.baselines.DownweightConfig`). Recorded in the card.
        sisa: Train a SISA ensemble (Bourtoule et al. 2021) instead of one model: ``shards`` constituents,
            each fed its shard in ``slices`` checkpointed slices, so a deletion retrains only the shards that
            held the deleted rows, from their last clean slice (``r2u unlearn --method sisa``, exact).
    """

    data: DataConfig = field(default_factory=DataConfig)
    model: ModelConfig = field(default_factory=MLPConfig)
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
    # Omitted from the config's dict while unset, so the cache keys of every model trained before stay valid.
    downweight: DownweightConfig | None = field(default=None, metadata=OMIT_UNSET)

    def __post_init__(self) -> None:
        if self.ready is not None:
            self.ready = self.ready.for_epochs(self.epochs)
        check(self.ready is None or self.ready.start_epoch < self.epochs,
              "ready.start_epoch must be smaller than epochs, or readiness would never run")  # fmt: skip
        check(self.ready is None or self.ready.cap != "heldout" or self.data.validation is not None,
              "ready.cap=heldout is measured on rows the model does not train on: carve them out of the training "
              "split with data.validation=N (e.g. 500), or give ready.cap a number")  # fmt: skip
        check(self.epochs > 0, f"epochs must be positive, got {self.epochs}")
        check(self.batch_size > 0, f"batch_size must be positive, got {self.batch_size}")
        check(self.grad_clip is None or self.grad_clip > 0, "grad_clip must be positive or null")
        check(self.sisa is None or self.downweight is None, "sisa training cannot be combined with downweight")
        check(self.sisa is None or (self.ready is None and not self.accelerate),
              "sisa training cannot be combined with ready or accelerate (SISA makes deletions exact; it trains "
              "its constituents one after another)")  # fmt: skip


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
        heldout = split.val.to(device) if split.val is not None else None
        objective = ReadinessObjective(cfg.ready, split.train.to(device), split.spec.num_classes, cfg.seed,
                                       heldout=heldout)  # fmt: skip
    if not resuming:
        shutil.rmtree(state_dir, ignore_errors=True)  # a replaced (--overwrite) run's state must not live on
    weights = pool = None
    if cfg.downweight is not None:  # the revocable rows are resolved once, for the weights and the card
        pool = cfg.downweight.pool(split.train, split.spec.num_classes)
        weights = row_weights(len(split.train), pool, cfg.downweight.weight)
    result = fit(model, split.train, split.test, cfg, state_dir=state_dir, resume_from_state=resuming,
                 allow_extend=allow_extend, show_progress=show_progress, on_epoch=on_epoch,
                 regularizer=objective, sample_weight=weights)  # fmt: skip
    if objective is not None:
        extra_card = {**(extra_card or {}), "readiness": objective.summary(split.train)}
    if cfg.downweight is not None and pool is not None:
        extra_card = {**(extra_card or {}), "downweight": {**to_dict(cfg.downweight), "rows": len(pool)}}
    card = ModelCard(
        producer=producer,
        config=to_dict(cfg),
        seed=cfg.seed,
        model={"name": cfg.model.name, "parameters": count_parameters(model)},
        data=data_section(split),
        metrics=result.metrics,
        extra={
            "history": result.history,
            "timing": {"train_seconds": result.seconds, "device": str(device)},
            **(extra_card or {}),
        },
    ).to_dict()
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

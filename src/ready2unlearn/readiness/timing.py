"""What readiness training costs in time, measured side by side with standard training in one process.

Wall-clock seconds of two training runs made minutes apart say little on a shared machine: on the 2-core
benchmark box one standard MNIST run took 12 s on one seed and 53 s on the next, so a ready/standard ratio
of whole runs moved between 1.4x and 9x. This probe removes both sources of noise:

- it alternates blocks of plain training steps with blocks of steps that also run the readiness term, on
  copies of one model with the same batch size and optimiser, so slow phases of the machine hit both alike;
- on a CPU it counts this process's CPU time (``time.process_time``), which other processes on the machine do
  not inflate. CPU time does not see GPU kernels, so on a GPU it counts wall-clock after synchronising.

The training cost ratio is then assembled from the measured parts as the training loop spends them:

    ready / standard = (S·t_plain + C·(t_ready − t_plain) + t_calibration) / (S·t_plain)

with S the training steps, C the steps that run the readiness term (those from ``start_epoch`` on, every
``meta_every``-th) and ``t_calibration`` the CPU time of ``alpha=auto``'s measurement, which a user pays once
per training run.
"""

from __future__ import annotations

import copy
import dataclasses
import math
from collections.abc import Callable
from dataclasses import asdict, dataclass
from typing import Any

import torch
from torch import nn

from ready2unlearn.config import check
from ready2unlearn.data.base import ArrayDataset
from ready2unlearn.optim import OptimConfig, build_optimizer
from ready2unlearn.readiness.calibrate import Calibration, calibrate_alpha
from ready2unlearn.readiness.config import ReadyConfig
from ready2unlearn.readiness.cost import probe_clock
from ready2unlearn.readiness.objective import ReadinessObjective
from ready2unlearn.task import ClassificationTask, Task

#: ``extra(model) -> loss``: the readiness term of one due step (what the training loop adds to the task loss).
ExtraTerm = Callable[[nn.Module], torch.Tensor]


@dataclass
class TrainingCost:
    """Measured per-step costs and the training cost ratio they add up to.

    Attributes:
        plain_step: Seconds of a plain training step (median over blocks; CPU time on a CPU).
        ready_step: Seconds of a step that also runs the readiness term (median over blocks).
        calibration: Seconds of the ``alpha=auto`` measurement (0 when α was given).
        steps_per_epoch: Training steps per epoch.
        epochs: Training epochs.
        start_epoch: Epochs before the readiness term starts.
        meta_every: The term runs every ``meta_every``-th step.
        blocks: Interleaved blocks measured per kind of step.
        calibration_source: Where ``calibration`` was timed: ``ready run`` (the ready model's own measurement,
            recorded in its card), ``this model`` (measured here on the model passed in) or ``none``.
    """

    plain_step: float
    ready_step: float
    calibration: float
    steps_per_epoch: int
    epochs: int
    start_epoch: int
    meta_every: int
    blocks: int
    calibration_source: str = "none"

    @property
    def ready_calls(self) -> int:
        """Training steps that run the readiness term."""
        return math.ceil(self.steps_per_epoch * max(0, self.epochs - self.start_epoch) / self.meta_every)

    @property
    def standard_seconds(self) -> float:
        """Predicted seconds of standard training."""
        return self.steps_per_epoch * self.epochs * self.plain_step

    @property
    def term_seconds(self) -> float:
        """What one readiness term adds to a step (a measured ready step below a plain one adds nothing)."""
        return max(0.0, self.ready_step - self.plain_step)

    @property
    def ready_seconds(self) -> float:
        """Predicted seconds of ready training, calibration included."""
        return self.standard_seconds + self.ready_calls * self.term_seconds + self.calibration

    @property
    def ratio(self) -> float:
        """Ready / standard training cost."""
        return self.ready_seconds / self.standard_seconds

    def to_dict(self) -> dict[str, Any]:
        """Report entry: the measurements, the parts in units of standard training, and the ratio."""
        std = self.standard_seconds
        return {
            **asdict(self), "ready_calls": self.ready_calls, "standard_seconds": std,
            "ready_seconds": self.ready_seconds, "ratio": self.ratio,
            "step_ratio": self.ready_step / self.plain_step,
            "steps_share": self.ready_calls * self.term_seconds / std,
            "calibration_share": self.calibration / std,
        }  # fmt: skip


def interleaved_step_times(
    model: nn.Module,
    train: ArrayDataset,
    task: Task,
    extra: ExtraTerm,
    *,
    batch_size: int,
    optim: OptimConfig,
    blocks: int = 5,
    steps: int = 8,
    seed: int = 0,
) -> tuple[float, float]:
    """Seconds per plain training step and per step with ``extra``, measured in alternating blocks.

    Each kind of step trains its own copy of ``model`` (the model itself is not modified) with its own
    optimiser, on the same random batches, so both pay the same optimiser and data costs; one unmeasured step
    of each warms caches first. Returns the median per-step time of each kind over ``blocks`` blocks.

    Raises:
        ConfigError: On fewer than one block or step.
    """
    check(blocks >= 1 and steps >= 1 and batch_size >= 1, "the timing probe needs blocks, steps and batch ≥ 1")
    clock = probe_clock(next(model.parameters()).device)
    copies = {kind: copy.deepcopy(model).train() for kind in ("plain", "ready")}
    optimisers = {kind: build_optimizer(m.parameters(), optim) for kind, m in copies.items()}
    gen = torch.Generator().manual_seed(seed)
    x_all, y_all = train.x, train.y

    def run(kind: str, n: int, idx: list[torch.Tensor]) -> float:
        m, opt = copies[kind], optimisers[kind]
        t0 = clock()
        for i in range(n):
            loss = task.loss(m, x_all[idx[i]], y_all[idx[i]])
            if kind == "ready":
                loss = loss + extra(m)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
        return (clock() - t0) / n

    def batches(n: int) -> list[torch.Tensor]:
        return [torch.randint(0, len(train), (min(batch_size, len(train)),), generator=gen) for _ in range(n)]

    warm = batches(1)
    run("plain", 1, warm)
    run("ready", 1, warm)
    times: dict[str, list[float]] = {"plain": [], "ready": []}
    for b in range(blocks):
        idx = batches(steps)
        # Alternate which kind goes first, so neither always runs right after the other warmed the caches.
        for kind in ("plain", "ready") if b % 2 == 0 else ("ready", "plain"):
            times[kind].append(run(kind, steps, idx))
    median = {k: float(torch.tensor(v).median()) for k, v in times.items()}
    return median["plain"], median["ready"]


def measure_training_cost(
    model: nn.Module,
    train: ArrayDataset,
    cfg: ReadyConfig,
    num_classes: int,
    *,
    epochs: int,
    batch_size: int,
    optim: OptimConfig,
    seed: int = 0,
    blocks: int = 5,
    steps: int = 8,
    task: Task | None = None,
    calibration: Calibration | None = None,
    heldout: ArrayDataset | None = None,
) -> TrainingCost:
    """Measures what readiness training with ``cfg`` costs against standard training of ``model``'s kind.

    With ``alpha=auto`` the α measurement is part of the cost. The faithful number is the ready run's own,
    timed when readiness started and recorded in its card: pass it as ``calibration``. Without a timed one
    the measurement runs here on ``model`` and is timed; on a fully trained model that takes longer than in a
    run that measures after a quarter of its epochs (MNIST CNN, class requests: 4.1–5.2 vs 2.5–3.6 standard
    trainings), so the ratio is then an upper bound, and ``calibration_source`` says which it is. Its α
    drives the readiness term of the timed steps. Data augmentation is left out of both kinds of step (it
    costs both the same).

    Args:
        model: A trained model (not modified).
        train: Its training set (on the model's device).
        cfg: The readiness config; its kind defaults are resolved and ``start_epoch`` is filled as
            :meth:`ReadyConfig.for_epochs` does for a run of ``epochs``.
        num_classes: Number of labels.
        epochs: Training epochs of the run being costed.
        batch_size: Its batch size.
        optim: Its optimiser.
        seed: Seeds the calibration, the simulated requests and the batches.
        blocks: Interleaved blocks per kind of step.
        steps: Steps per block.
        task: How the model is scored (default: a classifier over ``num_classes``).
        calibration: The ready run's own α measurement, if it was timed.
        heldout: The held-out rows of ``ready.cap=heldout`` (measuring that level is one forward pass over at most
            256 rows per epoch: not timed).

    Returns:
        A :class:`TrainingCost`.
    """
    task = task or ClassificationTask(num_classes)
    rcfg = cfg.for_epochs(epochs).resolved()
    seconds, source = 0.0, "none"
    if rcfg.alpha == "auto":
        if calibration is not None and calibration.seconds is not None:
            seconds, source = calibration.seconds, "ready run"
        else:
            calibration = calibrate_alpha(model, train, rcfg, num_classes, seed=seed, task=task, heldout=heldout)
            seconds, source = float(calibration.seconds or 0.0), "this model"
        rcfg = dataclasses.replace(rcfg, alpha=calibration.alpha)
    objective = ReadinessObjective(rcfg, train, num_classes, seed, task=task, heldout=heldout)

    def extra(m: nn.Module) -> torch.Tensor:
        term, _ = objective(m, 0, rcfg.start_epoch)  # step 0 of a readiness epoch is always due
        return term if term is not None else torch.zeros(())  # λ = 0: the term never runs

    plain, ready = interleaved_step_times(model, train, task, extra, batch_size=batch_size, optim=optim,
                                          blocks=blocks, steps=steps, seed=seed)  # fmt: skip
    return TrainingCost(plain_step=plain, ready_step=ready, calibration=seconds,
                        steps_per_epoch=math.ceil(len(train) / batch_size), epochs=epochs,
                        start_epoch=rcfg.start_epoch, meta_every=int(rcfg.meta_every), blocks=blocks,  # type: ignore[arg-type]
                        calibration_source=source)  # fmt: skip

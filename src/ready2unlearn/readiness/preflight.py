"""Will readiness have work to do on this model? A look at a standard model before paying for a ready run.

The dual λ (:mod:`~ready2unlearn.readiness.dual`) moves by ``exp(η · v)`` per readiness step, ``v`` the relative
shortfall of a simulated request's forget loss after one simulated unlearning step of size α below
``ready.cap``. Scoring that step on a few simulated requests on a standard model gives λ's drift at the start:
where it is ≤ 0 the step already honours the requests, λ decays from the first readiness step and the ready
model is the standard one plus the retention term, at twice the training cost.

``r2u ready-tune`` on the benchmarks' standard models (8 probes, class requests 3, 5, 7, GA, cap 5): where
readiness paid off the drift was clearly positive, Fashion-MNIST CNN +0.67 (forget loss after the step 1.64 on
average), MNIST CNN +0.77 (1.15), digits MLP +0.92 (0.38), all seed 0. On the CIFAR-10 CNN it sat at zero:
−0.03 (seed 0, 5 of 8 honoured), +0.09 (seed 2); its class runs gave no speed-up (GA 96 vs 52 steps on seed
0, 70 vs 72 on seed 1), λ falling from 0.03 to 0.0006. A binding constraint is necessary, not sufficient: at
half the step size the seed-0 run bound as often as Fashion-MNIST's and still gave none (70 vs 52;
``benchmarks/readiness/cifar10/probe-factor1/``). So "slack" says expect nothing, and a drift near
zero little more; :data:`MEASURED` is printed beside the verdict so users can place theirs.
"""

from __future__ import annotations

import dataclasses
from dataclasses import asdict, dataclass

import torch
from torch import nn

from ready2unlearn.config import check
from ready2unlearn.data.base import ArrayDataset
from ready2unlearn.engine.method import build_method
from ready2unlearn.errors import ConfigError
from ready2unlearn.readiness.cap import measured_cap
from ready2unlearn.readiness.config import ReadyConfig
from ready2unlearn.readiness.dual import relative_violation
from ready2unlearn.readiness.loss import readiness_loss
from ready2unlearn.readiness.sampler import RequestSampler
from ready2unlearn.task import ClassificationTask, Task

#: The drifts measured so far, for the user to place theirs (see the module docstring).
MEASURED = ("where readiness paid off it started at +0.67 to +0.92 (Fashion-MNIST, MNIST, digits); on the "
            "CIFAR-10 CNN, which gained nothing, at -0.03 to +0.09")  # fmt: skip


@dataclass(frozen=True)
class Preflight:
    """How the readiness constraint stands on a model, judged on simulated requests.

    Attributes:
        alpha: The simulated step size probed.
        cap: The constraint's level (forget loss after the step must reach it).
        forget_after: Forget loss after one simulated step, per probe.
    """

    alpha: float
    cap: float
    forget_after: list[float]

    @property
    def honoured(self) -> int:
        """How many probes the step already honoured (``forget_after ≥ cap``)."""
        return sum(a >= self.cap for a in self.forget_after)

    @property
    def drift(self) -> float:
        """λ's log-drift per unit dual step at the start of readiness; positive means λ would rise.

        The mean of :func:`~ready2unlearn.readiness.dual.relative_violation` over the probes.
        """
        return sum(relative_violation(a, self.cap) for a in self.forget_after) / len(self.forget_after)

    @property
    def slack(self) -> bool:
        """True when λ would not rise (drift ≤ 0): the step already honours the requests, readiness would idle."""
        return self.drift <= 0

    def to_dict(self) -> dict[str, object]:
        """JSON entry (with the count honoured, the drift and the verdict)."""
        return {**asdict(self), "honoured": self.honoured, "drift": self.drift, "slack": self.slack}


def constraint_preflight(
    model: nn.Module,
    train: ArrayDataset,
    cfg: ReadyConfig,
    num_classes: int,
    *,
    probes: int = 8,
    seed: int = 0,
    task: Task | None = None,
    heldout: ArrayDataset | None = None,
) -> Preflight:
    """Scores one simulated unlearning step of ``cfg.alpha`` on ``probes`` simulated requests; nothing is trained.

    Args:
        model: A standard-trained model (not modified).
        train: Its training set.
        cfg: Readiness knobs with a numeric ``alpha`` (as :func:`~ready2unlearn.readiness.calibrate.calibrate_alpha`
            resolves it) and a numeric ``cap`` or ``heldout``.
        num_classes: Number of labels.
        probes: Simulated requests to score.
        seed: Seeds the draws.
        task: How the model is scored (default: a classifier over ``num_classes``).
        heldout: Rows the model does not train on, for ``ready.cap=heldout``.

    Returns:
        A :class:`Preflight`.

    Raises:
        ConfigError: On ``probes`` < 1, a non-numeric ``alpha``, or a cap that cannot be measured here.
    """
    check(probes >= 1, f"the preflight needs probes ≥ 1, got {probes}")
    cfg = cfg.resolved()
    if not isinstance(cfg.alpha, (int, float)):
        raise ConfigError("the preflight needs a numeric ready.alpha (measure it first: calibrate_alpha)")
    task = task or ClassificationTask(num_classes)
    cap = measured_cap(cfg.cap, model, heldout, task, seed=seed)  # type: ignore[arg-type]
    if not isinstance(cap, (int, float)):
        raise ConfigError(f"the preflight compares with ready.cap, which is {cap!r} here: heldout needs the "
                          "held-out rows, initial is known only to a training run; give a number")  # fmt: skip
    # The loss value after the step is the same at first and second order; first order builds no second graph.
    cfg = dataclasses.replace(cfg, cap=float(cap), first_order=True, resistance=0.0)
    sampler = RequestSampler(train, cfg, num_classes, seed)
    method = build_method(cfg.method, task)
    after: list[float] = []
    device = next(model.parameters()).device
    forked = [device.index or 0] if device.type == "cuda" else []
    with torch.random.fork_rng(devices=forked):  # simulated steps with dropout must not shift the caller's stream
        torch.manual_seed(seed)  # and draw their dropout masks the same way every time: a repeatable verdict
        for _ in range(probes):
            _, parts = readiness_loss(method, model, sampler.sample(), cfg)
            after.append(parts["forget_after"])
    return Preflight(alpha=float(cfg.alpha), cap=float(cap), forget_after=after)

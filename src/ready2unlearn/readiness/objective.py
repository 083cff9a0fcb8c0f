"""The readiness term L_ready and the per-step objective readiness training adds to the task loss.

Ready2Unlearn (Duan, Yang, Abbasi, Tam 2025, arXiv 2505.10845), in the form of DESIGN §5:

    L(θ) = L_task(θ; B) + λ · L_ready(θ)
    L_ready(θ) = λ2 · CE(θ'_k; R)                       retention after the simulated unlearning
               − λ1 · min(CE(θ'_k; F), c)               efficiency: forgetting reached within k steps
               − λ3 · min(CE(θ''; F), c)                resistance: still forgotten after relearning

θ'_k comes from :func:`~ready2unlearn.readiness.inner.simulate_unlearning`; θ'' is where ``relearn_steps``
simulated relearning steps (descent on ``relearn_size`` forget samples, SGD or the attack's Adam) lead from
θ'_k, scored on the other forget samples. Capping the forget terms at c
matters: past the cap there is no gradient, so readiness stops pushing once a simulated request is
honoured instead of making the model ever more fragile.
"""

from __future__ import annotations

import contextlib
import dataclasses
import warnings
from collections.abc import Iterator
from typing import Any

import torch
from torch import nn

from ready2unlearn.config import to_dict
from ready2unlearn.data.base import ArrayDataset
from ready2unlearn.engine.method import Batch, UnlearningMethod, build_method
from ready2unlearn.errors import ConfigError
from ready2unlearn.readiness.calibrate import Calibration, calibrate_alpha
from ready2unlearn.readiness.cap import CapResolver
from ready2unlearn.readiness.config import ReadyConfig
from ready2unlearn.readiness.dual import DualLambda
from ready2unlearn.readiness.inner import (
    CurrentModelReference,
    buffer_copies,
    simulate_steps,
    simulate_unlearning,
    trainable_params,
)
from ready2unlearn.readiness.sampler import RequestSampler
from ready2unlearn.task import ClassificationTask, Task


def readiness_loss(
    method: UnlearningMethod,
    model: nn.Module,
    batch: Batch,
    cfg: ReadyConfig,
    *,
    forget_weight: float = 1.0,
    retention_weight: float | None = None,
) -> tuple[torch.Tensor, dict[str, float]]:
    """L_ready for one simulated request, differentiable with respect to the model's trainable parameters.

    Args:
        method: The deployment unlearning method (built for ``cfg.method``).
        model: The model being trained (its parameters are θ; nothing is modified).
        batch: The simulated request: forget batch F and retain batch R (both always present).
        cfg: Readiness knobs (``alpha`` must be a number here, not ``auto``).
        forget_weight: Multiplies the forget terms (efficiency and resistance): the dual λ.
        retention_weight: Weight of the retain term; ``None`` = ``cfg.retention``.

    Returns:
        ``(L_ready, parts)`` where ``parts`` holds the forget/retain losses before and after.
    """
    cfg = cfg.resolved()
    if not isinstance(cfg.alpha, (int, float)):
        raise ConfigError("readiness_loss needs a numeric ready.alpha (alpha=auto is resolved by ReadinessObjective)")
    retention_weight = cfg.retention if retention_weight is None else retention_weight
    task = method.task
    method.reference = CurrentModelReference(model)  # π_ref / the KL anchor = the model as it is now
    theta = trainable_params(model)
    buffers = buffer_copies(model)
    with _unlearning_mode(method, model):  # as the deployed unlearner runs (batch norm frozen by default)
        optimizer = cfg.method.optimizer if cfg.inner_optimizer == "method" else "sgd"
        theta_k = simulate_unlearning(method, model, batch, steps=cfg.inner_steps, alpha=cfg.alpha, params=theta,
                                      buffers=buffers, first_order=cfg.first_order, optimizer=optimizer)  # fmt: skip

    def ce(params: dict[str, torch.Tensor], x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        # Scored as the stop rule and the metrics see the model (eval mode: running BatchNorm statistics, no
        # dropout); the inner steps above ran in the mode the deployed unlearner trains in.
        with _mode(model, train=cfg.score_mode == "train"):
            return task.loss(model, x, y, {**buffers, **params})

    def retain_ce(params: dict[str, torch.Tensor], x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        if cfg.score_mode != "mixed":
            return ce(params, x, y)
        # A retain batch draws from every class, so its own statistics estimate the population's; normalising
        # by them lets the gradient see the normalisation, as the task loss does. Through running statistics
        # (constants to the gradient) the term fought the task loss: CIFAR-10 CNN 50.8% vs 62.1% standard.
        # Copies, so the running-statistics update of this pass cannot reach the forget terms' scoring.
        with _batch_stats_mode(model):
            return task.loss(model, x, y, {**{k: v.clone() for k, v in buffers.items()}, **params})

    if not isinstance(cfg.cap, (int, float)):
        raise ConfigError(
            "readiness_loss needs a numeric ready.cap (initial / heldout are measured by ReadinessObjective)"
        )
    cap = cfg.cap
    fx, fy = batch.forget_x, batch.forget_y
    assert fx is not None and fy is not None and batch.retain_x is not None and batch.retain_y is not None
    total = torch.zeros((), device=fx.device)
    parts: dict[str, float] = {}
    if cfg.retention > 0:
        retain_after = retain_ce(theta_k, batch.retain_x, batch.retain_y)
        total = total + retention_weight * retain_after
        parts["retain_after"] = retain_after.item()
    forget_after = ce(theta_k, fx, fy)
    parts["forget_after"] = forget_after.item()
    # Past the cap the forget term passes no gradient: how often that happens says whether readiness still
    # shapes the model or has gone quiet (on language models one simulated step already passes a cap of 1).
    parts["cap_saturated"] = float(parts["forget_after"] >= cap)  # type: ignore[operator]
    if cfg.efficiency > 0:
        score = forget_after.clamp(max=cap)
        if cfg.forget_term == "gain":
            forget_before = ce(theta, fx, fy)
            parts["forget_before"] = forget_before.item()
            score = score - forget_before
        total = total - forget_weight * cfg.efficiency * score
    if cfg.resistance > 0 and len(fy) >= 2:
        # The simulated attack mirrors the real one: fine-tune on a few forget samples for several steps,
        # then score the *other* forget samples (scoring the relearned ones would only measure memorisation).
        m = min(cfg.relearn_size, len(fy) - 1)

        def attack_loss(params: dict[str, torch.Tensor], _: int) -> torch.Tensor:
            with _mode(model, train=True):
                return task.loss(model, fx[:m], fy[:m], {**buffers, **params})

        relearned = simulate_steps(attack_loss, theta_k, steps=cfg.relearn_steps,
                                   alpha=cfg.relearn_alpha or cfg.alpha,  # type: ignore[arg-type]
                                   first_order=bool(cfg.first_order), optimizer=cfg.relearn_optimizer)  # fmt: skip
        forget_relearned = ce(relearned, fx[m:], fy[m:])
        total = total - forget_weight * cfg.resistance * forget_relearned.clamp(max=cap)
        parts["forget_relearned"] = forget_relearned.item()
    parts["ready_loss"] = total.item()
    return total, parts


@contextlib.contextmanager
def _modes_restored(model: nn.Module) -> Iterator[None]:
    """Restores every module's train/eval mode after the block, whatever the block set."""
    was = {m: m.training for m in model.modules()}
    try:
        yield
    finally:
        for m, training in was.items():
            m.train(training)


@contextlib.contextmanager
def _unlearning_mode(method: UnlearningMethod, model: nn.Module) -> Iterator[None]:
    """Puts ``model`` in the deployed unlearner's mode for the block."""
    with _modes_restored(model):
        method.train_mode(model)
        yield


@contextlib.contextmanager
def _batch_stats_mode(model: nn.Module) -> Iterator[None]:
    """Eval mode (no dropout) except normalisation layers, which use the batch's statistics, for the block."""
    with _modes_restored(model):
        model.eval()
        for m in model.modules():
            if isinstance(m, nn.modules.batchnorm._NormBase):
                m.train(True)
        yield


@contextlib.contextmanager
def _mode(model: nn.Module, *, train: bool) -> Iterator[None]:
    """Puts ``model`` in train or eval mode for the block and restores its modules' modes after."""
    with _modes_restored(model):
        model.train(train)
        yield


#: Said when readiness prepares for random requests: what the benchmarks measured (benchmarks/readiness/README.md).
RANDOM_REQUESTS_WARNING = (
    "readiness for random requests has not sped up unlearning on any model measured (5 seeds each on digits, "
    "MNIST, Fashion-MNIST and a tabular net: every interval includes 1x; Fashion-MNIST 1.37x the GA steps, CIFAR-10 "
    "2.95x on its first seed): the ready model fits the revocable rows better, so there is farther to go. "
    "Down-weighting the pool (r2u train --downweight) was faster; see benchmarks/readiness/README.md"
)

#: A dual-λ run whose simulated requests were honoured on more than 1 − QUIET_VIOLATION of its readiness steps
#: is reported as quiet: the constraint asked almost nothing, λ decayed, and only the retention term acted.
#: Measured on the cards of the benchmarks (seed 0): every run where readiness paid off had the constraint
#: violated on 49–100% of steps (Fashion-MNIST 49%, MNIST 56–85%, digits 55–98%); the CIFAR-10 CNN's class run
#: 26% (λ 0.0165 → 0.0006 by epoch; GA 96 vs 52 steps), its random runs 0% (the fixed 0.3-nat cap sits below
#: the training loss: λ at its floor 1e-4 from the third readiness epoch), AG News's random pilot 0%.
QUIET_VIOLATION = 1 / 3
#: Dual updates needed before a run is judged quiet (a short pilot says little).
QUIET_MIN_UPDATES = 20


class ReadinessObjective:
    """The readiness term of one training run: draws requests and returns ``λ · L_ready`` when due.

    Called by the training loop after the task loss, once per step, as ``objective(model, step, epoch)``;
    returns ``(None, {})`` on steps where readiness is off (before ``start_epoch``, or between
    ``meta_every`` steps).

    Args:
        cfg: Readiness knobs.
        train: The training set (on the training device).
        num_classes: Number of labels (0 for a language model: class requests do not apply).
        seed: Seeds the request draws (reseeded with ``(seed, epoch)`` at every epoch).
        task: How the model is scored; default a :class:`ClassificationTask` over ``num_classes``. Pass a
            :class:`~ready2unlearn.task.CausalLMTask` for a language model.
        heldout: Rows the model does not train on (a validation split); needed by ``ready.cap=heldout``.

    Raises:
        ConfigError: For ``alpha=auto`` without a warm-up, or ``cap=heldout`` without ``heldout``.
    """

    def __init__(
        self,
        cfg: ReadyConfig,
        train: ArrayDataset,
        num_classes: int,
        seed: int = 0,
        task: Task | None = None,
        heldout: ArrayDataset | None = None,
    ):
        self.cfg = cfg = cfg.resolved()
        if cfg.alpha == "auto" and cfg.start_epoch < 1:
            raise ConfigError("ready.alpha=auto is measured on the model when readiness starts: set "
                              "ready.start_epoch ≥ 1 (train ≥ 2 epochs), give a number (ready.alpha=0.05), or "
                              "measure it on a standard model (r2u ready-tune)")  # fmt: skip
        if cfg.kind == "random" and cfg.efficiency > 0:
            warnings.warn(RANDOM_REQUESTS_WARNING, stacklevel=2)
        self.seed = seed
        self.train = train
        self.num_classes = num_classes
        self.method = build_method(cfg.method, task or ClassificationTask(num_classes))
        self.sampler = RequestSampler(train, cfg, num_classes, seed)
        self.dual = DualLambda(cfg.lam, lr=cfg.dual_lr, lam_max=cfg.lam_max) if cfg.dual else None  # type: ignore[arg-type]
        self.calibration: Calibration | None = None
        self.cap = CapResolver(cfg.cap, train, self.sampler.revocable.pool, self.method.task, heldout, seed)  # type: ignore[arg-type]
        self._epoch = -1
        self.calls = 0
        self._sums: dict[str, float] = {}

    def __call__(self, model: nn.Module, step: int, epoch: int) -> tuple[torch.Tensor | None, dict[str, float]]:
        """``(λ · L_ready, parts)`` for this step, or ``(None, {})`` when readiness is off for it."""
        self.cap.update(model, step, epoch)  # every step: `initial` is measured before any update
        self.cfg = self.cap.applied(self.cfg)
        cfg = self.cfg
        if epoch < cfg.start_epoch or step % cfg.meta_every != 0 or (cfg.lam == 0 and self.dual is None):  # type: ignore[operator]
            return None, {}
        if self.cfg.alpha == "auto":
            self._calibrate(model)
        if epoch != self._epoch:
            if self.dual is not None and self._epoch >= 0:
                self.dual.end_epoch()
            self._epoch = epoch
            self.sampler.reseed(self.seed, epoch)
        batch = self.sampler.sample()
        if self.dual is None:
            loss, parts = readiness_loss(self.method, model, batch, self.cfg)
            scaled = self.cfg.lam * loss  # type: ignore[operator]
        else:
            lam = self.dual.lam
            scaled, parts = readiness_loss(self.method, model, batch, self.cfg, forget_weight=lam)
            parts["lam"] = lam
            self.dual.update(parts["forget_after"], float(self.cfg.cap))  # type: ignore[arg-type]
        self.calls += 1
        for k, v in parts.items():
            self._sums[k] = self._sums.get(k, 0.0) + v
        # Scaled by meta_every so λ keeps its meaning: the average readiness pressure per step is the same
        # whether the term runs every step or every N-th (the prototype lost nearly all of its effect at
        # meta_every=4 without this).
        return self.cfg.meta_every * scaled, parts

    def _calibrate(self, model: nn.Module) -> None:
        """Resolves ``alpha=auto`` on the model as it is when readiness starts (once)."""
        self.calibration = calibrate_alpha(model, self.train, self.cfg, self.num_classes, seed=self.seed,
                                           task=self.method.task)  # fmt: skip
        self.cfg = dataclasses.replace(self.cfg, alpha=self.calibration.alpha)

    def state_dict(self) -> dict[str, Any]:
        """What a resumed training run needs to continue this objective (JSON data)."""
        return {
            "alpha": self.cfg.alpha, "calibration": self.calibration.to_dict() if self.calibration else None,
            "dual": self.dual.state_dict() if self.dual else None, "calls": self.calls, "sums": dict(self._sums),
            "epoch": self._epoch, "cap": self.cap.state_dict(),
        }  # fmt: skip

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restores :meth:`state_dict`: the measured α and cap (not measured again), the dual λ, the running means."""
        if state.get("calibration"):
            self.calibration = Calibration(**state["calibration"])
            self.cfg = dataclasses.replace(self.cfg, alpha=state["alpha"])
        if state.get("cap"):
            self.cap.load_state_dict(state["cap"])
            self.cfg = self.cap.applied(self.cfg)
        if self.dual is not None and state.get("dual"):
            self.dual.load_state_dict(state["dual"])
        self.calls = int(state.get("calls", 0))
        self._epoch = int(state.get("epoch", -1))
        self._sums = {k: float(v) for k, v in (state.get("sums") or {}).items()}

    def summary(self, train: ArrayDataset) -> dict[str, Any]:
        """Card entry: the revocable set, how often the term ran, the mean of each part and cap saturation.

        ``cap_saturation`` is the fraction of readiness steps whose forget loss after the simulated unlearning
        was already at or above the cap (so the efficiency term passed no gradient). With a fixed λ a high
        saturation means readiness went quiet, and a warning says so; with the dual λ it is by design (the
        constraint holds) and λ itself says how much pressure was needed.
        """
        means = {k: v / self.calls for k, v in self._sums.items()} if self.calls else {}
        saturation = means.get("cap_saturated", 0.0)
        out: dict[str, Any] = {
            "revocable": self.sampler.revocable.describe(train),
            "meta_steps": self.calls,
            "mean_parts": means,
            "cap_saturation": saturation,
            "resolved": to_dict(self.cfg),
            "forget_size": self.cfg.resolved_forget_size,
            "retain_size": self.cfg.resolved_retain_size,
        }
        if self.dual is not None:
            out["dual"] = self.dual.summary()
        if self.calibration is not None:
            out["calibration"] = self.calibration.to_dict()
        if self.cap.summary() is not None:
            out["cap"] = self.cap.summary()
        warning = self._warning(saturation)
        if warning:
            out["warning"] = warning
            warnings.warn(warning, stacklevel=2)
        return out

    def _warning(self, saturation: float) -> str | None:
        if self.cfg.efficiency == 0 or not self.calls:
            return None
        if self.dual is None and saturation >= 0.5:
            return (f"readiness: the forget loss after simulated unlearning was past ready.cap={self.cfg.cap} on "
                    f"{saturation:.0%} of steps, where the forget term passes no gradient; raise ready.cap or "
                    "set ready.dual=true")  # fmt: skip
        dual = self.dual.summary() if self.dual is not None else None
        if dual is not None and dual["at_lam_max_fraction"] >= 0.5:
            return (
                f"readiness: λ sat at ready.lam_max={self.cfg.lam_max} on most steps: simulated requests were "
                "not honoured within the utility guard; this model may not be made ready at this alpha"
            )
        if dual is not None and dual["updates"] >= QUIET_MIN_UPDATES and dual["violated_fraction"] < QUIET_VIOLATION:
            return (
                f"readiness: the simulated requests were already honoured on {1 - dual['violated_fraction']:.0%} of "
                f"readiness steps, so λ fell from {dual['lam_start']:.2g} to {dual['lam']:.2g}: the constraint asked "
                f"little of this model and readiness may not speed unlearning up (one simulated step of "
                f"α={self.cfg.alpha} already passes the cap). Ask for more: raise ready.cap (ready.cap=heldout for "
                "random or group requests) or lower ready.alpha_factor"
            )
        return None

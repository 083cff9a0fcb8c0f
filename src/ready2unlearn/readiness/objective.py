"""The per-step objective readiness training adds to the task loss: λ · L_ready when due, with λ a dual variable.

Ready2Unlearn (Duan, Yang, Abbasi, Tam 2025, arXiv 2505.10845), in the form of DESIGN §5:

    L(θ) = L_task(θ; B) + λ · L_ready(θ)

L_ready of one simulated request is :func:`~ready2unlearn.readiness.loss.readiness_loss`. This module draws the
requests, measures α and the cap when they are measured on the model, adapts λ, and writes the card entry.
"""

from __future__ import annotations

import dataclasses
import warnings
from typing import Any

import torch
from torch import nn

from ready2unlearn.config import to_dict
from ready2unlearn.data.base import ArrayDataset
from ready2unlearn.engine.method import build_method
from ready2unlearn.errors import ConfigError
from ready2unlearn.readiness.calibrate import Calibration, calibrate_alpha
from ready2unlearn.readiness.cap import CapResolver
from ready2unlearn.readiness.config import ReadyConfig
from ready2unlearn.readiness.dual import DualLambda
from ready2unlearn.readiness.loss import readiness_loss
from ready2unlearn.readiness.preflight import MEASURED, Preflight, constraint_preflight
from ready2unlearn.readiness.sampler import RequestSampler
from ready2unlearn.task import ClassificationTask, Task

#: Said when readiness prepares for random requests: what the benchmarks measured (benchmarks/readiness/README.md).
RANDOM_REQUESTS_WARNING = (
    "readiness for random requests has not sped up unlearning on any model measured (5 seeds each on digits, "
    "MNIST, Fashion-MNIST and a tabular net: every interval includes 1x; Fashion-MNIST 1.33x the GA steps; the "
    "CIFAR-10 CNN 2.76x, slower on every seed): the ready model fits the revocable rows better, so there is "
    "farther to go (on the CIFAR-10 CNN the fixed 0.3-nat cap sat below the training loss, so the forget term "
    "never acted). Down-weighting the pool (r2u train --downweight) was faster; see benchmarks/readiness/README.md"
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


def constraint_health(card: dict[str, Any] | None) -> dict[str, Any] | None:
    """How hard the readiness constraint worked in one run, from its card entry (:meth:`ReadinessObjective.summary`).

    ``None`` for a run without the dual λ. ``violated`` is the share of readiness steps whose simulated request
    was not yet honoured, ``drift`` λ's drift at readiness start (the preflight; absent in older cards).
    """
    dual = (card or {}).get("dual")
    if not dual:
        return None
    pre = (card or {}).get("preflight") or {}
    return {"violated": dual["violated_fraction"], "lam_start": dual.get("lam_start"), "lam_end": dual["lam"],
            "drift": pre.get("drift")}  # fmt: skip


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
        self.preflight: Preflight | None = None
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
        if self.calls == 0 and self.preflight is None and self.cfg.efficiency > 0:
            self._preflight(model)  # on the model as readiness finds it: not again after a resume
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

    def _preflight(self, model: nn.Module) -> None:
        """Scores the constraint at readiness start (once) and warns now, not hours later, when it is slack."""
        self.preflight = constraint_preflight(model, self.train, self.cfg, self.num_classes, seed=self.seed,
                                              task=self.method.task)  # fmt: skip
        if self.preflight.slack:
            warnings.warn(
                f"readiness: at its start one simulated step of α={self.preflight.alpha:.3g} already honours "
                f"{self.preflight.honoured}/{len(self.preflight.forget_after)} simulated requests (λ's drift "
                f"{self.preflight.drift:+.2f} ≤ 0): the constraint is slack on this model and readiness will "
                f"likely idle; {MEASURED}",
                stacklevel=3,
            )

    def state_dict(self) -> dict[str, Any]:
        """What a resumed training run needs to continue this objective (JSON data)."""
        return {
            "alpha": self.cfg.alpha, "calibration": self.calibration.to_dict() if self.calibration else None,
            "dual": self.dual.state_dict() if self.dual else None, "calls": self.calls, "sums": dict(self._sums),
            "epoch": self._epoch, "cap": self.cap.state_dict(),
            "preflight": self.preflight.to_dict() if self.preflight else None,
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
        if state.get("preflight"):
            pre = state["preflight"]
            self.preflight = Preflight(alpha=pre["alpha"], cap=pre["cap"], forget_after=list(pre["forget_after"]))
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
        if self.preflight is not None:
            out["preflight"] = self.preflight.to_dict()
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

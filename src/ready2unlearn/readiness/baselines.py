"""Learning-time baselines Ready2Unlearn is compared with: DP-SGD, down-weighting, negative training, NEFTune.

- DP-SGD (Abadi et al. 2016, "Deep Learning with Differential Privacy"), via Opacus: per-sample gradient
  clipping plus Gaussian noise bounds every sample's influence, so a later request has less to undo.
- Down-weighting: the revocable set's loss gets weight ``w < 1``, so the model leans on it less.
- Negative training (:class:`NegativeTrainingObjective`): the readiness forget term *without* the simulated
  unlearning — minimise ``−λ·λ1·min(CE(θ; F), c)`` on a simulated request F from the revocable set. With
  ``first_order=true`` the readiness efficiency gradient is exactly this term evaluated at a look-ahead
  point, so readiness shows a meta-learning benefit only where it beats this baseline at equal utility cost.
- NEFTune (Jain et al. 2023, "NEFTune: Noisy Embeddings Improve Instruction Finetuning", arXiv 2310.05914),
  a baseline of the Ready2Unlearn paper's language experiments: uniform noise of scale ``α/√(L·d)`` on the
  input embeddings while fine-tuning, through Transformers' own hook (``transformers.integrations.neftune``).

DP-SGD and down-weighting take the task (a classifier by default, or a causal LM), so the language benchmark
trains its baselines with the same code as the vision one.

Each produces an ordinary ``nn.Module`` that the same unlearning methods then serve requests on.
"""

from __future__ import annotations

import time
import warnings
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from ready2unlearn.config import check, to_dict
from ready2unlearn.data.base import ArrayDataset
from ready2unlearn.data.request import DeletionRequest
from ready2unlearn.engine.fit import FitResult, FitSettings, final_metrics, fit
from ready2unlearn.errors import ConfigError
from ready2unlearn.models.dp import dp_incompatible_layers, require_opacus
from ready2unlearn.optim import build_optimizer, build_scheduler
from ready2unlearn.readiness.cap import CapResolver
from ready2unlearn.readiness.config import ReadyConfig
from ready2unlearn.readiness.sampler import RequestSampler, RevocableSet
from ready2unlearn.runtime import seed_everything
from ready2unlearn.task import ClassificationTask, Task


@dataclass
class DPConfig:
    """DP-SGD settings.

    Attributes:
        noise_multiplier: Gaussian noise std relative to ``max_grad_norm``.
        max_grad_norm: Per-sample gradient clipping norm.
        delta: δ for the reported ε.
    """

    noise_multiplier: float = 1.0
    max_grad_norm: float = 1.0
    delta: float = 1e-5

    def __post_init__(self) -> None:
        check(self.noise_multiplier >= 0, "dp.noise_multiplier must be ≥ 0")
        check(self.max_grad_norm > 0, "dp.max_grad_norm must be positive")
        check(0 < self.delta < 1, "dp.delta must be in (0, 1)")


def fit_dp_sgd(model: nn.Module, train: ArrayDataset, test: ArrayDataset | None, cfg: FitSettings,
               dp: DPConfig, task: Task | None = None) -> tuple[FitResult, float]:  # fmt: skip
    """Trains ``model`` in place with DP-SGD (Opacus, Poisson sampling, RDP accountant).

    Args:
        model: A model without BatchNorm (per-sample gradients need layers Opacus supports, or its functorch
            fallback: a Llama-style LM with RMSNorm and tied embeddings works, LoRA adapters too).
        train: Training data.
        test: Evaluated at the end when given.
        cfg: Epochs, batch size (expected Poisson batch), optimiser and seed.
        dp: Noise and clipping.
        task: How the loss is computed (default: classification). The loss is the mean of per-sample losses,
            the reduction Opacus's per-sample gradients assume (``loss_reduction="mean"``).

    Returns:
        ``(FitResult, ε)`` — ε at ``dp.delta`` for the whole run.

    Raises:
        ImportError: With an install hint when Opacus is missing (``pip install ready2unlearn[dp]``).
        ConfigError: When the model has layers DP-SGD cannot train (BatchNorm), before any step.
    """
    PrivacyEngine = require_opacus().PrivacyEngine  # bound late: Opacus is an optional extra
    bad = dp_incompatible_layers(model)
    if bad:
        raise ConfigError(f"DP-SGD cannot train {', '.join(bad)} (BatchNorm mixes the samples of a batch, so no "
                          "per-sample gradient bounds one sample's influence). Train the model's twin with "
                          "Opacus's replacements (dp_twin: GroupNorm for BatchNorm), or drop the DP baseline "
                          "(dp=null).")  # fmt: skip
    from torch.utils.data import DataLoader, TensorDataset

    task = task or ClassificationTask(0)
    gen = seed_everything(cfg.seed)
    device = next(model.parameters()).device
    loader = DataLoader(TensorDataset(train.x, train.y), batch_size=cfg.batch_size, shuffle=True, generator=gen)
    optimizer = build_optimizer([p for p in model.parameters() if p.requires_grad], cfg.optim)
    t0 = time.perf_counter()
    history = []
    with warnings.catch_warnings():
        # A benchmark baseline, not a production DP release: the fast (non-cryptographic) noise RNG is what we
        # want, so Opacus's reminder about secure_mode, and the hook notice on input layers, are silenced.
        warnings.filterwarnings("ignore", message="Secure RNG turned off", category=UserWarning)
        warnings.filterwarnings("ignore", message="Full backward hook is firing", category=UserWarning)
        engine = PrivacyEngine(accountant="rdp")
        private, dp_opt, dp_loader = engine.make_private(
            module=model, optimizer=optimizer, data_loader=loader, noise_multiplier=dp.noise_multiplier,
            max_grad_norm=dp.max_grad_norm, noise_generator=torch.Generator(device=device).manual_seed(cfg.seed),
        )  # fmt: skip
        steps_per_epoch = len(dp_loader)
        scheduler = build_scheduler(optimizer, cfg.optim, cfg.epochs * steps_per_epoch, steps_per_epoch)
        private.train()
        for epoch in range(cfg.epochs):
            for x, y in dp_loader:
                if len(y) == 0:  # Poisson sampling can draw an empty batch
                    continue
                loss = task.per_sample_loss(private, x.to(device), y.to(device)).mean()
                dp_opt.zero_grad(set_to_none=True)
                loss.backward()
                dp_opt.step()
                scheduler.step()
            history.append({"epoch": epoch + 1, "epsilon": engine.get_epsilon(dp.delta)})
    seconds = time.perf_counter() - t0
    private._close()  # removes the per-sample-gradient hooks: `model` is a plain module again
    for p in model.parameters():
        p.grad = None
    model.eval()
    metrics = final_metrics(model, train, test, task)
    epsilon = engine.get_epsilon(dp.delta)
    metrics["epsilon"] = epsilon
    return FitResult(history, metrics, seconds), epsilon


@dataclass
class DownweightConfig:
    """Down-weighting the revocable rows' loss while training (``r2u train downweight.revocable=...``).

    What the readiness benchmark found to prepare a model for *random* requests (forget loss ≥ the retrained
    model's): their unlearning steps follow how well the rows were fitted, and a weight of 0.1 on a revocable
    pool took GA 0.28x the standard model's steps on the digits MLP (−0.2 points), 0.04x on the MNIST CNN and
    0–14 steps instead of 18–38 on the Fashion-MNIST CNN (−0.1 points), where no setting of the meta-learning
    objective did better than 0.56x. It costs more where classes overlap: −1.3 to −3.3 points on the tabular
    net (5 seeds; ``benchmarks/readiness/random_cap/``).

    Attributes:
        revocable: The revocable rows as a request spec (``random:0.3@7``, ``class:3,5``, ``samples:ids.txt``,
            ``group:user=42``).
        weight: Loss weight of those rows, in [0, 1] (the others keep 1).
    """

    revocable: str = ""
    weight: float = 0.1

    def __post_init__(self) -> None:
        check(bool(self.revocable), "downweight.revocable must name the revocable rows (a request spec such as "
              "random:0.3@7 or class:3,5)")  # fmt: skip
        DeletionRequest.parse(self.revocable)  # a malformed spec fails at load time
        check(0.0 <= self.weight <= 1.0, f"downweight.weight must be in [0, 1], got {self.weight}")

    def pool(self, train: ArrayDataset, num_classes: int) -> torch.Tensor:
        """Positions of the revocable rows in ``train``."""
        return torch.as_tensor(RevocableSet.resolve(train, self.revocable, num_classes).pool, dtype=torch.long)


def row_weights(n: int, positions: torch.Tensor | list[int], weight: float) -> torch.Tensor:
    """``n`` loss weights: ``weight`` at ``positions``, 1 elsewhere."""
    w = torch.ones(n)
    w[torch.as_tensor(positions, dtype=torch.long)] = weight
    return w


def fit_downweighted(model: nn.Module, train: ArrayDataset, test: ArrayDataset | None, cfg: FitSettings,
                     positions: torch.Tensor | list[int], weight: float,
                     task: Task | None = None) -> FitResult:  # fmt: skip
    """Standard training with the loss of rows ``positions`` (the revocable set) multiplied by ``weight``.

    Raises:
        ValueError: If ``weight`` is not in [0, 1].
    """
    if not 0.0 <= weight <= 1.0:
        raise ValueError(f"down-weighting needs a weight in [0, 1], got {weight}")
    return fit(
        model,
        train,
        test,
        cfg,
        task=task,
        show_progress=False,
        sample_weight=row_weights(len(train), positions, weight),
    )


def fit_neftune(model: nn.Module, train: ArrayDataset, test: ArrayDataset | None, cfg: FitSettings, alpha: float,
                task: Task | None = None) -> FitResult:  # fmt: skip
    """Standard fine-tuning of a Transformers model with NEFTune noise on its input embeddings.

    The noise is added by Transformers' own forward hook (the route ``Trainer(neftune_noise_alpha=...)``
    takes), only in training mode, and the hook is removed afterwards: evaluation and later unlearning see
    the plain model.

    Args:
        model: A Transformers model (or a PEFT wrapper of one) with ``get_input_embeddings``.
        train: Training data.
        test: Evaluated at the end when given.
        cfg: The usual fine-tuning settings.
        alpha: NEFTune's noise scale α (the paper uses 5-15).
        task: How the loss is computed (a causal LM here).

    Raises:
        ValueError: If ``alpha`` is not positive.
        ImportError: With an install hint when Transformers is missing (extra ``hf``).
    """
    if alpha <= 0:
        raise ValueError(f"NEFTune needs a positive noise alpha, got {alpha}")
    try:
        from transformers.integrations.neftune import activate_neftune, deactivate_neftune
    except ImportError as e:  # pragma: no cover - exercised only without the extra
        raise ImportError("NEFTune needs Transformers: pip install 'ready2unlearn[hf]'") from e
    handle = activate_neftune(model, alpha)
    try:
        return fit(model, train, test, cfg, task=task, show_progress=False)
    finally:
        deactivate_neftune(model, handle)


class NegativeTrainingObjective:
    """A capped negative-training regulariser: ``−λ·λ1·min(CE(θ; F), c)`` on simulated requests, no inner loop.

    It pushes the loss of a revocable forget batch F *up* to the cap c and no further (past the cap the
    term is constant and passes no gradient). Everything but the simulated unlearning is the readiness
    objective's: the same :class:`~ready2unlearn.readiness.RequestSampler` over the same revocable set, the
    same λ, λ1 (``efficiency``), cap, ``meta_every`` (λ scaled by it) and ``start_epoch``. Plugs into
    :func:`~ready2unlearn.engine.fit.fit` as ``regularizer=``.

    Args:
        cfg: The ready config whose knobs it copies (its kind-dependent defaults are resolved).
        train: The training set (on the training device).
        num_classes: Number of labels.
        seed: Seeds the request draws (reseeded with ``(seed, epoch)`` every epoch, as readiness does).
        task: How the model is scored; default a :class:`ClassificationTask`.
        heldout: Rows the model does not train on; needed by ``ready.cap=heldout``.
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
        self.seed = seed
        self.task = task or ClassificationTask(num_classes)
        self.sampler = RequestSampler(train, cfg, num_classes, seed)
        # Measured as readiness measures it (same rows, same schedule), so both push to the same level.
        self.cap = CapResolver(cfg.cap, train, self.sampler.revocable.pool, self.task, heldout, seed)  # type: ignore[arg-type]
        self._epoch = -1
        self.calls = 0
        self._sums: dict[str, float] = {}

    def __call__(self, model: nn.Module, step: int, epoch: int) -> tuple[torch.Tensor | None, dict[str, float]]:
        """``(−λ·meta_every·λ1·min(CE(θ; F), c), parts)`` on due steps, ``(None, {})`` otherwise."""
        self.cap.update(model, step, epoch)
        self.cfg = self.cap.applied(self.cfg)
        cfg = self.cfg
        if epoch < cfg.start_epoch or step % cfg.meta_every != 0 or cfg.lam == 0:  # type: ignore[operator]
            return None, {}
        if epoch != self._epoch:
            self._epoch = epoch
            self.sampler.reseed(self.seed, epoch)
        batch = self.sampler.sample()
        forget = self.task.loss(model, batch.forget_x, batch.forget_y)
        cap = float(cfg.cap)  # type: ignore[arg-type]
        parts = {"forget_loss": forget.item(), "cap_saturated": float(forget.item() >= cap)}
        self.calls += 1
        for k, v in parts.items():
            self._sums[k] = self._sums.get(k, 0.0) + v
        term = -cfg.efficiency * forget.clamp(max=cap)
        return cfg.lam * cfg.meta_every * term, parts  # type: ignore[operator]

    def state_dict(self) -> dict[str, Any]:
        """What a resumed training run needs to continue this term (JSON data)."""
        return {"cap": self.cap.state_dict(), "calls": self.calls, "sums": dict(self._sums), "epoch": self._epoch}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restores :meth:`state_dict`: the measured cap (not measured again) and the running means."""
        if state.get("cap"):
            self.cap.load_state_dict(state["cap"])
            self.cfg = self.cap.applied(self.cfg)
        self.calls = int(state.get("calls", 0))
        self._epoch = int(state.get("epoch", -1))
        self._sums = {k: float(v) for k, v in (state.get("sums") or {}).items()}

    def summary(self, train: ArrayDataset) -> dict[str, Any]:
        """Card entry: the revocable set, how often the term ran, the mean forget loss and cap saturation."""
        means = {k: v / self.calls for k, v in self._sums.items()} if self.calls else {}
        out = {"revocable": self.sampler.revocable.describe(train), "meta_steps": self.calls, "mean_parts": means,
               "cap_saturation": means.get("cap_saturated", 0.0), "resolved": to_dict(self.cfg)}  # fmt: skip
        if self.cap.summary() is not None:
            out["cap"] = self.cap.summary()
        return out

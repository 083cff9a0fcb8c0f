"""Learning-time baselines Ready2Unlearn is compared with: DP-SGD and down-weighting the revocable set.

- DP-SGD (Abadi et al. 2016, "Deep Learning with Differential Privacy"), via Opacus: per-sample gradient
  clipping plus Gaussian noise bounds every sample's influence, so a later request has less to undo.
- Down-weighting: the revocable set's loss gets weight ``w < 1``, so the model leans on it less.

Both produce an ordinary ``nn.Module`` that the same unlearning methods then serve requests on.
"""

from __future__ import annotations

import time
import warnings
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from ready2unlearn.config import check
from ready2unlearn.data.base import ArrayDataset
from ready2unlearn.optim import build_optimizer, build_scheduler
from ready2unlearn.recipes.train import FitResult, TrainConfig, final_metrics, fit
from ready2unlearn.runtime import seed_everything


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


def fit_dp_sgd(model: nn.Module, train: ArrayDataset, test: ArrayDataset | None, cfg: TrainConfig,
               dp: DPConfig) -> tuple[FitResult, float]:  # fmt: skip
    """Trains ``model`` in place with DP-SGD (Opacus, Poisson sampling, RDP accountant).

    Args:
        model: A classifier without BatchNorm (per-sample gradients need layers Opacus supports).
        train: Training data.
        test: Evaluated at the end when given.
        cfg: Epochs, batch size (expected Poisson batch), optimiser and seed.
        dp: Noise and clipping.

    Returns:
        ``(FitResult, ε)`` — ε at ``dp.delta`` for the whole run.

    Raises:
        ImportError: With an install hint when Opacus is missing (``pip install ready2unlearn[dp]``).
    """
    try:
        from opacus import PrivacyEngine
    except ImportError as e:  # pragma: no cover - exercised only without the extra
        raise ImportError("DP-SGD needs Opacus: pip install 'ready2unlearn[dp]'") from e
    from torch.utils.data import DataLoader, TensorDataset

    gen = seed_everything(cfg.seed)
    device = next(model.parameters()).device
    loader = DataLoader(TensorDataset(train.x, train.y), batch_size=cfg.batch_size, shuffle=True, generator=gen)
    optimizer = build_optimizer(model.parameters(), cfg.optim)
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
                loss = F.cross_entropy(private(x.to(device)), y.to(device))
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
    metrics = final_metrics(model, train, test)
    epsilon = engine.get_epsilon(dp.delta)
    metrics["epsilon"] = epsilon
    return FitResult(history, metrics, seconds), epsilon


def fit_downweighted(model: nn.Module, train: ArrayDataset, test: ArrayDataset | None, cfg: TrainConfig,
                     positions: torch.Tensor | list[int], weight: float) -> FitResult:  # fmt: skip
    """Standard training with the loss of rows ``positions`` (the revocable set) multiplied by ``weight``.

    Raises:
        ValueError: If ``weight`` is not in [0, 1].
    """
    if not 0.0 <= weight <= 1.0:
        raise ValueError(f"down-weighting needs a weight in [0, 1], got {weight}")
    w = torch.ones(len(train))
    w[torch.as_tensor(positions, dtype=torch.long)] = weight
    return fit(model, train, test, cfg, show_progress=False, sample_weight=w)

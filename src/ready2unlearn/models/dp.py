"""Which layers DP-SGD cannot train, and the model with Opacus's replacements for them (the "DP twin").

These are facts about an architecture, so they live with the models: the DP-SGD baseline
(:mod:`ready2unlearn.readiness.baselines`) checks and swaps layers before training, and
:func:`ready2unlearn.checkpoint.load_checkpoint` rebuilds a DP-SGD checkpoint as the twin its card names. Opacus is
imported only when one of them runs (it is the optional ``dp`` extra).
"""

from __future__ import annotations

from typing import Any

from torch import nn

from ready2unlearn.errors import ConfigError


def require_opacus() -> Any:
    """The ``opacus`` package, or an ImportError that says how to install it."""
    try:
        import opacus
        import opacus.utils.module_utils
        import opacus.validators
    except ImportError as e:  # pragma: no cover - exercised only without the extra
        raise ImportError("DP-SGD needs Opacus: pip install 'ready2unlearn[dp]'") from e
    return opacus


def dp_incompatible_layers(model: nn.Module) -> list[str]:
    """The layers of ``model`` that DP-SGD cannot train, by name (empty when it can train them all).

    BatchNorm is the common one: it mixes the samples of a batch, so no per-sample gradient bounds one sample's
    influence. Checked before training, so a benchmark fails at its start, not hours in when the baseline's turn
    comes. The same per-layer validators as Opacus's ``ModuleValidator`` over the same trainable layers, run one by
    one because Opacus's own errors do not name the layer; unlike it, the model's train/eval mode is not judged.

    Args:
        model: The model DP-SGD would train.

    Returns:
        One ``"name (Type)"`` per layer a validator rejects, in module order.
    """
    opacus = require_opacus()
    validators = opacus.validators.ModuleValidator.VALIDATORS
    return [f"{name} ({type(m).__name__})" for name, m in opacus.utils.module_utils.trainable_modules(model)
            if type(m) in validators and validators[type(m)](m)]  # fmt: skip


def dp_twin(model: nn.Module) -> tuple[nn.Module, list[str]]:
    """``model`` as DP-SGD can train it: itself, or a copy whose rejected layers Opacus's fixer replaced.

    The replacement is Opacus's own (``ModuleValidator.fix``: ``GroupNorm(min(32, C), C)`` for BatchNorm, its DP
    multi-head attention for ``nn.MultiheadAttention``), the usual route to DP-SGD for a BatchNorm network. A
    benchmark that compares DP-SGD with readiness as a way to *train* a model then compares what a practitioner
    would deploy: the same network with the one change DP-SGD forces.

    Args:
        model: A freshly built model (not modified).

    Returns:
        ``(model to train, layers that were replaced)``; the list is empty when ``model`` is returned as is.

    Raises:
        ConfigError: When layers remain that DP-SGD cannot train after the swap.
    """
    swapped = dp_incompatible_layers(model)
    if not swapped:
        return model, []
    fixed = require_opacus().validators.ModuleValidator.fix(model)
    left = dp_incompatible_layers(fixed)
    if left:
        raise ConfigError(f"DP-SGD cannot train {', '.join(left)}, and Opacus has no drop-in replacement for it")
    return fixed, swapped

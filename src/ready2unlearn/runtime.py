"""Seeding and device selection shared by every recipe."""

from __future__ import annotations

import random

import numpy as np
import torch

from ready2unlearn.errors import ConfigError


def seed_everything(seed: int) -> torch.Generator:
    """Seeds Python, NumPy and PyTorch, and returns a CPU generator for data shuffling.

    A separate generator for shuffling keeps the batch order independent of how many random numbers
    model initialisation or dropout consumed, so changing the model does not reshuffle the data.
    """
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)
    gen = torch.Generator()
    gen.manual_seed(seed)
    return gen


def resolve_device(name: str = "auto") -> torch.device:
    """``auto`` → CUDA if available, else MPS if available, else CPU; other names are checked.

    Raises:
        ConfigError: If the named device is not available on this machine.
    """
    if name == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        if getattr(torch.backends, "mps", None) and torch.backends.mps.is_available():
            return torch.device("mps")
        return torch.device("cpu")
    try:
        dev = torch.device(name)
    except RuntimeError:
        raise ConfigError(f"unknown device {name!r}; use auto, cpu, cuda, cuda:N or mps") from None
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise ConfigError("device 'cuda' was requested but no CUDA GPU is available; use device=auto or cpu")
    return dev

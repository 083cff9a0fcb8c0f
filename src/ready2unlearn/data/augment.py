"""Batch-level image augmentation on tensors (no per-sample Python loop)."""

from __future__ import annotations

import torch
import torch.nn.functional as F


def crop_flip(x: torch.Tensor, generator: torch.Generator, pad: int = 4) -> torch.Tensor:
    """Random ``pad``-pixel translation (zero-padded crop) and horizontal flip, the CIFAR standard.

    Args:
        x: Images ``[B, C, H, W]``.
        generator: CPU generator, so augmentation is reproducible with the run's seed.
        pad: Maximum shift in pixels.
    """
    b, _, h, w = x.shape
    padded = F.pad(x, (pad, pad, pad, pad))
    dx = torch.randint(0, 2 * pad + 1, (b,), generator=generator)
    dy = torch.randint(0, 2 * pad + 1, (b,), generator=generator)
    # Gather each image's window with one advanced-indexing op: rows[b, i] = dy[b] + i, cols likewise.
    rows = (dy[:, None] + torch.arange(h)[None]).to(x.device)
    cols = (dx[:, None] + torch.arange(w)[None]).to(x.device)
    out = padded[torch.arange(b, device=x.device)[:, None, None, None],
                 torch.arange(x.shape[1], device=x.device)[None, :, None, None],
                 rows[:, None, :, None], cols[:, None, None, :]]  # fmt: skip
    flip = (torch.rand(b, generator=generator) < 0.5).to(x.device)
    return torch.where(flip[:, None, None, None], out.flip(-1), out)

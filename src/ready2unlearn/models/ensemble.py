"""An ensemble of constituent classifiers that answers as one model (SISA's aggregation).

The ensemble returns *log-probabilities* in place of logits: argmax is the ensemble's label and
cross-entropy on them is the negative log-likelihood of the aggregated distribution, so every metric,
attack and evaluation that takes a classifier works on it unchanged.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Literal

import torch
from torch import nn

#: Weight of the mean softmax under ``vote``: small enough never to overturn a majority (a vote share
#: differs by at least 1/S), large enough to break a tie by confidence.
_TIE_BREAK = 1e-3


class Ensemble(nn.Module):
    """Constituent classifiers aggregated by mean softmax or by majority vote.

    Args:
        members: The constituent models (same input and output shapes).
        aggregation: ``softmax``: the mean of the members' softmax outputs; ``vote``: the share of members
            voting for each label (ties broken by the mean softmax).
    """

    def __init__(self, members: Sequence[nn.Module], aggregation: Literal["softmax", "vote"] = "softmax") -> None:
        super().__init__()
        if not members:
            raise ValueError("an ensemble needs at least one member")
        if aggregation not in ("softmax", "vote"):
            raise ValueError(f"aggregation must be 'softmax' or 'vote', got {aggregation!r}")
        self.members = nn.ModuleList(members)
        self.aggregation = aggregation

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Log of the aggregated class distribution, ``[B, C]``."""
        probs = torch.stack([m(x).softmax(dim=-1) for m in self.members])  # [S, B, C]
        mean = probs.mean(dim=0)
        if self.aggregation == "softmax":
            return mean.clamp_min(1e-12).log()
        votes = nn.functional.one_hot(probs.argmax(dim=-1), probs.shape[-1]).float().mean(dim=0)
        dist = (votes + _TIE_BREAK * mean) / (1 + _TIE_BREAK)
        return dist.clamp_min(1e-12).log()

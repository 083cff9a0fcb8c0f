"""A small text classifier trained from scratch: mean of word embeddings, then an MLP.

Bag-of-embeddings is a strong, fast baseline for topic and spam classification (fastText-style) and
trains in seconds on 2 CPU cores. Pretrained encoders (MiniLM via Transformers) come with the ``hf`` extra.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from ready2unlearn.config import check
from ready2unlearn.data.base import DataSpec
from ready2unlearn.data.text import PAD
from ready2unlearn.models.registry import ModelConfig, register_model


@dataclass
class TextBagConfig(ModelConfig):
    """Bag-of-embeddings classifier.

    Attributes:
        embed_dim: Word-embedding width.
        hidden: Width of the hidden layer (0 = linear classifier on the mean embedding).
        dropout: Dropout on the pooled embedding.
    """

    name: str = "text_bag"
    embed_dim: int = 64
    hidden: int = 64
    dropout: float = 0.1

    def __post_init__(self) -> None:
        check(self.name == "text_bag", f"TextBagConfig.name must be 'text_bag', got {self.name!r}")
        check(self.embed_dim > 0 and self.hidden >= 0, "model.embed_dim must be > 0 and model.hidden ≥ 0")
        check(0.0 <= self.dropout < 1.0, f"model.dropout must be in [0, 1), got {self.dropout}")


class TextBag(nn.Module):
    """Token ids ``[B, L]`` (0 = padding) → masked mean embedding → MLP → logits ``[B, C]``."""

    def __init__(self, vocab_size: int, num_classes: int, embed_dim: int, hidden: int, dropout: float) -> None:
        super().__init__()
        self.embed = nn.Embedding(vocab_size, embed_dim, padding_idx=PAD)
        head: list[nn.Module] = [nn.Dropout(dropout)]
        if hidden:
            head += [nn.Linear(embed_dim, hidden), nn.ReLU()]
        head.append(nn.Linear(hidden or embed_dim, num_classes))
        self.head = nn.Sequential(*head)

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        """Classifies a batch of padded token-id sequences."""
        mask = (tokens != PAD).unsqueeze(-1).float()  # [B, L, 1]
        summed = (self.embed(tokens) * mask).sum(1)  # [B, E]
        return self.head(summed / mask.sum(1).clamp_min(1.0))


@register_model("text_bag", TextBagConfig, ("text",), "bag-of-embeddings text classifier (from scratch)")
def build_text_bag(cfg: TextBagConfig, spec: DataSpec) -> nn.Module:
    """Builds :class:`TextBag` for the spec's vocabulary and classes."""
    return TextBag(spec.vocab_size, spec.num_classes, cfg.embed_dim, cfg.hidden, cfg.dropout)

"""How a model is scored on a batch: the one place that knows "logits" and "task loss".

Methods never call ``model(x)`` directly; they go through a task, whose ``params`` argument switches
between an ordinary forward (``None``) and ``torch.func.functional_call`` with a parameter dict. That single
switch is what lets readiness training run the *same* method loss inside a differentiable inner loop.

Two tasks share one interface, so the training loop, the unlearning engine, the stop rules and the
readiness objective run unchanged on classifiers and on causal language models:

- :class:`ClassificationTask`: ``x`` any input, ``y`` labels ``[B]``, logits ``[B, C]``.
- :class:`CausalLMTask`: ``x`` input ids ``[B, L]``, ``y`` labels ``[B, L]`` (−100 where not scored, see
  :mod:`ready2unlearn.data.lm`), logits ``[B, L, V]``. A "sample" is a sequence: its loss is the mean NLL of
  its scored tokens, its log-probability the sum, and "accuracy" is next-token top-1 accuracy on the scored
  tokens (the LM analogue the stop rules use).

It also holds the batched inference helpers (:func:`predict_logits`, :func:`accuracy_and_loss`) that training,
unlearning and verification share. This module sits below the engines, methods and evaluation in the
layering (docs/ARCHITECTURE.md): everything that scores a model imports it, and it imports only data.
"""

from __future__ import annotations

from collections.abc import Mapping

import torch
import torch.nn.functional as F
from torch import nn
from torch.func import functional_call

from ready2unlearn.data.base import ArrayDataset
from ready2unlearn.data.lm import IGNORE

Params = Mapping[str, torch.Tensor]


@torch.no_grad()
def predict_logits(model: nn.Module, data: ArrayDataset, batch_size: int = 1024) -> torch.Tensor:
    """Logits ``[N, C]`` of ``model`` on ``data`` in eval mode (restores the previous mode), on the CPU."""
    was_training = model.training
    model.eval()
    device = next(model.parameters()).device
    out = [model(x.to(device)).float().cpu() for x, _ in data.batches(batch_size)]
    model.train(was_training)
    return torch.cat(out) if out else torch.empty(0, 0)


def accuracy_and_loss(model: nn.Module, data: ArrayDataset, batch_size: int = 1024) -> tuple[float, float]:
    """Top-1 accuracy and mean cross-entropy of ``model`` on ``data`` (``nan`` for an empty set)."""
    if len(data) == 0:
        return float("nan"), float("nan")
    logits = predict_logits(model, data, batch_size)
    y = data.y.cpu()
    return (logits.argmax(1) == y).float().mean().item(), F.cross_entropy(logits, y).item()


def forward(model: nn.Module, x: torch.Tensor, params: Params | None = None) -> torch.Tensor:
    """``model(x)``, or the same forward with ``params`` substituted (buffers and missing keys from ``model``).

    A Hugging Face model returns a ``ModelOutput``; its ``logits`` are taken, so a plain
    ``AutoModelForCausalLM`` (or its PEFT wrapper) plugs in without an adapter module.
    """
    out = model(x) if params is None else functional_call(model, dict(params), (x,), strict=False)
    return out if isinstance(out, torch.Tensor) else out.logits


class ClassificationTask:
    """Cross-entropy classification over logits ``[B, C]``."""

    kind = "classification"

    def __init__(self, num_classes: int) -> None:
        self.num_classes = num_classes

    def logits(self, model: nn.Module, x: torch.Tensor, params: Params | None = None) -> torch.Tensor:
        """Logits ``[B, C]``."""
        return forward(model, x, params)

    def loss(self, model: nn.Module, x: torch.Tensor, y: torch.Tensor, params: Params | None = None) -> torch.Tensor:
        """Mean cross-entropy of the model on ``(x, y)``."""
        return F.cross_entropy(self.logits(model, x, params), y)

    def per_sample_loss(
        self, model: nn.Module, x: torch.Tensor, y: torch.Tensor, params: Params | None = None
    ) -> torch.Tensor:
        """Cross-entropy per sample, ``[B]``."""
        return F.cross_entropy(self.logits(model, x, params), y, reduction="none")

    def log_prob(
        self, model: nn.Module, x: torch.Tensor, y: torch.Tensor, params: Params | None = None, normalize: bool = False
    ) -> torch.Tensor:
        """``log p(y|x)`` per sample, ``[B]`` (a label is one "token", so ``normalize`` changes nothing)."""
        return -self.per_sample_loss(model, x, y, params)

    @torch.no_grad()
    def accuracy_and_loss(self, model: nn.Module, data: ArrayDataset, batch_size: int = 1024) -> tuple[float, float]:
        """Top-1 accuracy and mean cross-entropy on ``data`` (``nan`` for an empty set)."""
        return accuracy_and_loss(model, data, batch_size)


class CausalLMTask:
    """Next-token prediction scored on the label tokens of each sequence (answer tokens for QA data).

    Args:
        vocab_size: Size of the output vocabulary (kept for reports; the logits define it).
        eval_batch_size: Batch size of :meth:`accuracy_and_loss` (sequences, not tokens).
    """

    kind = "causal_lm"
    num_classes = 0  # no labels: the ``chance`` stop target does not apply

    def __init__(self, vocab_size: int = 0, eval_batch_size: int = 32) -> None:
        self.vocab_size = vocab_size
        self.eval_batch_size = eval_batch_size

    def logits(self, model: nn.Module, x: torch.Tensor, params: Params | None = None) -> torch.Tensor:
        """Logits ``[B, L, V]``."""
        return forward(model, x, params)

    def token_nll(
        self, model: nn.Module, x: torch.Tensor, y: torch.Tensor, params: Params | None = None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """``(nll [B, L-1], mask [B, L-1])``: position t's logits scored against label t+1."""
        logits = self.logits(model, x, params)[:, :-1]
        target = y[:, 1:]
        mask = target != IGNORE
        nll = F.cross_entropy(logits.reshape(-1, logits.shape[-1]).float(), target.clamp_min(0).reshape(-1),
                              reduction="none").view_as(target)  # fmt: skip
        return nll * mask, mask

    def loss(self, model: nn.Module, x: torch.Tensor, y: torch.Tensor, params: Params | None = None) -> torch.Tensor:
        """Mean NLL over every scored token of the batch (the standard causal-LM loss)."""
        nll, mask = self.token_nll(model, x, y, params)
        return nll.sum() / mask.sum().clamp_min(1)

    def per_sample_loss(
        self, model: nn.Module, x: torch.Tensor, y: torch.Tensor, params: Params | None = None
    ) -> torch.Tensor:
        """Mean NLL of each sequence's scored tokens, ``[B]``."""
        nll, mask = self.token_nll(model, x, y, params)
        return nll.sum(1) / mask.sum(1).clamp_min(1)

    def log_prob(
        self, model: nn.Module, x: torch.Tensor, y: torch.Tensor, params: Params | None = None, normalize: bool = False
    ) -> torch.Tensor:
        """``log π(y|x)`` per sequence, ``[B]``: summed over scored tokens, or their mean with ``normalize``."""
        nll, mask = self.token_nll(model, x, y, params)
        total = -nll.sum(1)
        return total / mask.sum(1).clamp_min(1) if normalize else total

    @torch.no_grad()
    def accuracy_and_loss(
        self, model: nn.Module, data: ArrayDataset, batch_size: int | None = None
    ) -> tuple[float, float]:
        """Next-token top-1 accuracy and mean NLL over the scored tokens of ``data`` (``nan`` when empty)."""
        if len(data) == 0:
            return float("nan"), float("nan")
        was_training = model.training
        model.eval()
        device = next(model.parameters()).device
        correct = total = 0
        nll_sum = 0.0
        for x, y in data.batches(batch_size or self.eval_batch_size):
            x, y = x.to(device), y.to(device)
            logits = self.logits(model, x)[:, :-1]
            target = y[:, 1:]
            mask = target != IGNORE
            nll_sum += F.cross_entropy(logits[mask].float(), target[mask], reduction="sum").item()
            correct += (logits.argmax(-1)[mask] == target[mask]).sum().item()
            total += int(mask.sum())
        model.train(was_training)
        return correct / max(total, 1), nll_sum / max(total, 1)


Task = ClassificationTask | CausalLMTask

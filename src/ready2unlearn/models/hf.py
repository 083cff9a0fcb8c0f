"""Hugging Face models in the model registry (extra ``hf``; transformers is imported only when one is built).

- ``hf_classifier``: a pretrained encoder (default ``minilm``) + a new classification head, full or LoRA
  fine-tuning, on token ids produced by the same checkpoint's tokenizer (``data.tokenizer``).
- ``hf_causal_lm``: a pretrained causal LM (default ``smollm2-135m``), LoRA or full fine-tuning.
- ``tiny_lm``: a small Llama-style causal LM trained from scratch (fast tests, CPU benchmarks).
"""

from __future__ import annotations

from dataclasses import dataclass

from torch import nn

from ready2unlearn.config import check
from ready2unlearn.data.base import DataSpec
from ready2unlearn.hf import (
    MINILM,
    SMOLLM2,
    LoraSettings,
    TinyLMConfig,
    load_causal_lm,
    load_sequence_classifier,
    tiny_causal_lm,
)
from ready2unlearn.models.registry import ModelConfig, register_model


@dataclass
class HFClassifierConfig(ModelConfig):
    """Pretrained encoder + classification head.

    Attributes:
        path: Local checkpoint directory or alias (``minilm``); must match ``data.tokenizer``.
        lora: LoRA adapters (``null`` = full fine-tuning); the head is always trained in full.
    """

    name: str = "hf_classifier"
    path: str = MINILM
    lora: LoraSettings | None = None

    def __post_init__(self) -> None:
        check(self.name == "hf_classifier", f"HFClassifierConfig.name must be 'hf_classifier', got {self.name!r}")


@register_model("hf_classifier", HFClassifierConfig, ("text",), "pretrained HF encoder + head (full or LoRA)")
def build_hf_classifier(cfg: HFClassifierConfig, spec: DataSpec) -> nn.Module:
    """Loads the encoder from ``cfg.path`` with a fresh ``spec.num_classes``-way head."""
    return load_sequence_classifier(cfg.path, spec.num_classes, cfg.lora)


@dataclass
class HFCausalLMConfig(ModelConfig):
    """Pretrained causal LM.

    Attributes:
        path: Local checkpoint directory or alias (``smollm2-135m``).
        lora: LoRA adapters (``null`` = full fine-tuning).
    """

    name: str = "hf_causal_lm"
    path: str = SMOLLM2
    lora: LoraSettings | None = None

    def __post_init__(self) -> None:
        check(self.name == "hf_causal_lm", f"HFCausalLMConfig.name must be 'hf_causal_lm', got {self.name!r}")


@register_model("hf_causal_lm", HFCausalLMConfig, ("qa",), "pretrained HF causal LM (LoRA or full)")
def build_hf_causal_lm(cfg: HFCausalLMConfig, spec: DataSpec) -> nn.Module:
    """Loads the causal LM at ``cfg.path``."""
    return load_causal_lm(cfg.path, cfg.lora)


@dataclass
class TinyLMModelConfig(ModelConfig, TinyLMConfig):
    """Small Llama-style causal LM from scratch; sizes as in :class:`~ready2unlearn.hf.TinyLMConfig`."""

    name: str = "tiny_lm"

    def __post_init__(self) -> None:
        check(self.name == "tiny_lm", f"TinyLMModelConfig.name must be 'tiny_lm', got {self.name!r}")
        TinyLMConfig.__post_init__(self)


@register_model("tiny_lm", TinyLMModelConfig, ("qa",), "small Llama-style causal LM (from scratch)")
def build_tiny_lm(cfg: TinyLMModelConfig, spec: DataSpec) -> nn.Module:
    """A seeded-by-the-caller random Llama with the tokenizer's vocabulary (``spec.vocab_size``)."""
    return tiny_causal_lm(spec.vocab_size, cfg, seed=None)

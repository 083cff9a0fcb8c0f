"""Tiny in-process language-model fixtures: a word-level tokenizer and a random Llama (no network, no files)."""

from __future__ import annotations

from collections.abc import Iterable

import torch
from torch import nn


def tiny_tokenizer(texts: Iterable[str]):
    """A Hugging Face fast tokenizer with one token per word/punctuation run seen in ``texts``.

    Special tokens: ``[PAD]`` (id 0), ``[UNK]`` (id 1), ``[EOS]`` (id 2).
    """
    from tokenizers import Tokenizer
    from tokenizers.models import WordLevel
    from tokenizers.pre_tokenizers import Whitespace
    from tokenizers.trainers import WordLevelTrainer
    from transformers import PreTrainedTokenizerFast

    raw = Tokenizer(WordLevel(unk_token="[UNK]"))
    raw.pre_tokenizer = Whitespace()
    raw.train_from_iterator(list(texts), WordLevelTrainer(special_tokens=["[PAD]", "[UNK]", "[EOS]"]))
    return PreTrainedTokenizerFast(tokenizer_object=raw, pad_token="[PAD]", unk_token="[UNK]", eos_token="[EOS]")


class LogitsOnly(nn.Module):
    """Adapts a Hugging Face causal LM to the toolkit's ``model(input_ids) -> logits`` contract."""

    def __init__(self, lm: nn.Module) -> None:
        super().__init__()
        self.lm = lm

    def forward(self, input_ids: torch.Tensor) -> torch.Tensor:
        return self.lm(input_ids=input_ids).logits


def tiny_llama(vocab_size: int, seed: int = 0) -> LogitsOnly:
    """A randomly initialised 2-layer Llama (hidden size 32) returning plain logits, seeded for repeatability."""
    from transformers import LlamaConfig, LlamaForCausalLM

    config = LlamaConfig(
        vocab_size=vocab_size,
        hidden_size=32,
        intermediate_size=64,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        max_position_embeddings=128,
    )
    # Seeded through a local generator state so the test suite's global RNG is left as it was.
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        lm = LlamaForCausalLM(config)
    return LogitsOnly(lm).eval()

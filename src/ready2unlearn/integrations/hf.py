"""The Hugging Face loaders under their earlier path: they live in :mod:`ready2unlearn.hf` now.

Datasets (tokenizers) and models (architectures) both load through them, so they sit in the data/models layer
(docs/ARCHITECTURE.md); this module keeps ``from ready2unlearn.integrations.hf import ...`` working for code
written against the old path. New code imports :mod:`ready2unlearn.hf`.
"""

from ready2unlearn.hf import (
    ATTENTION,
    INSTALL_HINT,
    MINILM,
    SMOLLM2,
    LoraSettings,
    SequenceClassifier,
    TinyLMConfig,
    apply_lora,
    cache_dir,
    load_causal_lm,
    load_sequence_classifier,
    load_tokenizer,
    require_hf,
    resolve_model_dir,
    tiny_causal_lm,
    train_tokenizer,
)

__all__ = [
    "ATTENTION",
    "INSTALL_HINT",
    "MINILM",
    "SMOLLM2",
    "LoraSettings",
    "SequenceClassifier",
    "TinyLMConfig",
    "apply_lora",
    "cache_dir",
    "load_causal_lm",
    "load_sequence_classifier",
    "load_tokenizer",
    "require_hf",
    "resolve_model_dir",
    "tiny_causal_lm",
    "train_tokenizer",
]

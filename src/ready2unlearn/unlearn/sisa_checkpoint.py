"""Saving and loading a SISA model: one checkpoint folder with its constituents and slice checkpoints.

Layout (all safetensors, no pickle):
- ``model.safetensors``: the ensemble (``members.{k}.*``), what :func:`~ready2unlearn.artifacts.load_weights`
  and every evaluation load;
- ``sisa/shard{k}-slice{r}.safetensors``: constituent ``k`` after slice ``r`` (``init`` for its seeded
  initialisation), the points exact unlearning restarts from;
- ``card.json``: the usual card plus a ``sisa`` section: layout, seed, per-shard lineage and the sha256 of
  every slice file. It is written last, so a folder with a card has every file it names.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import load_file, save_file
from torch import nn

from ready2unlearn.artifacts import atomic_write, load_weights, read_card, save_checkpoint, sha256_file
from ready2unlearn.config import from_dict, to_dict
from ready2unlearn.data.sisa import SisaConfig
from ready2unlearn.errors import DataError
from ready2unlearn.models.ensemble import Ensemble
from ready2unlearn.unlearn.sisa import SisaModel

SISA_DIR = "sisa"


def _slice_name(shard: int, slice_: int) -> str:
    return f"shard{shard}-{'init' if slice_ < 0 else f'slice{slice_}'}.safetensors"


def save_sisa(model: SisaModel, out_dir: str | Path, card: dict[str, Any]) -> dict[str, Any]:
    """Writes a SISA model into ``out_dir`` (slice files first, then the ensemble and the card).

    Args:
        model: The SISA model.
        out_dir: Checkpoint folder (created if needed).
        card: The run's card (config, seed, versions, data fingerprints, metrics); a ``sisa`` section is added.

    Returns:
        The card as written.
    """
    out = Path(out_dir)
    files = {}
    for (k, r), state in sorted(model.slice_states.items()):
        name = _slice_name(k, r)
        tensors = {key: t.contiguous() for key, t in state.items()}
        path = atomic_write(out / SISA_DIR / name, lambda p, t=tensors: save_file(t, str(p)))
        files[f"{k}/{r}"] = {"file": f"{SISA_DIR}/{name}", "sha256": sha256_file(path)}
    section = {"config": to_dict(model.cfg), "seed": model.seed, "lineage": model.lineage, "slice_files": files}
    return save_checkpoint(model.ensemble, out, {**card, "sisa": section})


def is_sisa(card: dict[str, Any]) -> bool:
    """Whether a checkpoint card describes a SISA model."""
    return isinstance(card.get("sisa"), dict)


def load_sisa(ckpt_dir: str | Path, make_model: Callable[[], nn.Module], device: str = "cpu") -> SisaModel:
    """Loads a SISA model written by :func:`save_sisa` (every file hash-checked against the card).

    Args:
        ckpt_dir: The checkpoint folder.
        make_model: Builds one constituent of the right architecture (its weights are replaced).
        device: Where to put the model.

    Raises:
        DataError: If the folder is not a SISA checkpoint, or a file is missing, corrupt or does not fit.
    """
    d = Path(ckpt_dir)
    card = read_card(d)
    if not is_sisa(card):
        raise DataError(f"{d} is not a SISA checkpoint (its card has no 'sisa' section); train one with "
                        "`r2u train --sisa.shards S --sisa.slices R`")  # fmt: skip
    section = card["sisa"]
    try:
        cfg = from_dict(SisaConfig, section["config"])
        seed, lineage, files = int(section["seed"]), list(section["lineage"]), dict(section["slice_files"])
    except (KeyError, TypeError, ValueError) as e:
        raise DataError(f"{d}/card.json has an unusable 'sisa' section ({e}); re-create the checkpoint") from None
    ensemble = Ensemble([make_model() for _ in range(cfg.shards)], cfg.aggregation).to(device)
    load_weights(ensemble, d, device)
    states: dict[tuple[int, int], dict[str, torch.Tensor]] = {}
    for key, entry in files.items():
        path = d / entry["file"]
        if not path.is_file():
            raise DataError(f"{path} is missing; the SISA model cannot be unlearned exactly without it")
        if sha256_file(path) != entry["sha256"]:
            raise DataError(f"{path} does not match the sha256 in its card: the file is corrupt or was replaced")
        shard, slice_ = (int(v) for v in key.split("/"))
        states[(shard, slice_)] = load_file(str(path), device=str(device))
    return SisaModel(ensemble, cfg, seed, states, lineage)

"""Crash-safe training state (model, optimiser, scheduler, RNGs) in safetensors + JSON.

After every epoch a recipe writes ``state-<epoch>.safetensors`` and then ``state.json`` pointing at it,
each atomically, and only then deletes the previous epoch's tensors. Whatever moment a crash hits,
``state.json`` names a complete tensor file, so ``--resume`` loses at most the epoch in progress.
No pickle is involved: optimiser tensors go to safetensors, everything else to JSON.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import load_file, save_file

from ready2unlearn.artifacts import atomic_write, write_json
from ready2unlearn.errors import R2UError

STATE_JSON = "state.json"


def save_state(
    state_dir: str | Path,
    epoch: int,
    model: torch.nn.Module,
    optimizer: torch.optim.Optimizer,
    scheduler: torch.optim.lr_scheduler.LRScheduler,
    generator: torch.Generator,
    extra: dict[str, Any],
) -> None:
    """Writes the training state after ``epoch`` (1-based count of finished epochs)."""
    d = Path(state_dir)
    tensors = {f"model.{k}": v.detach().cpu().contiguous().clone() for k, v in model.state_dict().items()}
    opt_sd = optimizer.state_dict()
    opt_meta: dict[str, Any] = {}
    for idx, st in opt_sd["state"].items():
        opt_meta[str(idx)] = {}
        for k, v in st.items():
            if torch.is_tensor(v):
                tensors[f"optim.{idx}.{k}"] = v.detach().cpu().contiguous()
            else:
                opt_meta[str(idx)][k] = v
    tensors["rng.torch"] = torch.get_rng_state()
    tensors["rng.shuffle"] = generator.get_state()
    name = f"state-{epoch}.safetensors"
    atomic_write(d / name, lambda p: save_file(tensors, str(p)))
    meta = {
        "epoch": epoch,
        "tensors": name,
        "optimizer": {"param_groups": opt_sd["param_groups"], "state": opt_meta},
        "scheduler": scheduler.state_dict(),
        "extra": extra,
    }
    write_json(d / STATE_JSON, meta)
    for old in d.glob("state-*.safetensors"):
        if old.name != name:
            old.unlink(missing_ok=True)


def load_state(
    state_dir: str | Path,
    model: torch.nn.Module,
    optimizer: torch.optim.Optimizer,
    scheduler: torch.optim.lr_scheduler.LRScheduler,
    generator: torch.Generator,
) -> tuple[int, dict[str, Any]]:
    """Restores a state written by :func:`save_state`; returns ``(finished epochs, extra)``.

    Raises:
        R2UError: If there is no usable state in ``state_dir``.
    """
    d = Path(state_dir)
    try:
        meta = json.loads((d / STATE_JSON).read_text(encoding="utf-8"))
        tensors = load_file(str(d / meta["tensors"]))
    except (OSError, KeyError, json.JSONDecodeError) as e:
        raise R2UError(f"cannot resume from {d}: no complete training state ({e})") from None
    device = next(model.parameters()).device
    model.load_state_dict({k[6:]: v for k, v in tensors.items() if k.startswith("model.")})
    state: dict[int, dict[str, Any]] = {int(i): dict(v) for i, v in meta["optimizer"]["state"].items()}
    for k, v in tensors.items():
        if k.startswith("optim."):
            _, idx, name = k.split(".", 2)
            state.setdefault(int(idx), {})[name] = v if name == "step" else v.to(device)
    optimizer.load_state_dict({"state": state, "param_groups": meta["optimizer"]["param_groups"]})
    scheduler.load_state_dict(meta["scheduler"])
    torch.set_rng_state(tensors["rng.torch"])
    generator.set_state(tensors["rng.shuffle"])
    return int(meta["epoch"]), meta.get("extra", {})

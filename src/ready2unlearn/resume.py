"""Crash-safe training state (model, optimiser, scheduler, RNGs) in safetensors + JSON.

After every epoch a recipe writes ``state-<epoch>.safetensors`` and then ``state.json`` pointing at it,
each atomically, and only then deletes the previous epoch's tensors. Whatever moment a crash hits,
``state.json`` names a complete tensor file, so ``--resume`` loses at most the epoch in progress.
No pickle is involved: optimiser tensors go to safetensors, everything else to JSON.

A state that cannot be read back (a file cut short, a ``state.json`` that is not what this module wrote,
tensors that do not fit the model) is a one-line :class:`~ready2unlearn.errors.DataError`, never a
traceback: the run's config is checked against the state's before (see ``engine/fit.py``), so what is
left is damage to the files.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import load_file, save_file

from ready2unlearn.artifacts import atomic_write, write_json
from ready2unlearn.errors import DataError

STATE_JSON = "state.json"


def has_state(state_dir: str | Path) -> bool:
    """Whether ``state_dir`` holds a saved state (complete or not: :func:`read_meta` tells)."""
    return (Path(state_dir) / STATE_JSON).is_file()


def _corrupt(d: Path, why: str) -> DataError:
    return DataError(f"cannot resume: the saved state in {d} is corrupt ({why}); "
                     "rerun with --overwrite instead of --resume to start over")  # fmt: skip


def read_meta(state_dir: str | Path) -> dict[str, Any]:
    """The JSON half of a saved state (epoch, tensor file name, optimiser/scheduler meta, ``extra``).

    Raises:
        DataError: If ``state.json`` is missing, not UTF-8 JSON, or lacks the fields :func:`save_state` writes.
    """
    d = Path(state_dir)
    try:
        meta = json.loads((d / STATE_JSON).read_text(encoding="utf-8"))
    except UnicodeDecodeError:
        raise _corrupt(d, f"{STATE_JSON} is not UTF-8 text") from None
    except json.JSONDecodeError as e:
        raise _corrupt(d, f"{STATE_JSON}: {e.msg}") from None
    except OSError as e:
        raise _corrupt(d, f"cannot read {STATE_JSON}: {e.strerror or e}") from None
    if not isinstance(meta, dict):
        raise _corrupt(d, f"{STATE_JSON} holds a JSON {type(meta).__name__}, not an object")
    shape = {"epoch": int, "tensors": str, "optimizer": dict, "scheduler": dict, "extra": dict}
    for key, kind in shape.items():
        if not isinstance(meta.get(key), kind) or isinstance(meta.get(key), bool):
            raise _corrupt(d, f"{STATE_JSON} has no valid {key!r}")
    if "/" in meta["tensors"] or "\\" in meta["tensors"]:  # it names a file beside it, nothing else
        raise _corrupt(d, f"{STATE_JSON} names the tensor file {meta['tensors']!r}")
    return meta


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
        DataError: If there is no usable state in ``state_dir`` (missing, cut short, or not fitting the model).
    """
    d = Path(state_dir)
    meta = read_meta(d)
    try:
        tensors = load_file(str(d / meta["tensors"]))
    except FileNotFoundError:
        raise _corrupt(d, f"{meta['tensors']} is missing") from None
    except Exception as e:  # safetensors raises its own error type on a short or damaged file
        raise _corrupt(d, f"{meta['tensors']}: {str(e).splitlines()[0]}") from None
    device = next(model.parameters()).device
    try:
        # Every piece is checked before the model is touched by a strict load: a state that does not fit
        # raises here, not half-way through the optimiser.
        rng_torch, rng_shuffle = tensors["rng.torch"], tensors["rng.shuffle"]
        model.load_state_dict({k[6:]: v for k, v in tensors.items() if k.startswith("model.")})
        state: dict[int, dict[str, Any]] = {int(i): dict(v) for i, v in meta["optimizer"]["state"].items()}
        for k, v in tensors.items():
            if k.startswith("optim."):
                _, idx, name = k.split(".", 2)
                state.setdefault(int(idx), {})[name] = v if name == "step" else v.to(device)
        optimizer.load_state_dict({"state": state, "param_groups": meta["optimizer"]["param_groups"]})
        scheduler.load_state_dict(meta["scheduler"])
        torch.set_rng_state(rng_torch)
        generator.set_state(rng_shuffle)
    except (KeyError, ValueError, TypeError, RuntimeError, AttributeError) as e:
        raise _corrupt(d, f"it does not fit the model and optimiser: {str(e).splitlines()[0]}") from None
    return meta["epoch"], meta["extra"]

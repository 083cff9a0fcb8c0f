"""Atomic, self-describing artifacts: safetensors checkpoints with a JSON card beside them.

Every file is written to a temporary name in the same directory and moved into place with
``os.replace``, so a crash leaves either the old file or the new one, never half of one. Checkpoints are
safetensors only (no pickle): loading one cannot execute code.
"""

from __future__ import annotations

import hashlib
import json
import os
import platform
import tempfile
from collections.abc import Callable
from datetime import datetime, timezone
from importlib import metadata
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import load_model, save_model

from ready2unlearn.errors import R2UError

WEIGHTS = "model.safetensors"
CARD = "card.json"


def atomic_write(path: str | Path, write: Callable[[Path], None]) -> Path:
    """Writes a file atomically: ``write(tmp_path)`` then rename over ``path``.

    Args:
        path: Final destination.
        write: Callback that writes the complete file to the temporary path it is given.

    Returns:
        The final path.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    try:
        write(Path(tmp))
        with open(tmp, "rb") as f:  # flush to disk before the rename makes it visible
            os.fsync(f.fileno())
        # mkstemp creates 0600 files; give the artifact the permissions a plain open() would have.
        os.chmod(tmp, 0o666 & ~_umask())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def write_json(path: str | Path, data: Any) -> Path:
    """Atomically writes ``data`` as indented JSON (keys kept in insertion order)."""
    text = json.dumps(data, indent=2, default=_json_default) + "\n"
    return atomic_write(path, lambda p: p.write_text(text, encoding="utf-8"))


def _json_default(obj: Any) -> Any:
    if isinstance(obj, Path):
        return str(obj)
    if hasattr(obj, "tolist"):
        return obj.tolist()
    raise TypeError(f"not JSON serialisable: {type(obj).__name__}")


def sha256_file(path: str | Path, chunk: int = 1 << 20) -> str:
    """Hex sha256 of a file's bytes."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(chunk):
            h.update(block)
    return h.hexdigest()


def versions() -> dict[str, str]:
    """Versions of Python and the libraries that determine a run's numbers."""
    out = {"python": platform.python_version(), "platform": platform.platform()}
    for pkg in ("ready2unlearn", "torch", "numpy", "safetensors", "scikit-learn"):
        try:
            out[pkg] = metadata.version(pkg)
        except metadata.PackageNotFoundError:
            out[pkg] = "not installed"
    return out


def now_iso() -> str:
    """Current UTC time, ISO-8601 with seconds."""
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


def save_checkpoint(model: torch.nn.Module, out_dir: str | Path, card: dict[str, Any]) -> dict[str, Any]:
    """Writes ``model.safetensors`` then ``card.json`` into ``out_dir``, each atomically.

    The card gains ``weights_sha256`` (the content hash that lineage and the ledger refer to). The card
    is written last, so a directory with a card always has the weights it describes.

    Args:
        model: Any ``nn.Module``; shared (tied) tensors are handled by safetensors' ``save_model``.
        out_dir: Destination directory (created if needed).
        card: JSON-serialisable description: config, seed, versions, data fingerprints, metrics.

    Returns:
        The card as written (with ``weights_file`` and ``weights_sha256``).
    """
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    atomic_write(out / WEIGHTS, lambda p: save_model(model, str(p), metadata={"format": "pt"}))
    card = {**card, "weights_file": WEIGHTS, "weights_sha256": sha256_file(out / WEIGHTS)}
    write_json(out / CARD, card)
    return card


def read_card(ckpt_dir: str | Path) -> dict[str, Any]:
    """Reads ``card.json`` of a checkpoint directory and checks the weights' hash.

    Raises:
        R2UError: If the directory, card or weights are missing, or the weights do not match the card.
    """
    d = Path(ckpt_dir)
    card_path, weights = d / CARD, d / WEIGHTS
    if not card_path.is_file():
        raise R2UError(f"{str(d)!r} is not a checkpoint: {CARD} is missing (train one with `r2u train`)")
    try:
        card = json.loads(card_path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as e:
        raise R2UError(f"{card_path} is corrupt ({e.msg}); re-create the checkpoint") from None
    if not weights.is_file():
        raise R2UError(f"{weights} is missing; re-create the checkpoint")
    expected = card.get("weights_sha256")
    if expected and sha256_file(weights) != expected:
        raise R2UError(f"{weights} does not match the sha256 recorded in its card: the file is corrupt or was replaced")
    return card


def load_weights(model: torch.nn.Module, ckpt_dir: str | Path, device: str | torch.device = "cpu") -> None:
    """Loads ``model.safetensors`` from ``ckpt_dir`` into ``model`` (strict: every key must match).

    Raises:
        R2UError: If the file does not fit the model's parameters.
    """
    try:
        missing, unexpected = load_model(model, str(Path(ckpt_dir) / WEIGHTS), strict=False, device=str(device))
    except Exception as e:  # safetensors raises plain exceptions on header/shape problems
        raise R2UError(f"cannot load {Path(ckpt_dir) / WEIGHTS} into the model: {e}".splitlines()[0]) from None
    if missing or unexpected:
        raise R2UError(
            f"checkpoint {ckpt_dir} does not fit the model: missing {sorted(missing)[:5]}, "
            f"unexpected {sorted(unexpected)[:5]}"
        )

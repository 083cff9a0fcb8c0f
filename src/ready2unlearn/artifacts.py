"""Atomic, self-describing artifacts: safetensors checkpoints with a JSON card beside them.

Every file is written to a temporary name in the same directory and moved into place with
``os.replace``, so a crash leaves either the old file or the new one, never half of one (a temp file left
by a ``kill -9`` is removed by the next save into that folder). Checkpoints are safetensors only (no
pickle): loading one cannot execute code.

Output folders are checked before any compute is spent (:func:`check_writable`, :func:`prepare_out_dir`):
a file where the folder should be, a folder nobody can write into, or an earlier run's files are one-line
errors instead of a traceback after an hour of training.
"""

from __future__ import annotations

import hashlib
import json
import os
import platform
import re
import shutil
import tempfile
from collections.abc import Callable, Iterable
from datetime import datetime, timezone
from importlib import metadata
from pathlib import Path
from typing import Any

import torch
from safetensors import safe_open
from safetensors.torch import load_model, save_model

from ready2unlearn.errors import ConfigError, DataError

WEIGHTS = "model.safetensors"
CARD = "card.json"
METRICS = "metrics.json"
RESUME_DIR = ".resume"
#: Temp names :func:`atomic_write` gives the files of a run (``.card.json.k2j3h.tmp``).
_RUN_TMP = re.compile(r"^\.(model\.safetensors|card\.json|metrics\.json)\..+\.tmp$")
#: The per-request folders of a sequence of requests (``r2u unlearn --request A --request B``).
_REQ_DIR = re.compile(r"^req-\d+$")


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
    # A save killed half-way (kill -9 cannot be caught) leaves its temp file behind; the folder is now a
    # finished checkpoint, so nothing of an earlier attempt should stay beside it.
    for p in out.iterdir():
        if _RUN_TMP.match(p.name) and p.is_file():
            p.unlink(missing_ok=True)
    return card


# -- output folders --------------------------------------------------------------------------------------
def check_writable(path: str | Path, kind: str = "folder", flag: str = "--out") -> None:
    """Fails fast when ``path`` cannot become a folder (or file) this process writes into.

    Nothing is created: the probe writes and removes a temp file in the nearest folder that exists, so
    a failed check leaves no trace. Run it before any compute is spent.

    Args:
        path: The folder (``kind="folder"``) or file (``kind="file"``) that will be written.
        kind: What ``path`` must be.
        flag: The option that named it, for the message.

    Raises:
        ConfigError: If ``path`` is the wrong kind of thing, lies under a file, or cannot be written.
    """
    p = Path(path)
    if p.exists():
        if kind == "folder" and not p.is_dir():
            raise ConfigError(f"{flag} {p} is a file, not a folder")
        if kind == "file" and p.is_dir():
            raise ConfigError(f"{flag} {p} is a folder, not a file (give the path of the file to write)")
    anchor = p if kind == "folder" and p.is_dir() else p.parent
    while not anchor.exists() and anchor != anchor.parent:
        anchor = anchor.parent
    if not anchor.is_dir():
        raise ConfigError(f"cannot create {flag} {p}: {anchor} is a file, not a folder")
    try:
        fd, probe = tempfile.mkstemp(prefix=".r2u-write-probe-", dir=anchor)
        os.close(fd)
        os.unlink(probe)
    except OSError as e:
        raise ConfigError(f"cannot write into {anchor} ({e.strerror or e}); choose another {flag}") from None


def run_files(out: Path) -> list[Path]:
    """The entries of ``out`` that a training or unlearning run writes (and ``--overwrite`` replaces).

    That is the card, the weights, ``metrics.json`` (written by ``r2u eval``), the resume state, the
    ``req-NN`` folders of a request sequence and temp files of interrupted saves — not the user's own files.
    """
    if not out.is_dir():
        return []
    names = {CARD, WEIGHTS, METRICS, RESUME_DIR}
    return sorted(p for p in out.iterdir()
                  if p.name in names or _RUN_TMP.match(p.name) or (_REQ_DIR.match(p.name) and p.is_dir()))  # fmt: skip


def clear_run_files(out: str | Path, keep: Iterable[str] = ()) -> None:
    """Removes an earlier run's files from ``out`` (see :func:`run_files`), the card first.

    The card goes first so that a crash half-way leaves a folder that is not a checkpoint rather than a
    card describing weights that are no longer there.
    """
    entries = [p for p in run_files(Path(out)) if p.name not in set(keep)]
    for p in sorted(entries, key=lambda p: p.name != CARD):
        if p.is_dir() and not p.is_symlink():
            shutil.rmtree(p)
        else:
            p.unlink(missing_ok=True)


def prepare_out_dir(out: str | Path, *, overwrite: bool = False, resume: bool = False) -> Path | None:
    """Checks a run's ``--out`` folder before any compute is spent; creates nothing.

    A folder that does not exist or is empty is fine. A non-empty one is refused unless ``overwrite``
    (the caller replaces the old run's files once the new run has succeeded) or ``resume`` (the run
    continues in its own folder).

    Returns:
        The topmost folder the run will create (``out`` or one of its parents), or ``None`` when ``out``
        exists already: a run that fails removes exactly that, and so leaves nothing behind.

    Raises:
        ConfigError: If ``out`` is not writable, or is not empty and neither flag allows reusing it.
    """
    out = Path(out)
    check_writable(out)
    if overwrite and resume:
        raise ConfigError("--resume continues the run in --out and --overwrite replaces it: pass one of them")
    if out.is_dir():
        entries = sorted(p.name for p in out.iterdir())
        if entries and not (overwrite or resume):
            shown = ", ".join(entries[:3]) + (", …" if len(entries) > 3 else "")
            what = "a finished checkpoint" if CARD in entries else "files"
            raise ConfigError(f"{out} already holds {what} ({shown}); pass --overwrite to replace the run in it, "
                              "or choose another --out")  # fmt: skip
        return None
    created = out
    while not created.parent.exists() and created.parent != created.parent.parent:
        created = created.parent
    return created


def remove_created(out: str | Path, created: Path | None) -> None:
    """Removes what a failed run created: ``out`` and the parents :func:`prepare_out_dir` reported as new.

    Only ``out`` is removed with its content; the new parents above it go only while empty, since another
    run started at the same time may have put its own ``--out`` beside this one.
    """
    if created is None:
        return
    out = Path(out)
    shutil.rmtree(out, ignore_errors=True)
    folder = out.parent
    while created in (folder, *folder.parents):
        try:
            folder.rmdir()
        except OSError:
            break
        folder = folder.parent


# -- reading checkpoints ---------------------------------------------------------------------------------
def read_card(ckpt_dir: str | Path) -> dict[str, Any]:
    """Reads ``card.json`` of a checkpoint directory and checks the weights' hash.

    Raises:
        DataError: If the folder, card or weights are missing or are not what they should be (a file
            given for the folder, a card that is not a UTF-8 JSON object), or the weights do not match the
            card's hash.
    """
    d = Path(ckpt_dir)
    card_path, weights = d / CARD, d / WEIGHTS
    if not d.exists():
        raise DataError(f"{str(d)!r} is not a checkpoint: the folder does not exist")
    if not d.is_dir():
        raise DataError(f"{d} is a file, not a checkpoint folder (give the folder that holds {CARD} and {WEIGHTS})")
    for p in (card_path, weights):
        if p.is_dir():
            raise DataError(f"{p} is a folder, not a file; re-create the checkpoint")
    if not card_path.is_file():
        raise DataError(f"{str(d)!r} is not a checkpoint: {CARD} is missing (train one with `r2u train`)")
    try:
        card = json.loads(card_path.read_text(encoding="utf-8"))
    except UnicodeDecodeError:
        raise DataError(f"{card_path} is corrupt: it is not UTF-8 text; re-create the checkpoint") from None
    except json.JSONDecodeError as e:
        raise DataError(f"{card_path} is corrupt ({e.msg}); re-create the checkpoint") from None
    except OSError as e:
        raise DataError(f"cannot read {card_path} ({e.strerror or e})") from None
    if not isinstance(card, dict):
        raise DataError(f"{card_path} is not a checkpoint card (a JSON {_json_kind(card)}, expected an object); "
                        "re-create the checkpoint")  # fmt: skip
    if not weights.is_file():
        raise DataError(f"{weights} is missing; re-create the checkpoint")
    expected = card.get("weights_sha256")
    if expected and sha256_file(weights) != expected:
        raise DataError(f"{weights} does not match the sha256 recorded in its card: the file is corrupt or was "
                        "replaced")  # fmt: skip
    return card


def _json_kind(value: Any) -> str:
    kinds = {list: "list", str: "string", bool: "boolean", int: "number", float: "number", type(None): "null"}
    return kinds.get(type(value), type(value).__name__)


def load_weights(model: torch.nn.Module, ckpt_dir: str | Path, device: str | torch.device = "cpu") -> None:
    """Loads ``model.safetensors`` from ``ckpt_dir`` into ``model`` (strict: every key must match).

    Names and shapes are compared with the file's header first, so a checkpoint of another architecture
    is reported as one line (what is missing, unexpected, or shaped differently) before anything loads.

    Raises:
        DataError: If the file is not a readable safetensors file or does not fit the model's parameters.
    """
    path = Path(ckpt_dir) / WEIGHTS
    try:
        with safe_open(str(path), framework="pt") as f:
            shapes = {k: list(f.get_slice(k).get_shape()) for k in f.keys()}  # noqa: SIM118 (not a dict: no __iter__)
    except Exception as e:  # safetensors raises its own error type on a bad header or a short file
        raise DataError(f"{path} is not a readable safetensors file ({str(e).splitlines()[0]})") from None
    problem = weights_mismatch(model, shapes)
    if problem:
        raise DataError(f"{path}: weights do not match the model: {problem}")
    try:
        missing, unexpected = load_model(model, str(path), strict=False, device=str(device))
    except Exception as e:  # e.g. tensor bytes that do not match the header
        raise DataError(f"cannot load {path} into the model: {str(e).splitlines()[0]}") from None
    if missing or unexpected:
        raise DataError(f"{path}: weights do not match the model: missing {sorted(missing)[:5]}, "
                        f"unexpected {sorted(unexpected)[:5]}")  # fmt: skip


def weights_mismatch(model: torch.nn.Module, shapes: dict[str, list[int]]) -> str:
    """A one-line summary of how a file's tensor names/shapes differ from ``model``'s ('' when they fit).

    Tied parameters are stored once by safetensors, under any one of their names: a name is only missing
    when none of the names sharing its storage is in the file.
    """
    state = model.state_dict()
    aliases: dict[tuple, list[str]] = {}
    for k, v in state.items():
        if v.numel() and v.device.type != "meta":
            aliases.setdefault((v.untyped_storage().data_ptr(), v.storage_offset(), tuple(v.shape)), []).append(k)
    group = {k: names for names in aliases.values() for k in names}
    missing = sorted(k for k in state if k not in shapes and not any(a in shapes for a in group.get(k, [])))
    unexpected = sorted(k for k in shapes if k not in state)
    shaped = [(k, shapes[k], list(state[k].shape)) for k in state if k in shapes and shapes[k] != list(state[k].shape)]
    parts = []
    if missing:
        parts.append(f"missing {_count(len(missing), 'key')} ({_first(missing)})")
    if unexpected:
        parts.append(f"unexpected {_count(len(unexpected), 'key')} ({_first(unexpected)})")
    if shaped:
        k, got, want = shaped[0]
        first = f"first: {k} {got} in the file vs {want} in the model"
        parts.append(f"{_count(len(shaped), 'shape mismatch', 'es')} ({first})")
    return ", ".join(parts)


def _count(n: int, word: str, plural: str = "s") -> str:
    return f"{n} {word}{plural if n != 1 else ''}"


def _first(names: list[str], n: int = 2) -> str:
    return ", ".join(names[:n]) + (", …" if len(names) > n else "")
